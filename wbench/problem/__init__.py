"""The Problem interface: what a scenario hands to every solver for one channel realisation.

A :class:`Problem` names its optimisation variables, each with a *constraint set* from a small closed
vocabulary (:class:`PowerBall`, :class:`BlockPowerBall`, :class:`UnitModulus`, :class:`Unitary`,
:class:`BlockUnitary`, :class:`Box`, :class:`Simplex`, :class:`Unconstrained`) and a *role* from
:data:`ROLES` (what the variable is: precoder, scattering matrix, ...), so that solvers find variables by
what they are, not by a scenario's names. It evaluates the utility in float64 NumPy (the authoritative
number the harness scores), the same model as a differentiable torch loss (for gradient-based and
meta-learning solvers), the scenario's own inequality constraints (``>= 0`` when satisfied; NumPy and
torch), constraints coupling several variables (:class:`JointConstraint`, e.g. the hybrid precoder's
:class:`ProductPower`), projections onto the sets, a feasibility verdict with written tolerances, and the
standard initial points.

How the constraints reach the solvers (one way each, the same for every scenario):

* variable sets: projected (``ConstraintSet.project`` / ``project_torch``) or penalised
  (``ConstraintSet.penalty_torch``), as each solver chooses;
* joint constraints (:attr:`Problem.joint`): applied after the variable sets by :meth:`Problem.project`,
  checked by :meth:`Problem.feasibility`; their ``project`` changes one variable (``rescaled``), their
  ``penalty_torch`` serves solvers that do not project, ``residual_torch`` constraint-aware solvers;
* scenario constraints (:meth:`Problem.constraints`, ``>= 0`` when satisfied): constraint-aware solvers
  (``multistart``) use them directly; penalty solvers (``adam``, ``metaopt``, ``spg``) minimise
  :meth:`Problem.penalised_loss_torch`, ``loss_torch + weight * sum_c relu(-c)^2`` over
  :meth:`Problem.constraints_torch` (weight :attr:`Problem.constraint_penalty` unless a solver option
  overrides it). ``loss_torch`` itself stays the negative utility (plus any penalty the scenario's paper
  puts in its own loss); it never includes the generic constraint penalty. A quadratic penalty ends a
  constraint that binds at the optimum violated by about ``lambda / (2 weight)`` (``lambda`` its
  multiplier), hence the per-problem tolerance :attr:`Problem.constraint_tol`.

The linear-precoding view (:class:`PrecodingView`, built from the variable with role ``precoder``) is the
sub-problem the WMMSE family solves: per-block power budgets, a chosen subset of streams, an effective
channel.

Because every scenario speaks this interface, a generic solver written against it works on every scenario.
See ``DESIGN.md`` ("The one idea that keeps it small").

Layout (one concept per module; every name is re-exported here, so ``from wbench.problem import X`` stays the
one import the rest of wbench and the plugins use):

* ``interface.py``: :class:`Problem`, :class:`WarmStart`, :data:`ProblemFactory`;
* ``variables.py``: :data:`Vars`, :data:`ROLES`, :class:`Variable`, :func:`to_numpy_vars`;
* ``sets.py``: :class:`ConstraintSet` and the set vocabulary;
* ``joint.py``: :class:`JointConstraint`, :class:`ProductPower`;
* ``precoding.py``: :class:`PrecodingView` (alias ``MisoView``), :func:`linear_precoder`;
* ``feasibility.py``: :class:`Feasibility` and the default tolerances (``POWER_RTOL``, ``MODULUS_ATOL``,
  ``UNITARY_ATOL``, ``CONSTRAINT_ATOL``).
"""

from __future__ import annotations

from .feasibility import CONSTRAINT_ATOL, MODULUS_ATOL, POWER_RTOL, UNITARY_ATOL, Feasibility
from .interface import Problem, ProblemFactory, WarmStart
from .joint import JointConstraint, ProductPower
from .precoding import MisoView, PrecodingView, linear_precoder
from .sets import (BlockPowerBall, BlockUnitary, Box, ConstraintSet, PowerBall, Simplex, Unconstrained, Unitary,
                   UnitModulus)
from .variables import ROLES, Variable, Vars, to_numpy_vars

__all__ = [
    "BlockPowerBall", "BlockUnitary", "Box", "CONSTRAINT_ATOL", "ConstraintSet", "Feasibility", "JointConstraint",
    "MODULUS_ATOL", "MisoView", "POWER_RTOL", "PowerBall", "PrecodingView", "Problem", "ProblemFactory",
    "ProductPower", "ROLES", "Simplex", "UNITARY_ATOL", "Unconstrained", "Unitary", "UnitModulus", "Variable",
    "Vars", "WarmStart", "linear_precoder", "to_numpy_vars",
]
