"""wbench: benchmark optimisers for wireless systems on shared, seeded channels.

Public API for plugin authors: :data:`hookimpl`, :class:`Scenario`, :class:`Solver`, :class:`Solution`,
:class:`RunContext`, :class:`Problem`, :class:`Variable`, :class:`Param` and the constraint sets.
"""

from .hookspecs import hookimpl
from .params import Param, ParamError
from .problem import (
    BlockUnitary,
    Box,
    Feasibility,
    PowerBall,
    Problem,
    Simplex,
    Unitary,
    UnitModulus,
    Variable,
)
from .scenario import Scenario
from .solver import RunContext, Solution, Solver

__version__ = "0.1.0"

__all__ = [
    "hookimpl", "Param", "ParamError", "Problem", "Variable", "Feasibility", "PowerBall", "UnitModulus",
    "Unitary", "BlockUnitary", "Box", "Simplex", "Scenario", "Solver", "Solution", "RunContext",
    "__version__",
]
