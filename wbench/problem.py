"""The Problem interface: what a scenario hands to every solver for one channel realisation.

A :class:`Problem` names its optimisation variables, each with a *constraint set* from a small closed
vocabulary (:class:`PowerBall`, :class:`UnitModulus`, :class:`Unitary`, :class:`BlockUnitary`, :class:`Box`,
:class:`Simplex`). It evaluates the utility in float64 NumPy (the authoritative number the harness scores),
the same model as a differentiable torch loss (for gradient-based and meta-learning solvers), the scenario's
own inequality constraints (``>= 0`` when satisfied), projections onto the sets, a feasibility verdict with
written tolerances, and the standard initial points.

Because every scenario speaks this interface, a generic solver written against it works on every scenario.
See ``DESIGN.md`` ("The one idea that keeps it small").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from .linalg import (polar, polar_torch, project_symmetric_unitary, project_symmetric_unitary_torch,
                     unitary_residual)

if TYPE_CHECKING:  # torch is optional at run time: imported only by the solvers that need it
    import torch

Vars = dict[str, np.ndarray]

#: Default feasibility tolerances. Power budgets are checked relative to the budget; the unit-modulus and
#: unitarity residuals are absolute (entries are O(1)); scenario constraints are absolute in their own units
#: (bit/s/Hz for rate constraints).
POWER_RTOL = 1e-6
MODULUS_ATOL = 1e-6
UNITARY_ATOL = 1e-6
CONSTRAINT_ATOL = 1e-6


class ConstraintSet:
    """A closed set a variable must lie in, with a projection and a violation measure."""

    tol: float

    def project(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def project_torch(self, x: "torch.Tensor") -> "torch.Tensor":
        """The same projection on a torch tensor, differentiable where the projection is smooth."""
        raise NotImplementedError

    def violation(self, x: np.ndarray) -> float:
        """A non-negative residual; the variable is feasible when it is ``<= tol``."""
        raise NotImplementedError

    def penalty_torch(self, x: "torch.Tensor") -> "torch.Tensor":
        """A smooth penalty, zero exactly on the set, for solvers that do not project onto it."""
        return ((self.project_torch(x) - x).abs() ** 2).sum()

    def describe(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class PowerBall(ConstraintSet):
    """``||x||_F^2 <= budget`` (transmit power). ``full=True`` marks that optima sit on the sphere."""

    budget: float
    full: bool = True
    tol: float = POWER_RTOL

    def project(self, x: np.ndarray) -> np.ndarray:
        power = float(np.sum(np.abs(x) ** 2))
        if power <= self.budget or power == 0.0:
            return x
        return x * np.sqrt(self.budget / power)

    def project_torch(self, x: "torch.Tensor") -> "torch.Tensor":
        import torch

        power = (x.abs() ** 2).sum()
        return x * torch.sqrt(self.budget / torch.clamp(power, min=self.budget))

    def violation(self, x: np.ndarray) -> float:
        return max(0.0, float(np.sum(np.abs(x) ** 2)) / self.budget - 1.0)

    def penalty_torch(self, x: "torch.Tensor") -> "torch.Tensor":
        """``max(0, ||x||^2 / budget - 1)^2``."""
        return ((x.abs() ** 2).sum() / self.budget - 1.0).clamp(min=0.0) ** 2

    def describe(self) -> str:
        return f"PowerBall({self.budget:.6g})"


@dataclass(frozen=True)
class UnitModulus(ConstraintSet):
    """Every complex entry on the unit circle, ``|x_i| = 1`` (phase shifters, diagonal RIS)."""

    tol: float = MODULUS_ATOL

    def project(self, x: np.ndarray) -> np.ndarray:
        mag = np.abs(x)
        return np.where(mag > 0, x / np.where(mag > 0, mag, 1.0), 1.0 + 0j)

    def project_torch(self, x: "torch.Tensor") -> "torch.Tensor":
        import torch

        return x / torch.clamp(x.abs(), min=1e-30)

    def violation(self, x: np.ndarray) -> float:
        return float(np.max(np.abs(np.abs(x) - 1.0), initial=0.0))

    def penalty_torch(self, x: "torch.Tensor") -> "torch.Tensor":
        """``sum_i (|x_i|^2 - 1)^2``."""
        return ((x.abs() ** 2 - 1.0) ** 2).sum()


@dataclass(frozen=True)
class Unitary(ConstraintSet):
    """Square ``X^H X = I`` (fully-connected BD-RIS); ``symmetric=True`` adds ``X = X^T`` (reciprocal)."""

    symmetric: bool = False
    tol: float = UNITARY_ATOL

    def project(self, x: np.ndarray) -> np.ndarray:
        return project_symmetric_unitary(x) if self.symmetric else polar(x)

    def project_torch(self, x: "torch.Tensor") -> "torch.Tensor":
        return project_symmetric_unitary_torch(x) if self.symmetric else polar_torch(x)

    def penalty_torch(self, x: "torch.Tensor") -> "torch.Tensor":
        """``||X^H X - I||_F^2`` (seed 000, eq. (33)), plus ``||X - X^T||_F^2`` when symmetric."""
        import torch

        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        pen = ((x.conj().T @ x - eye).abs() ** 2).sum()
        if self.symmetric:
            pen = pen + ((x - x.T).abs() ** 2).sum()
        return pen

    def violation(self, x: np.ndarray) -> float:
        v = unitary_residual(x)
        if self.symmetric:
            v = max(v, float(np.linalg.norm(x - x.T)))
        return v

    def describe(self) -> str:
        return "Unitary(symmetric)" if self.symmetric else "Unitary"


@dataclass(frozen=True)
class BlockUnitary(ConstraintSet):
    """Block-diagonal with unitary blocks of size ``group_size`` (group-connected BD-RIS); zero elsewhere."""

    group_size: int
    symmetric: bool = False
    tol: float = UNITARY_ATOL

    def _blocks(self, n: int) -> list[slice]:
        if n % self.group_size:
            raise ValueError(f"matrix size {n} is not a multiple of group_size {self.group_size}")
        return [slice(i, i + self.group_size) for i in range(0, n, self.group_size)]

    def project(self, x: np.ndarray) -> np.ndarray:
        inner = Unitary(symmetric=self.symmetric)
        out = np.zeros_like(x)
        for b in self._blocks(x.shape[-1]):
            out[b, b] = inner.project(x[b, b])
        return out

    def project_torch(self, x: "torch.Tensor") -> "torch.Tensor":
        import torch

        inner = Unitary(symmetric=self.symmetric)
        blocks = [inner.project_torch(x[b, b]) for b in self._blocks(x.shape[-1])]
        return torch.block_diag(*blocks)

    def penalty_torch(self, x: "torch.Tensor") -> "torch.Tensor":
        """Eq. (33) of seed 000 per block, ``sum_g ||X_g^H X_g - I||_F^2``, plus the squared entries outside
        the blocks (polynomial, so smooth where the distance to the projection's SVD is not: at a
        block-unitary point the singular values coincide and its gradient is undefined)."""
        import torch

        inner = Unitary(symmetric=self.symmetric)
        mask = torch.ones(x.shape, dtype=torch.bool, device=x.device)
        pen = x.new_zeros((), dtype=x.real.dtype)
        for b in self._blocks(x.shape[-1]):
            mask[b, b] = False
            pen = pen + inner.penalty_torch(x[b, b])
        return pen + (x[mask].abs() ** 2).sum()

    def violation(self, x: np.ndarray) -> float:
        inner = Unitary(symmetric=self.symmetric)
        mask = np.zeros(x.shape, dtype=bool)
        worst = 0.0
        for b in self._blocks(x.shape[-1]):
            mask[b, b] = True
            worst = max(worst, inner.violation(x[b, b]))
        return max(worst, float(np.max(np.abs(x[~mask]), initial=0.0)))

    def describe(self) -> str:
        return f"BlockUnitary({self.group_size}{', symmetric' if self.symmetric else ''})"


@dataclass(frozen=True)
class Box(ConstraintSet):
    """Real entries in ``[lo, hi]`` (movable-antenna positions, power splits)."""

    lo: float
    hi: float
    tol: float = 1e-9

    def project(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x, self.lo, self.hi)

    def project_torch(self, x: "torch.Tensor") -> "torch.Tensor":
        return x.clamp(self.lo, self.hi)

    def violation(self, x: np.ndarray) -> float:
        return float(np.max(np.maximum(x - self.hi, self.lo - x), initial=0.0).clip(min=0.0))

    def describe(self) -> str:
        return f"Box({self.lo:g}, {self.hi:g})"


@dataclass(frozen=True)
class Simplex(ConstraintSet):
    """Real ``x >= 0`` with ``sum(x) <= total`` (``equality=True``: ``== total``)."""

    total: float = 1.0
    equality: bool = False
    tol: float = 1e-9

    def project(self, x: np.ndarray) -> np.ndarray:
        y = np.maximum(x, 0.0)
        if not self.equality and y.sum() <= self.total:
            return y
        # Euclidean projection onto {y >= 0, sum y = total} (sort-based, Held et al. 1974).
        flat = np.asarray(x, dtype=float).ravel()
        u = np.sort(flat)[::-1]
        css = np.cumsum(u) - self.total
        idx = np.arange(1, u.size + 1)
        rho = np.nonzero(u - css / idx > 0)[0][-1]
        theta = css[rho] / (rho + 1)
        return np.maximum(flat - theta, 0.0).reshape(np.shape(x))

    def violation(self, x: np.ndarray) -> float:
        neg = float(np.max(-x, initial=0.0))
        excess = float(x.sum() - self.total)
        return max(neg, abs(excess) if self.equality else max(excess, 0.0))

    def describe(self) -> str:
        return f"Simplex({self.total:g}{', equality' if self.equality else ''})"


@dataclass(frozen=True)
class Variable:
    """An optimisation variable: its shape, whether it is complex, and the set it must lie in."""

    shape: tuple[int, ...]
    constraint: ConstraintSet
    complex: bool = True

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.complex128 if self.complex else np.float64)


@dataclass
class Feasibility:
    """Per-constraint violations (residual minus nothing: the raw residual) and the overall verdict."""

    violations: dict[str, float]
    tolerances: dict[str, float]
    feasible: bool

    @property
    def worst(self) -> float:
        return max(self.violations.values(), default=0.0)


@dataclass
class MisoView:
    """A linear-precoding sub-problem inside a problem, with every other variable held fixed.

    Rates are ``sum_k weights_k log2(1 + |h_k^H v_k|^2 / (sum_{j != k} |h_k^H v_j|^2 + sigma2))`` with
    ``H`` of shape ``(K, Nt)`` (row ``k`` = ``h_k``) and the precoder ``x[variable]`` (``Nt x K``) in a power
    ball of ``power``. Precoder algorithms (WMMSE, ZF ...) use it on any scenario that offers it: the MISO
    channel itself for ``miso``, the effective channel ``h_k^H Phi G`` for ``bdris``.
    """

    H: np.ndarray
    weights: np.ndarray
    power: float
    sigma2: float
    variable: str


@dataclass
class WarmStart:
    """A simpler problem on the same channel whose solution seeds this one (a continuation stage).

    ``name`` is what solvers' ``warm`` option selects (e.g. ``diagonal`` for a BD-RIS, whose warm start is
    the diagonal RIS on the same channel, seed 000 section VI-B); ``embed`` maps a point of ``problem`` to
    a feasible point of the original problem with the same utility (e.g. ``phi -> diag(phi)``).
    """

    name: str
    problem: "Problem"
    embed: Callable[[Vars], Vars]


@dataclass
class Problem:
    """One channel realisation of a scenario, as an optimisation problem (maximise :meth:`utility`).

    Subclasses implement :meth:`utility`, :meth:`loss_torch` and the initialisers; the rest has
    working defaults built from :attr:`variables`.
    """

    variables: dict[str, Variable]
    scenario: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    #: Names accepted by :meth:`initial`, the first one being the default.
    init_methods: tuple[str, ...] = ("random",)

    # -- the model -------------------------------------------------------------------------------
    def utility(self, x: Vars) -> float:
        """The authoritative objective in float64 (e.g. weighted sum rate in bit/s/Hz)."""
        raise NotImplementedError

    def loss_torch(self, x: Mapping[str, "torch.Tensor"]) -> "torch.Tensor":
        """Differentiable loss: negative utility plus penalties for constraints the solver cannot project on."""
        raise NotImplementedError

    def constraints(self, x: Vars) -> dict[str, np.ndarray]:
        """Scenario inequality constraints beyond the variable sets, each ``>= 0`` when satisfied."""
        return {}

    def miso_view(self, x: Vars) -> MisoView:
        """The precoding sub-problem at ``x`` (other variables fixed), for scenarios that have one."""
        raise NotImplementedError(f"scenario {self.scenario!r} has no linear-precoding view")

    def closed_form_optimum(self) -> float | None:
        """The optimal utility where a closed form is known (e.g. one user), else ``None``."""
        return None

    def warm_start(self) -> WarmStart | None:
        """The simpler stage a solver may solve first (``warm=<name>`` options), or ``None``."""
        return None

    @property
    def has_miso_view(self) -> bool:
        return type(self).miso_view is not Problem.miso_view

    # -- sets, feasibility, starting points -----------------------------------------------------
    def project(self, x: Vars) -> Vars:
        return {k: self.variables[k].constraint.project(np.asarray(v)) for k, v in x.items()}

    def feasibility(self, x: Vars) -> Feasibility:
        viol: dict[str, float] = {}
        tols: dict[str, float] = {}
        for name, var in self.variables.items():
            value = np.asarray(x[name])
            if value.shape != var.shape:
                raise ValueError(f"variable {name!r} has shape {value.shape}, expected {var.shape}")
            viol[name] = var.constraint.violation(value)
            tols[name] = var.constraint.tol
        for name, c in self.constraints(x).items():
            viol[name] = float(np.max(-np.asarray(c), initial=0.0).clip(min=0.0))
            tols[name] = CONSTRAINT_ATOL
        ok = all(np.isfinite(v) and v <= tols[k] for k, v in viol.items())
        return Feasibility(viol, tols, ok)

    def initial(self, method: str | None = None, rng: np.random.Generator | None = None) -> Vars:
        """A standard feasible starting point by name (see :attr:`init_methods`)."""
        method = method or self.init_methods[0]
        if method not in self.init_methods:
            raise ValueError(f"unknown initial point {method!r}; valid: {', '.join(self.init_methods)}")
        return self._initial(method, rng if rng is not None else np.random.default_rng(0))

    def _initial(self, method: str, rng: np.random.Generator) -> Vars:
        if method != "random":
            raise NotImplementedError(method)
        return self.random_feasible(rng)

    def random_feasible(self, rng: np.random.Generator) -> Vars:
        """A random point projected onto every variable's set (full power for power balls)."""
        out: Vars = {}
        for name, var in self.variables.items():
            z = rng.standard_normal(var.shape)
            if var.complex:
                z = (z + 1j * rng.standard_normal(var.shape)) / np.sqrt(2)
            if isinstance(var.constraint, PowerBall):
                z = z * np.sqrt(var.constraint.budget / np.sum(np.abs(z) ** 2))
            out[name] = var.constraint.project(z)
        return out


def to_numpy_vars(x: Mapping[str, Any]) -> Vars:
    """Detach torch tensors (or anything array-like) into float64/complex128 NumPy arrays."""
    out: Vars = {}
    for k, v in x.items():
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        arr = np.asarray(v)
        out[k] = arr.astype(np.complex128 if np.iscomplexobj(arr) else np.float64, copy=True)
    return out


ProblemFactory = Callable[..., Problem]
