"""The GPU path against the CPU path: ``metaopt`` (batched) and ``metaopt-alg3`` at the paper's BD-RIS size.

Run: ``python -m pytest benchmarks/test_bench_gpu.py -s`` on a machine with a CUDA device; without one every
case is skipped with the reason (a benchmark, not a test: the CPU path's correctness is tested in
``tests/test_batched_meta.py``, which also runs the device option's error paths). Cases:

* ``metaopt`` (defaults) on the 64 ``bdris`` (B=16) and 64 ``miso`` 4x4 channels of
  ``test_bench_batched_meta.py``, batched, equal iterations, on ``cuda`` in float64 and float32 against the
  CPU path in float64 (``WBENCH_BENCH_THREADS`` torch threads, default 2);
* one ``metaopt-alg3`` run of a few iterations at seed 000's BD-RIS size (``Nt = 15, K = 10, B = 200``; the
  ``Phi`` network has 64 million weights) on ``cuda`` against the CPU.

The ratio CPU time / GPU time (wall clock, the GPU synchronised) is reported in ``extra_info`` as
``speedup_vs_cpu`` and printed, never asserted. The float64 GPU result is checked against the CPU result
(the same computation up to rounding: mean utility to 1e-6 relative); float32 to 1e-2.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("WBENCH_LOAD_PLUGINS", "")

import numpy as np
import pytest
import torch

from wbench.channels.channelset import realisation_rng
from wbench.scenarios.bdris import Bdris
from wbench.solver import RunContext
from wbench.solvers.gradient.metaopt import MetaOpt, MetaOptAlg3

from test_bench_batched_meta import CASES, N, THREADS, contexts, mean_utility, stack

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")

TORCH_THREADS = THREADS  # the torch threads of every benchmark here (benchmarks/conftest.py)


def _timed(fn):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - t0


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", list(CASES))
def test_batched_metaopt_gpu_vs_cpu(benchmark, case, dtype):
    problems = stack(case)
    iters = CASES[case][2]
    solver = MetaOpt()
    gpu_opts = {"iters": iters, "device": "cuda", "dtype": dtype}
    solver.solve_batch(problems[:2], gpu_opts, contexts()[:2])  # CUDA context and kernels, not timed
    gpu_mean, gpu_s = benchmark.pedantic(
        lambda: _timed(lambda: mean_utility(problems, solver.solve_batch(problems, gpu_opts, contexts()))),
        rounds=1, iterations=1)
    t0 = time.perf_counter()
    cpu_mean = mean_utility(problems, solver.solve_batch(problems, {"iters": iters}, contexts()))
    cpu_s = time.perf_counter() - t0
    benchmark.extra_info.update(speedup_vs_cpu=cpu_s / gpu_s, gpu_seconds=gpu_s, cpu_seconds=cpu_s,
                                channels=N, iterations=iters, dtype=dtype)
    print(f"\nmetaopt batched, {N} {case} channels, {iters} iterations: cuda {dtype} {gpu_s:.2f} s, "
          f"cpu float64 ({THREADS} threads) {cpu_s:.2f} s: {cpu_s / gpu_s:.1f}x")
    assert gpu_mean == pytest.approx(cpu_mean, rel=1e-6 if dtype == "float64" else 1e-2)


def test_metaopt_alg3_paper_size_gpu_vs_cpu(benchmark):
    sc = Bdris()
    params = sc.resolve_params({"Nt": 15, "K": 10, "B": 200, "architecture": "fully"})
    prob = sc.problem(params, sc.draw(params, realisation_rng(0, "bdris", 0)))
    opts = {"iters": 5, "warm": "none", "final_project": False}

    def run(device: str):
        return MetaOptAlg3().solve(prob, {**opts, "device": device}, RunContext(np.random.default_rng(0)))

    run("cuda")
    (gpu_sol, gpu_s) = benchmark.pedantic(lambda: _timed(lambda: run("cuda")), rounds=1, iterations=1)
    t0 = time.perf_counter()
    cpu_sol = run("cpu")
    cpu_s = time.perf_counter() - t0
    benchmark.extra_info.update(speedup_vs_cpu=cpu_s / gpu_s, gpu_seconds=gpu_s, cpu_seconds=cpu_s)
    print(f"\nmetaopt-alg3 bdris B=200, 5 iterations: cuda {gpu_s:.2f} s, cpu {cpu_s:.2f} s: "
          f"{cpu_s / gpu_s:.1f}x; 25,000 iterations on cuda: {gpu_s / 5 * 25000 / 3600:.2f} h")
    assert prob.utility(gpu_sol.x) == pytest.approx(prob.utility(cpu_sol.x), rel=1e-6)
