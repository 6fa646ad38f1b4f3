"""Closed-form baselines MRT, ZF and RZF, as solutions.

They are generic. A scenario that offers an initial point of that name gets it (for ``miso``: MRT, ZF when
``K <= Nt``, and RZF with regulariser ``K sigma2/P``, all at full power; see :mod:`wbench.scenarios.miso`).
Any other problem with a linear-precoding view (:meth:`~wbench.problem.Problem.precoding_view`) gets the
same precoder computed on the view (:func:`wbench.problem.linear_precoder`: the view's effective channel,
its streams, the largest common scale within its per-block budgets) at the problem's default initial
point, with the other variables held there (for ``bdris``: ``Phi = I`` from ``init=mrt``).
"""

from __future__ import annotations

from typing import Any, Mapping

from ...hookspecs import hookimpl
from ...problem import Problem, linear_precoder
from ...solver import RunContext, Solution, Solver


class InitialPointBaseline(Solver):
    """Return the scenario's initial point called ``method``, else that precoder on the view (no iterations)."""

    tags = frozenset({"baseline"})
    version = "1"

    def __init__(self, method: str, description: str) -> None:
        self.name = method
        self.method = method
        self.description = description

    def supports_problem(self, problem: Problem) -> bool:
        return self.declines(problem, {}) is None

    def declines(self, problem: Problem, options: Mapping[str, Any]) -> str | None:
        if self.method in problem.init_methods:
            return None
        if not problem.has_precoding_view:
            return f"no initial point {self.method!r} and no linear-precoding view"
        view = problem.precoding_view(problem.initial())
        if self.method == "zf" and view.users > view.antennas:
            return f"zf needs K <= Nt (K={view.users}, Nt={view.antennas})"
        return None

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        if self.method in problem.init_methods:
            return Solution(x=problem.initial(self.method, ctx.rng), iterations=0)
        x0 = problem.initial(None, ctx.rng)
        view = problem.precoding_view(x0)
        return Solution(x=view.embed(x0, linear_precoder(view, self.method)), iterations=0)


@hookimpl
def wbench_register_solvers(register) -> None:
    register(InitialPointBaseline("mrt", "maximum-ratio transmission at full power"))
    register(InitialPointBaseline("zf", "zero-forcing at full power (K <= Nt)"))
    register(InitialPointBaseline("rzf", "regularised ZF / MMSE precoder, regulariser K sigma2 / P"))
