"""``closed-form``: the optimum where the scenario knows it in closed form, shown as a ``bound`` row.

Generic: it applies to every problem whose :meth:`~wbench.problem.Problem.closed_form_optimum` is not
``None`` (one user in ``miso``; one user with a fully-connected BD-RIS, or a diagonal RIS and one BS antenna,
in ``bdris``) and is skipped, with a note, elsewhere.
"""

from __future__ import annotations

from typing import Any, Mapping

from ...hookspecs import hookimpl
from ...problem import Problem
from ...solver import RunContext, Solution, Solver


class ClosedForm(Solver):
    name = "closed-form"
    version = "1"
    description = "closed-form optimum where the scenario has one (single-user cases)"
    tags = frozenset({"bound"})

    def supports_problem(self, problem: Problem) -> bool:
        return problem.closed_form_optimum() is not None

    def declines(self, problem: Problem, options: Mapping[str, Any]) -> str | None:
        if problem.closed_form_optimum() is None:
            return "no closed-form optimum for these parameters"
        return None

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        value = problem.closed_form_optimum()
        if value is None:
            raise ValueError(f"scenario {problem.scenario!r} has no closed-form optimum for these parameters")
        return Solution(value=value)


@hookimpl
def wbench_register_solvers(register) -> None:
    register(ClosedForm())
