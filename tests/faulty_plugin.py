"""A test plugin whose solvers misbehave in every way the harness must survive."""

from __future__ import annotations

import time

import numpy as np

from wbench import Solution, Solver, hookimpl
from wbench.params import Param


class Raises(Solver):
    name, tags, description = "t-raises", frozenset({"baseline"}), "raises an exception"

    def solve(self, problem, options, ctx):
        raise RuntimeError("deliberate failure")


class ReturnsNan(Solver):
    name, tags, description = "t-nan", frozenset({"baseline"}), "returns NaN precoders"

    def solve(self, problem, options, ctx):
        x = problem.initial("mrt")
        return Solution({k: v * np.nan for k, v in x.items()})


class Overruns(Solver):
    name, tags, description = "t-slow", frozenset({"baseline"}), "ignores its time budget"
    options = {"sleep": Param(0.3, "seconds to sleep", min=0)}

    def solve(self, problem, options, ctx):
        time.sleep(options["sleep"])
        return Solution(problem.initial("mrt"))


class Hangs(Solver):
    name, tags, description = "t-hang", frozenset({"baseline"}), "sleeps forever (never checks its budget)"

    def solve(self, problem, options, ctx):
        while True:
            time.sleep(3600)


class Spins(Solver):
    name, tags, description = "t-spin", frozenset({"baseline"}), "busy Python loop forever"

    def solve(self, problem, options, ctx):
        n = 0
        while True:
            n += 1


class Crashes(Solver):
    """Kills its own process, like a crash in native code (no tags: only ever selected by name, and only
    with worker processes)."""

    name, tags, description = "t-crash", frozenset(), "kills the process it runs in"

    def solve(self, problem, options, ctx):
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


class Infeasible(Solver):
    name, tags, description = "t-overpower", frozenset({"baseline"}), "MRT at twice the power budget"

    def solve(self, problem, options, ctx):
        return Solution({k: v * np.sqrt(2.0) for k, v in problem.initial("mrt").items()})


class Noop(Solver):
    name, tags, description = "t-noop", frozenset({"baseline"}), "returns a fixed feasible point at once"

    def solve(self, problem, options, ctx):
        return Solution({k: np.zeros(v.shape, v.dtype) for k, v in problem.variables.items()})


@hookimpl
def wbench_register_solvers(register):
    for cls in (Raises, ReturnsNan, Overruns, Hangs, Spins, Crashes, Infeasible, Noop):
        register(cls())
