"""Time per instance of the conventional (``ao``) and meta (``metaopt``) solvers on ``bdris`` as the RIS grows.

Run: ``python -m pytest benchmarks/test_bench_bdris.py`` (B = 200 takes minutes). Fully-connected BD-RIS,
Nt = K = 4, 30 dBm, one channel, one thread; each benchmark records the sum rate it reached in ``extra_info``
so that speed is never read without the quality it bought.
"""

from __future__ import annotations

import os

os.environ.setdefault("WBENCH_LOAD_PLUGINS", "")

import numpy as np
import pytest

from wbench.channels.channelset import realisation_rng
from wbench.registry import get_registry
from wbench.scenarios.bdris import Bdris
from wbench.solver import RunContext


def _problem(b: int):
    sc = Bdris()
    params = sc.resolve_params({"B": b, "architecture": "fully"})
    return sc.problem(params, sc.draw(params, realisation_rng(0, "bdris", 0)))


@pytest.mark.parametrize("b", [16, 64, 200])
@pytest.mark.parametrize("solver", ["ao", "metaopt"])
def test_time_per_instance(benchmark, solver, b):
    import torch

    torch.set_num_threads(1)
    s = get_registry().solver(solver)
    prob = _problem(b)
    opts = s.resolve_options({})
    s.solve(prob, opts, RunContext(np.random.default_rng(0), 0.0))  # untimed warm-up, as the harness does
    sol = benchmark.pedantic(lambda: s.solve(prob, opts, RunContext(np.random.default_rng(0))), rounds=1,
                             iterations=1)
    assert prob.feasibility(sol.x).feasible
    benchmark.extra_info["sum_rate"] = prob.utility(sol.x)
    benchmark.extra_info["iterations"] = sol.iterations
