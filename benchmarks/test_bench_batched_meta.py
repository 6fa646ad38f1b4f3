"""Throughput of the batched gradient solvers: ``metaopt`` on 64 channels, batched vs the per-channel loop.

Run: ``python -m pytest benchmarks/test_bench_batched_meta.py -s``. Two stacks of 64 channels, ``bdris``
(fully-connected BD-RIS, ``Nt = K = 4``, ``B = 16``, 30 dBm) and ``miso`` (``Nt = K = 4``, 20 dB), the
default ``metaopt`` (three hidden layers of 400, float64) for the same number of iterations on both paths:
``solve_batch`` on all 64 at once against ``solve`` channel by channel, with ``WBENCH_BENCH_THREADS`` torch
threads for both (default 2, the two cores of the reference machine). The ratio loop / batched is reported
(``speedup_vs_loop`` in ``extra_info``, printed with ``-s``), never asserted; the two paths' mean utilities
are checked to agree (the same computation up to rounding).

With one network per channel no weight is shared between channels, so batching removes per-iteration
overhead (the Python loop, the meta-loss and projections as a few vectorised calls instead of one set per
channel, one backward pass, one fused Adam call) but no arithmetic: on the CPU each channel's network is
still applied by its own matrix-vector products (bitwise the unbatched run). The speedup is therefore large
where the per-channel work is small (``adam``) and tends to 1 where the networks' FLOPs and Adam's memory
traffic over the weights dominate (``metaopt`` with 400-unit layers).
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
from wbench.scenarios.miso import Miso
from wbench.solver import RunContext
from wbench.solvers.gradient.adam import Adam
from wbench.solvers.gradient.metaopt import MetaOpt

N = 64
THREADS = int(os.environ.get("WBENCH_BENCH_THREADS", "2"))
CASES = {
    "bdris-B16": (Bdris(), {"Nt": 4, "K": 4, "B": 16, "architecture": "fully"}, 20),
    "miso-4x4": (Miso(), {"Nt": 4, "K": 4, "snr_db": 20.0}, 50),
}

TORCH_THREADS = THREADS  # the torch threads of every benchmark here (benchmarks/conftest.py)


def stack(case: str) -> list:
    sc, given, _ = CASES[case]
    params = sc.resolve_params(given)
    return [sc.problem(params, sc.draw(params, realisation_rng(0, sc.name, i))) for i in range(N)]


def contexts() -> list[RunContext]:
    return [RunContext(np.random.default_rng(i)) for i in range(N)]


def mean_utility(problems, sols) -> float:
    return float(np.mean([p.utility(s.x) for p, s in zip(problems, sols)]))


@pytest.mark.parametrize("solver", [MetaOpt(), Adam()], ids=["metaopt", "adam"])
@pytest.mark.parametrize("case", list(CASES))
def test_batched_vs_loop(benchmark, case, solver):
    problems = stack(case)
    opts = {"iters": CASES[case][2]}
    solver.solve_batch(problems[:2], opts, contexts()[:2])  # one-off kernel set-up, not timed

    def batched() -> float:
        return mean_utility(problems, solver.solve_batch(problems, opts, contexts()))

    batched_mean = benchmark.pedantic(batched, rounds=1, iterations=1)
    t0 = time.perf_counter()
    loop_mean = mean_utility(problems, [solver.solve(p, opts, c) for p, c in zip(problems, contexts())])
    loop_s = time.perf_counter() - t0
    speedup = loop_s / benchmark.stats.stats.mean
    benchmark.extra_info.update(speedup_vs_loop=speedup, loop_seconds=loop_s, threads=THREADS,
                                iterations=opts["iters"], channels=N)
    print(f"\n{solver.name} on {N} {case} channels, {opts['iters']} iterations, {THREADS} threads: batched "
          f"{benchmark.stats.stats.mean:.2f} s, loop {loop_s:.2f} s, speedup {speedup:.1f}x")
    assert batched_mean == pytest.approx(loop_mean, rel=1e-6)
