"""wbench: benchmark optimisers for wireless systems on shared, seeded channels.

Public API for plugin authors: :data:`hookimpl`, :class:`Scenario`, :class:`Solver`, :class:`Solution`,
:class:`RunContext`, :class:`Problem`, :class:`Variable` (with its role, :data:`ROLES`), :class:`Param`,
the constraint sets, the joint constraints and the linear-precoding view.
"""

from .hookspecs import hookimpl
from .params import Param, ParamError
from .problem import (
    ROLES,
    BlockPowerBall,
    BlockUnitary,
    Box,
    Feasibility,
    JointConstraint,
    PowerBall,
    PrecodingView,
    Problem,
    ProductPower,
    Simplex,
    Unconstrained,
    Unitary,
    UnitModulus,
    Variable,
)
from .scenario import Scenario
from .solver import RunContext, Solution, Solver

__version__ = "0.1.0"

__all__ = [
    "hookimpl", "Param", "ParamError", "Problem", "Variable", "Feasibility", "PowerBall", "UnitModulus",
    "Unitary", "BlockUnitary", "Box", "Simplex", "BlockPowerBall", "Unconstrained", "JointConstraint",
    "ProductPower", "PrecodingView", "ROLES", "Scenario", "Solver", "Solution", "RunContext",
    "__version__",
]
