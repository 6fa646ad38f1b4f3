"""Feasibility: the default tolerances and the verdict :meth:`wbench.problem.Problem.feasibility` returns."""

from __future__ import annotations

from dataclasses import dataclass

#: Default feasibility tolerances. Power budgets are checked relative to the budget; the unit-modulus and
#: unitarity residuals are absolute (entries are O(1)); scenario constraints are absolute in their own units
#: (bit/s/Hz for rate constraints).
POWER_RTOL = 1e-6
MODULUS_ATOL = 1e-6
UNITARY_ATOL = 1e-6
CONSTRAINT_ATOL = 1e-6


@dataclass
class Feasibility:
    """Per-constraint violations (residual minus nothing: the raw residual) and the overall verdict."""

    violations: dict[str, float]
    tolerances: dict[str, float]
    feasible: bool

    @property
    def worst(self) -> float:
        return max(self.violations.values(), default=0.0)
