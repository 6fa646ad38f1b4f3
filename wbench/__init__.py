"""wbench: benchmark optimisers for wireless systems on shared, seeded channels.

Public API for plugin authors: :data:`hookimpl`, :class:`Scenario`, :class:`Solver`, :class:`Solution`,
:class:`RunContext`, :class:`Problem`, :class:`Variable` (with its role, :data:`ROLES`), :class:`Param`,
the constraint sets, the joint constraints and the linear-precoding view.

For notebooks (:mod:`wbench.api`, imported on first use so that ``import wbench`` stays light):
``wbench.compare(...)``, ``wbench.runs(db)``, ``wbench.leaderboard(db)``, ``wbench.solutions(db)`` and
``wbench.export_solutions(db, out)``, returning pandas DataFrames.
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

_API = ("compare", "runs", "leaderboard", "solutions", "export_solutions")


def __getattr__(name: str):  # PEP 562: the notebook API without importing pandas for every plugin
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "hookimpl", "Param", "ParamError", "Problem", "Variable", "Feasibility", "PowerBall", "UnitModulus",
    "Unitary", "BlockUnitary", "Box", "Simplex", "BlockPowerBall", "Unconstrained", "JointConstraint",
    "ProductPower", "PrecodingView", "ROLES", "Scenario", "Solver", "Solution", "RunContext",
    "__version__", *_API,
]
