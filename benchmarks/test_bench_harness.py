"""Harness overhead per run with a no-op solver (target: at most 1 ms per run).

Run: ``python -m pytest benchmarks/test_bench_harness.py``. The per-run overhead is reported in the
benchmark's ``extra_info`` and as the mean time divided by the number of runs.
"""

from __future__ import annotations

import os

os.environ.setdefault("WBENCH_LOAD_PLUGINS", "")

import numpy as np

from wbench import Solution, Solver, engine, registry
from wbench.selection import select
from wbench.store import Store

RUNS = 2000


class Noop(Solver):
    name, tags, description = "noop", frozenset({"baseline"}), "returns zeros at once"

    def solve(self, problem, options, ctx):
        return Solution({k: np.zeros(v.shape, v.dtype) for k, v in problem.variables.items()})


def test_harness_overhead_per_run(benchmark, tmp_path):
    reg = registry.get_registry()
    if "noop" not in reg.solvers:
        reg.solvers["noop"] = Noop()
    configs = engine.build_configs("miso", {"snr_db": "10"}, {}, 0)
    specs, _ = select(reg, "noop", "miso")
    counter = iter(range(10**6))

    def one_round():
        with Store(tmp_path / f"b{next(counter)}.db") as store:
            plan = engine.plan(store, configs, specs, RUNS)
            engine.execute(plan, store)

    benchmark.pedantic(one_round, rounds=3, iterations=1)
    per_run_ms = benchmark.stats.stats.mean / RUNS * 1e3
    benchmark.extra_info["per_run_ms"] = per_run_ms
    print(f"\nharness overhead: {per_run_ms:.3f} ms per run (target <= 1 ms)")
