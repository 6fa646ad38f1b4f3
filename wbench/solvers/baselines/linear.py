"""Closed-form baselines: the scenario's named initial points (MRT, ZF, RZF), used as solutions.

They are generic: a baseline applies to any scenario whose :class:`~wbench.problem.Problem` offers the
initialiser of that name (for ``miso``: MRT, ZF when ``K <= Nt``, and RZF with regulariser ``K sigma2/P``,
all at full power; see :mod:`wbench.scenarios.miso`).
"""

from __future__ import annotations

from typing import Any, Mapping

from ...hookspecs import hookimpl
from ...problem import Problem
from ...solver import RunContext, Solution, Solver


class InitialPointBaseline(Solver):
    """Return the scenario's initial point called ``method`` (no iterations)."""

    tags = frozenset({"baseline"})
    version = "1"

    def __init__(self, method: str, description: str) -> None:
        self.name = method
        self.method = method
        self.description = description

    def supports_problem(self, problem: Problem) -> bool:
        return self.method in problem.init_methods

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        return Solution(x=problem.initial(self.method, ctx.rng), iterations=0)


@hookimpl
def wbench_register_solvers(register) -> None:
    register(InitialPointBaseline("mrt", "maximum-ratio transmission at full power"))
    register(InitialPointBaseline("zf", "zero-forcing at full power (K <= Nt)"))
    register(InitialPointBaseline("rzf", "regularised ZF / MMSE precoder, regulariser K sigma2 / P"))
