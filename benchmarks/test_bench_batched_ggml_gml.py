"""Throughput of the batched ``ggml`` (seed 002) and ``gml`` (seed 004): ``solve_batch`` vs the per-channel loop.

Run: ``python -m pytest benchmarks/test_bench_batched_ggml_gml.py -s``. A stack of ``WBENCH_BENCH_CHANNELS``
channels (default 32) of each scenario at its defaults (``hybrid``: ``Nt = 64, N_RF = K = 4``, 10 dB;
``comp-rsma-ma``: ``N = 2, I = 4, K = 4``, movable antennas, 33 dBm), each solver at its defaults except the
number of outer iterations (``ggml``: 30 epochs of its 500; ``gml``: 15 iterations of its 500), the same on
both paths: ``solve_batch`` on the whole stack against ``solve`` channel by channel, with
``WBENCH_BENCH_THREADS`` torch threads for both (default 2, the two cores of the reference machine). The
ratio loop / batched is reported (``speedup_vs_loop`` in ``extra_info``, printed with ``-s``), never asserted;
the two paths' utilities are checked to be equal (the batched paths are bitwise the unbatched ones).

What batching can save here is overhead, not arithmetic: every channel keeps its own networks (``ggml``: two
``n -> 200 -> n`` MLPs, ``n = 512`` and ``32``; ``gml``: three, up to ``2K -> 1000 -> 2K``), whose Adam updates
(per parameter tensor, as in the unbatched run, to keep its rounding) and matrix products dominate; ``gml``
also evaluates its loss and scores every iterate per channel.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("WBENCH_LOAD_PLUGINS", "")

import numpy as np
import pytest
import torch

from wbench.channels.channelset import realisation_rng
from wbench.scenarios.comp_rsma_ma import CompRsmaMa
from wbench.scenarios.hybrid import Hybrid
from wbench.solver import RunContext
from wbench.solvers.gradient.ggml import Ggml
from wbench.solvers.gradient.gml import Gml

N = int(os.environ.get("WBENCH_BENCH_CHANNELS", "32"))
THREADS = int(os.environ.get("WBENCH_BENCH_THREADS", "2"))
CASES = {
    "ggml-hybrid": (Ggml(), Hybrid(), {"epochs": 30}),
    "gml-comp-rsma-ma": (Gml(), CompRsmaMa(), {"iters": 15}),
}

TORCH_THREADS = THREADS  # the torch threads of every benchmark here (benchmarks/conftest.py)


def stack(case: str) -> list:
    _, sc, _ = CASES[case]
    params = sc.resolve_params({})
    problems = []
    for i in range(N):
        seen, _ = sc.problems(params, sc.draw(params, realisation_rng(0, sc.name, i)))
        problems.append(seen)
    return problems


def contexts() -> list[RunContext]:
    return [RunContext(np.random.default_rng(i)) for i in range(N)]


def utilities(problems, sols) -> list[float]:
    return [float(p.utility(s.x)) for p, s in zip(problems, sols)]


@pytest.mark.parametrize("case", list(CASES))
def test_batched_vs_loop(benchmark, case):
    solver, _, opts = CASES[case]
    problems = stack(case)
    solver.solve_batch(problems[:2], opts, contexts()[:2])  # one-off kernel set-up, not timed

    def batched() -> list[float]:
        return utilities(problems, solver.solve_batch(problems, opts, contexts()))

    batched_u = benchmark.pedantic(batched, rounds=1, iterations=1)
    t0 = time.perf_counter()
    loop_u = utilities(problems, [solver.solve(p, opts, c) for p, c in zip(problems, contexts())])
    loop_s = time.perf_counter() - t0
    speedup = loop_s / benchmark.stats.stats.mean
    benchmark.extra_info.update(speedup_vs_loop=speedup, loop_seconds=loop_s, threads=THREADS, channels=N,
                                **opts)
    print(f"\n{solver.name} on {N} {case} channels, {opts}, {THREADS} threads: batched "
          f"{benchmark.stats.stats.mean:.2f} s, loop {loop_s:.2f} s, speedup {speedup:.2f}x")
    assert batched_u == loop_u
