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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from .linalg import (polar, polar_torch, project_symmetric_unitary, project_symmetric_unitary_torch,
                     stacked_matmul, unitary_residual)

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

    def project_torch_batch(self, x: "torch.Tensor") -> "torch.Tensor":
        """:meth:`project_torch` of every ``x[b]`` of a stack (leading batch dimension), stacked; sets with
        a vectorised form override this (batched solvers, equal to the per-realisation projection).

        A vectorised form must reproduce the per-row rounding on the CPU (a batched solver reproduces the
        unbatched run, see :func:`wbench.linalg.stacked_matmul`)."""
        import torch

        return torch.stack([self.project_torch(v) for v in x])

    def penalty_torch_batch(self, x: "torch.Tensor") -> "torch.Tensor":
        """:meth:`penalty_torch` of every ``x[b]`` of a stack, as a vector of length ``x.shape[0]``."""
        import torch

        return torch.stack([self.penalty_torch(v) for v in x])

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

    def project_torch_batch(self, x: "torch.Tensor") -> "torch.Tensor":
        import torch

        if x.device.type == "cpu" and x.is_complex() and x[0].numel() % 16:
            # the complex modulus per row: it rounds differently in SIMD lanes and in the scalar tail, so a
            # stacked one differs from the single one unless every row fills whole (unrolled) vectors, which
            # rows of a multiple of 16 entries do on every CPU torch vectorises for
            from .linalg import stack_rows

            modulus = stack_rows([r.abs() for r in x.unbind(0)])
        else:
            modulus = x.abs()
        # summed over the row's own dimensions (not flattened: a copy would change the summation order)
        power = (modulus ** 2).sum(dim=tuple(range(1, x.dim())), keepdim=True)
        return x * torch.sqrt(self.budget / torch.clamp(power, min=self.budget))

    def penalty_torch_batch(self, x: "torch.Tensor") -> "torch.Tensor":
        if x.device.type == "cpu":  # per row: the vectorised sum rounds differently on small matrices
            return super().penalty_torch_batch(x)
        return ((x.abs() ** 2).sum(dim=tuple(range(1, x.dim()))) / self.budget - 1.0).clamp(min=0.0) ** 2

    def describe(self) -> str:
        return f"PowerBall({self.budget:.6g})"


@dataclass(frozen=True)
class BlockPowerBall(ConstraintSet):
    """Several power budgets on blocks of one variable: ``||x_b||_F^2 <= budgets[b]`` for every block ``b``.

    The blocks are consecutive runs of ``sizes[b]`` indices along ``axis`` (e.g. the rows ``N_t,b`` of a
    precoder that base station ``b`` transmits, with one budget per BS: CoMP, SCENARIOS.md section 6).
    The set is a product of balls on disjoint coordinates, so its Euclidean projection is the projection of
    every block onto its own ball: block-wise scaling, ``x_b min(1, sqrt(budget_b / ||x_b||^2))``.
    ``full=True`` marks that optima put every block on its sphere.
    """

    budgets: tuple[float, ...]
    sizes: tuple[int, ...]
    axis: int = 0
    full: bool = True
    tol: float = POWER_RTOL

    def __post_init__(self) -> None:
        budgets = tuple(float(b) for b in np.atleast_1d(self.budgets))
        sizes = tuple(int(n) for n in np.atleast_1d(self.sizes))
        if len(budgets) != len(sizes) or not budgets:
            raise ValueError(f"BlockPowerBall: {len(budgets)} budgets for {len(sizes)} blocks")
        if not all(np.isfinite(b) and b > 0 for b in budgets) or not all(n >= 1 for n in sizes):
            raise ValueError("BlockPowerBall: budgets must be positive and block sizes at least 1")
        object.__setattr__(self, "budgets", budgets)
        object.__setattr__(self, "sizes", sizes)

    @classmethod
    def uniform(cls, budget: float, blocks: int, size: int, axis: int = 0, full: bool = True) -> "BlockPowerBall":
        """``blocks`` blocks of ``size`` indices with the same ``budget`` each (e.g. ``N`` BSs of ``I`` antennas)."""
        return cls((float(budget),) * blocks, (int(size),) * blocks, axis, full)

    @property
    def total(self) -> float:
        return float(sum(self.budgets))

    def block_index(self) -> np.ndarray:
        """The block of every index along ``axis`` (length ``sum(sizes)``)."""
        return np.repeat(np.arange(len(self.sizes)), self.sizes)

    def _check(self, shape: tuple[int, ...]) -> int:
        axis = self.axis % len(shape)
        if shape[axis] != sum(self.sizes):
            raise ValueError(f"BlockPowerBall: axis {self.axis} has {shape[axis]} entries, the blocks "
                             f"cover {sum(self.sizes)}")
        return axis

    def block_powers(self, x: np.ndarray) -> np.ndarray:
        """``||x_b||_F^2`` per block."""
        x = np.asarray(x)
        axis = self._check(x.shape)
        per_index = np.sum(np.abs(np.moveaxis(x, axis, 0)) ** 2, axis=tuple(range(1, x.ndim)))
        return np.bincount(self.block_index(), weights=per_index, minlength=len(self.sizes))

    def _factors(self, powers: np.ndarray) -> np.ndarray:
        budgets = np.asarray(self.budgets)
        over = powers > budgets
        return np.where(over, np.sqrt(budgets / np.where(over, powers, 1.0)), 1.0)

    def project(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        axis = self._check(x.shape)
        factors = self._factors(self.block_powers(x))
        if np.all(factors == 1.0):
            return x
        shape = [1] * x.ndim
        shape[axis] = -1
        return x * factors[self.block_index()].reshape(shape)

    def _torch_powers(self, x: "torch.Tensor") -> tuple[int, list["torch.Tensor"]]:
        axis = self._check(tuple(x.shape))
        blocks = list(x.split(list(self.sizes), dim=axis))
        return axis, blocks

    def project_torch(self, x: "torch.Tensor") -> "torch.Tensor":
        import torch

        axis, blocks = self._torch_powers(x)
        out = []
        for blk, budget in zip(blocks, self.budgets):
            power = (blk.abs() ** 2).sum()
            out.append(blk * torch.sqrt(budget / torch.clamp(power, min=budget)))
        return torch.cat(out, dim=axis)

    def violation(self, x: np.ndarray) -> float:
        rel = self.block_powers(x) / np.asarray(self.budgets) - 1.0
        return float(max(0.0, np.max(rel)))

    def penalty_torch(self, x: "torch.Tensor") -> "torch.Tensor":
        """``sum_b max(0, ||x_b||^2 / budget_b - 1)^2``."""
        _, blocks = self._torch_powers(x)
        terms = [((blk.abs() ** 2).sum() / budget - 1.0).clamp(min=0.0) ** 2
                 for blk, budget in zip(blocks, self.budgets)]
        return sum(terms[1:], terms[0])

    def full_power(self, x: np.ndarray) -> np.ndarray:
        """Every nonzero block scaled onto its sphere (the random start of a full-power set)."""
        x = np.asarray(x)
        axis = self._check(x.shape)
        powers = self.block_powers(x)
        f = np.where(powers > 0, np.sqrt(np.asarray(self.budgets) / np.where(powers > 0, powers, 1.0)), 1.0)
        shape = [1] * x.ndim
        shape[axis] = -1
        return x * f[self.block_index()].reshape(shape)

    def describe(self) -> str:
        budgets = ",".join(f"{b:.6g}" for b in self.budgets)
        sizes = ",".join(str(n) for n in self.sizes)
        return f"BlockPowerBall([{budgets}] on blocks [{sizes}] of axis {self.axis})"


@dataclass(frozen=True)
class Unconstrained(ConstraintSet):
    """No constraint on the variable itself (e.g. a hybrid precoder's digital part, whose power is the
    joint constraint :class:`ProductPower`). Projection is the identity; only non-finite entries violate."""

    tol: float = 0.0

    def project(self, x: np.ndarray) -> np.ndarray:
        return x

    def project_torch(self, x: "torch.Tensor") -> "torch.Tensor":
        return x

    def violation(self, x: np.ndarray) -> float:
        return 0.0 if np.all(np.isfinite(x)) else float("inf")

    def penalty_torch(self, x: "torch.Tensor") -> "torch.Tensor":
        return x.new_zeros((), dtype=x.real.dtype)


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

    def project_torch_batch(self, x: "torch.Tensor") -> "torch.Tensor":
        return self.project_torch(x)  # entrywise: exact on every device

    def penalty_torch_batch(self, x: "torch.Tensor") -> "torch.Tensor":
        return ((x.abs() ** 2 - 1.0) ** 2).sum(dim=tuple(range(1, x.dim())))


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

    def project_torch_batch(self, x: "torch.Tensor") -> "torch.Tensor":
        import torch

        if self.symmetric or x.device.type == "cpu":  # on the CPU per matrix: exactly the unbatched SVD
            return super().project_torch_batch(x)     # backward (a batched one uses batched products)
        u, _, vh = torch.linalg.svd(x)  # polar_torch with one batched SVD
        return stacked_matmul(u, vh)

    def penalty_torch_batch(self, x: "torch.Tensor") -> "torch.Tensor":
        import torch

        if self.symmetric or x.device.type == "cpu":
            return super().penalty_torch_batch(x)
        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        return ((stacked_matmul(x.conj().transpose(-2, -1), x) - eye).abs() ** 2).sum((-2, -1))

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

    def project_torch(self, x: "torch.Tensor") -> "torch.Tensor":
        """The same projection in torch (differentiable almost everywhere)."""
        import torch

        flat = x.reshape(-1)
        y = flat.clamp(min=0.0)
        if not self.equality and float(y.detach().sum()) <= self.total:
            return y.reshape(x.shape)
        u = torch.sort(flat.detach(), descending=True).values
        css = torch.cumsum(u, 0) - self.total
        idx = torch.arange(1, u.numel() + 1, dtype=u.dtype, device=u.device)
        rho = int(torch.nonzero(u - css / idx > 0)[-1])
        order = torch.argsort(flat.detach(), descending=True)[: rho + 1]
        theta = (flat[order].sum() - self.total) / (rho + 1)
        return (flat - theta).clamp(min=0.0).reshape(x.shape)

    def violation(self, x: np.ndarray) -> float:
        neg = float(np.max(-x, initial=0.0))
        excess = float(x.sum() - self.total)
        return max(neg, abs(excess) if self.equality else max(excess, 0.0))

    def describe(self) -> str:
        return f"Simplex({self.total:g}{', equality' if self.equality else ''})"


#: The roles a variable declares: what it *is*, so that solvers find it without hard-coding a scenario's
#: names (``V`` in ``miso``, ``P`` and ``Phi`` in ``bdris``). ``""`` declares nothing.
ROLES: dict[str, str] = {
    "precoder": "linear precoder, one column per stream (Nt x streams); the WMMSE family optimises it",
    "scattering": "RIS / BD-RIS scattering matrix (or the phase vector of a diagonal RIS)",
    "analog_precoder": "analog (phase-shifter) precoder F_RF of a hybrid transmitter",
    "digital_precoder": "digital (baseband) precoder F_BB of a hybrid transmitter",
    "positions": "movable-antenna positions",
    "split": "common-rate split of rate splitting (c_k)",
    "power": "power allocation or amplitudes per user or stream",
    "association": "user-to-AP / user-to-RIS association (binary or relaxed)",
    "combiner": "receive combiners",
    "other": "anything else",
}


@dataclass(frozen=True)
class Variable:
    """An optimisation variable: its shape, whether it is complex, the set it must lie in, and its role."""

    shape: tuple[int, ...]
    constraint: ConstraintSet
    complex: bool = True
    role: str = ""

    def __post_init__(self) -> None:
        if self.role and self.role not in ROLES:
            raise ValueError(f"unknown variable role {self.role!r}; valid: {', '.join(ROLES)}")

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.complex128 if self.complex else np.float64)


class JointConstraint:
    """A constraint coupling several variables, applied after their own sets.

    ``project`` is a feasibility-restoring map that changes only the variable ``rescaled`` (not, in
    general, the Euclidean projection onto the coupled set); ``violation`` is a non-negative residual
    (feasible when ``<= tol``); ``residual_torch`` is a smooth scalar ``>= 0`` when satisfied, for
    constraint-aware solvers; ``penalty_torch`` (default ``relu(-residual)^2``) for penalty solvers.
    """

    tol: float

    @property
    def names(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def rescaled(self) -> str:
        raise NotImplementedError

    @property
    def name(self) -> str:
        """The key of this constraint in :attr:`Feasibility.violations`."""
        raise NotImplementedError

    def project(self, x: Mapping[str, np.ndarray]) -> Vars:
        raise NotImplementedError

    def project_torch(self, x: Mapping[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
        raise NotImplementedError

    def violation(self, x: Mapping[str, np.ndarray]) -> float:
        raise NotImplementedError

    def residual_torch(self, x: Mapping[str, "torch.Tensor"]) -> "torch.Tensor":
        raise NotImplementedError

    def penalty_torch(self, x: Mapping[str, "torch.Tensor"]) -> "torch.Tensor":
        return (-self.residual_torch(x)).clamp(min=0.0) ** 2

    def full_power(self, x: Mapping[str, np.ndarray]) -> Vars:
        """A random start on the boundary where optima lie (default: :meth:`project`)."""
        return self.project(x)

    def describe(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class ProductPower(JointConstraint):
    """``||X_left X_right||_F^2 <= budget``: the transmit power of a hybrid precoder ``F_RF F_BB``.

    Seed 002 (GGML hybrid precoding; SCENARIOS.md section 5) normalises the digital part,
    ``F_BB <- sqrt(P) F_BB / ||F_RF F_BB||_F`` (its eq. (16)); :meth:`project` is that rescaling of
    ``right`` when the power exceeds the budget (``full=True``: optima lie on the boundary, and a random
    start is put there). It restores feasibility but is not the Euclidean projection onto the coupled set.
    """

    left: str
    right: str
    budget: float
    full: bool = True
    tol: float = POWER_RTOL

    @property
    def names(self) -> tuple[str, ...]:
        return (self.left, self.right)

    @property
    def rescaled(self) -> str:
        return self.right

    @property
    def name(self) -> str:
        return f"power({self.left} {self.right})"

    def power(self, x: Mapping[str, np.ndarray]) -> float:
        return float(np.sum(np.abs(np.asarray(x[self.left]) @ np.asarray(x[self.right])) ** 2))

    def _scaled(self, x: Mapping[str, np.ndarray], only_down: bool) -> Vars:
        out = dict(x)
        power = self.power(x)
        if power == 0.0 or (only_down and power <= self.budget):
            return out
        out[self.right] = np.asarray(x[self.right]) * np.sqrt(self.budget / power)
        return out

    def project(self, x: Mapping[str, np.ndarray]) -> Vars:
        return self._scaled(x, only_down=True)

    def full_power(self, x: Mapping[str, np.ndarray]) -> Vars:
        return self._scaled(x, only_down=not self.full)

    def _torch_power(self, x: Mapping[str, "torch.Tensor"]) -> "torch.Tensor":
        return ((x[self.left] @ x[self.right]).abs() ** 2).sum()

    def project_torch(self, x: Mapping[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
        import torch

        out = dict(x)
        power = self._torch_power(x)
        out[self.right] = x[self.right] * torch.sqrt(self.budget / torch.clamp(power, min=self.budget))
        return out

    def violation(self, x: Mapping[str, np.ndarray]) -> float:
        return max(0.0, self.power(x) / self.budget - 1.0)

    def residual_torch(self, x: Mapping[str, "torch.Tensor"]) -> "torch.Tensor":
        """``1 - ||X_left X_right||^2 / budget``."""
        return 1.0 - self._torch_power(x) / self.budget

    def describe(self) -> str:
        return f"ProductPower({self.left} {self.right}, {self.budget:.6g})"


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
class PrecodingView:
    """A linear-precoding sub-problem inside a problem, with every other variable held fixed.

    Users ``k = 0..K-1`` each decode one stream, column ``streams[k]`` of the precoder ``x[variable]``
    (``Nt x S``; all columns in order when ``streams`` is ``None``, then ``S = K``):

        max_V  sum_k weights_k log2(1 + |h_k^H v_k|^2 / (sum_{j != k} |h_k^H v_j|^2 + sigma2_k))
        s.t.   ||V_b||_F^2 <= budgets_b  for every block b of rows (one block: ||V||_F^2 <= power)

    with ``H`` of shape ``(K, Nt)`` (row ``k`` = the effective channel ``h_k``, so ``y_k = h_k^H x``: the
    channel itself for ``miso``, ``h_k^H Phi G`` for ``bdris``, ``H F_RF`` for a hybrid's digital part).
    ``sigma2`` is a scalar or one value per user: the noise plus the interference of precoder columns the
    view holds fixed, whose power is already taken off the budgets (see :meth:`build`). Precoder
    algorithms (WMMSE, MRT/ZF/RZF, the DPC bound ...) use it on any problem that offers it, without
    reading the scenario's class.
    """

    H: np.ndarray
    weights: np.ndarray
    power: float
    sigma2: float | np.ndarray
    variable: str
    streams: tuple[int, ...] | None = None
    #: Per-block budgets of the view's columns (``None``: one block with budget ``power``).
    budgets: np.ndarray | None = None
    #: Row-block sizes (``sum = Nt``) of the budgets.
    blocks: tuple[int, ...] | None = None

    @property
    def users(self) -> int:
        return int(np.shape(self.H)[0])

    @property
    def antennas(self) -> int:
        return int(np.shape(self.H)[1])

    @property
    def n_blocks(self) -> int:
        return 1 if self.blocks is None else len(self.blocks)

    def block_index(self) -> np.ndarray:
        """The block of every precoder row (all zero for one block)."""
        if self.blocks is None:
            return np.zeros(self.antennas, dtype=np.int64)
        return np.repeat(np.arange(len(self.blocks)), self.blocks)

    def block_budgets(self) -> np.ndarray:
        return np.array([float(self.power)]) if self.budgets is None else np.asarray(self.budgets, float)

    def noise(self) -> np.ndarray:
        """Noise plus fixed interference per user, shape ``(K,)``."""
        return np.broadcast_to(np.asarray(self.sigma2, dtype=np.float64), (self.users,)).copy()

    @property
    def simple(self) -> bool:
        """One power budget, every precoder column, one noise level: the plain MU-MISO problem."""
        return self.blocks is None and self.streams is None and np.ndim(self.sigma2) == 0

    def start(self, x: Mapping[str, np.ndarray]) -> np.ndarray:
        """The view's precoder (``Nt x K``) at ``x``."""
        X = np.asarray(x[self.variable])
        return X if self.streams is None else X[:, list(self.streams)]

    def embed(self, x: Mapping[str, np.ndarray], V: np.ndarray) -> Vars:
        """``x`` with the view's columns of the precoder replaced by ``V``."""
        out = dict(x)
        if self.streams is None:
            out[self.variable] = V
        else:
            X = np.array(x[self.variable], dtype=np.complex128, copy=True)
            X[:, list(self.streams)] = V
            out[self.variable] = X
        return out

    def wsr(self, V: np.ndarray) -> float:
        """The view's weighted sum rate (bit/s/Hz) at precoder ``V`` (``Nt x K``)."""
        from .rates import weighted_sum_rate

        return weighted_sum_rate(np.asarray(self.H).conj() @ V, self.weights, self.noise())

    def full_power(self, V: np.ndarray) -> np.ndarray:
        """``V`` scaled by the largest common factor that keeps every block within its budget."""
        if self.blocks is None:
            return V * np.sqrt(self.power / np.sum(np.abs(V) ** 2))
        per_row = np.sum(np.abs(V) ** 2, axis=1)
        powers = np.bincount(self.block_index(), weights=per_row, minlength=self.n_blocks)
        budgets = self.block_budgets()
        used = powers > 0
        return V * np.sqrt(np.min(budgets[used] / powers[used]))

    @classmethod
    def build(cls, problem: "Problem", x: Mapping[str, np.ndarray], H: np.ndarray, weights: np.ndarray,
              sigma2: float, streams: tuple[int, ...] | None = None,
              interferers: tuple[int, ...] | None = None) -> "PrecodingView":
        """The view of ``problem``'s precoder (the variable with role ``precoder``) at ``x``.

        ``streams``: the precoder columns optimised (user ``k`` decodes ``streams[k]``; default all).
        ``interferers``: the fixed columns every user hears as noise (default: every column not in
        ``streams``; a scenario with successive decoding passes the ones not yet cancelled). The budgets of
        its set (:class:`PowerBall`, or :class:`BlockPowerBall` on the rows) less the power of the fixed
        columns are the view's budgets.
        """
        name = problem.role_variable("precoder")
        if name is None:
            raise ValueError(f"scenario {problem.scenario!r}: no variable has the role 'precoder'")
        c = problem.variables[name].constraint
        X = np.asarray(x[name])
        ncol = X.shape[1]
        chosen = tuple(range(ncol)) if streams is None else tuple(int(j) for j in streams)
        if np.shape(H)[0] != len(chosen):
            raise ValueError(f"precoding view: {np.shape(H)[0]} users for {len(chosen)} streams")
        fixed = [j for j in range(ncol) if j not in chosen]
        hearing = fixed if interferers is None else list(interferers)
        noise: float | np.ndarray = float(sigma2)
        if hearing:
            noise = float(sigma2) + np.sum(np.abs(np.asarray(H).conj() @ X[:, hearing]) ** 2, axis=1)
        fixed_rows = np.sum(np.abs(X[:, fixed]) ** 2, axis=1) if fixed else np.zeros(X.shape[0])
        if isinstance(c, PowerBall) and np.ndim(c.budget) == 0:
            power = max(float(c.budget) - float(fixed_rows.sum()), 0.0)
            budgets, blocks = None, None
        elif isinstance(c, BlockPowerBall) and c.axis % X.ndim == 0:
            used = np.bincount(c.block_index(), weights=fixed_rows, minlength=len(c.sizes))
            budgets = np.maximum(np.asarray(c.budgets) - used, 0.0)
            blocks = tuple(c.sizes)
            power = float(budgets.sum())
        else:
            raise ValueError(f"precoding view: the precoder's set {c.describe()} is not a power ball")
        return cls(np.asarray(H), np.asarray(weights, dtype=np.float64), power, noise, name,
                   None if streams is None else chosen, budgets, blocks)


#: The name of :class:`PrecodingView` before it had blocks and streams.
MisoView = PrecodingView


def linear_precoder(view: PrecodingView, method: str) -> np.ndarray:
    """MRT, ZF or RZF on the view's channel, scaled to full power (``Nt x K``).

    With ``A`` the rows ``h_k^H``: MRT ``A^H``, ZF ``A^H (A A^H)^{-1}`` (needs ``K <= Nt``), RZF
    ``A^H (A A^H + K sigma2 / P I)^{-1}`` (the regulariser uses the mean noise over users); then the largest
    common scale within every block budget (:meth:`PrecodingView.full_power`; one block: full power).
    """
    A = np.asarray(view.H).conj()  # rows h_k^H: received signal y = A V s + n
    k = A.shape[0]
    if method == "mrt":
        V = A.conj().T
    elif method == "zf":
        if k > A.shape[1]:
            raise ValueError(f"zf needs K <= Nt, has K={k}, Nt={A.shape[1]}")
        V = A.conj().T @ np.linalg.inv(A @ A.conj().T)
    elif method == "rzf":
        reg = k * float(np.mean(view.sigma2)) / view.power
        V = A.conj().T @ np.linalg.inv(A @ A.conj().T + reg * np.eye(k))
    else:
        raise ValueError(f"unknown linear precoder {method!r}; valid: mrt, zf, rzf")
    return view.full_power(V)


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
    #: Constraints coupling several variables, applied after the variable sets (e.g. :class:`ProductPower`).
    joint: tuple[JointConstraint, ...] = ()
    #: Absolute feasibility tolerance of the scenario constraints, in their own units (bit/s/Hz for rates).
    constraint_tol: float = CONSTRAINT_ATOL
    #: Default weight of ``sum_c relu(-c)^2`` in :meth:`penalised_loss_torch` (solver options may override).
    constraint_penalty: float = 1e3

    # -- the model -------------------------------------------------------------------------------
    def utility(self, x: Vars) -> float:
        """The authoritative objective in float64 (e.g. weighted sum rate in bit/s/Hz)."""
        raise NotImplementedError

    def loss_torch(self, x: Mapping[str, "torch.Tensor"]) -> "torch.Tensor":
        """Differentiable loss: the negative utility (plus any penalty the scenario's paper puts in its own
        loss). The generic penalty of :meth:`constraints` is added by :meth:`penalised_loss_torch`, not here."""
        raise NotImplementedError

    def loss_and_grad_numpy(self, x: Vars) -> tuple[float, Vars] | None:
        """:meth:`loss_torch` and its gradient (torch's convention, ``dL/dRe x + i dL/dIm x``) in NumPy, for a
        scenario that writes them out by hand to spare autograd's per-operation overhead (SciPy-driven solvers
        evaluate them thousands of times per run); ``None`` (the default): solvers use torch autograd."""
        return None

    @classmethod
    def loss_torch_batch(cls, problems: Sequence["Problem"], x: Mapping[str, "torch.Tensor"]) -> "torch.Tensor":
        """:meth:`loss_torch` of several realisations at once, for batched solvers: ``x`` holds every
        variable stacked along a leading dimension (``x[name][b]`` belongs to ``problems[b]``, all of this
        class and of the same shapes); returns the vector of the ``len(problems)`` losses.

        This default evaluates them one by one (correct for every scenario); a scenario whose loss
        vectorises overrides it with the same formula on stacked data.
        """
        import torch

        return torch.stack([p.loss_torch({k: v[b] for k, v in x.items()}) for b, p in enumerate(problems)])

    @classmethod
    def penalised_loss_torch_batch(cls, problems: Sequence["Problem"], x: Mapping[str, "torch.Tensor"],
                                   weight: float | None = None) -> "torch.Tensor":
        """:meth:`penalised_loss_torch` of several realisations at once (stacked as in
        :meth:`loss_torch_batch`): :meth:`loss_torch_batch` plus each realisation's constraint penalty.
        A scenario that overrides :meth:`penalised_loss_torch` overrides this too."""
        import torch

        loss = cls.loss_torch_batch(problems, x)
        if not problems[0].has_constraints_torch:
            return loss
        w = [p.constraint_penalty if weight is None else float(weight) for p in problems]
        return loss + torch.stack([w[b] * p.constraint_penalty_torch({k: v[b] for k, v in x.items()})
                                   for b, p in enumerate(problems)])

    def constraints(self, x: Vars) -> dict[str, np.ndarray]:
        """Scenario inequality constraints beyond the variable sets, each ``>= 0`` when satisfied."""
        return {}

    def constraints_torch(self, x: Mapping[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
        """The same constraints as :meth:`constraints` on torch tensors (differentiable), same keys.

        A scenario that overrides :meth:`constraints` overrides this too, or penalty solvers decline it.
        """
        if not self.has_constraints:
            return {}
        raise NotImplementedError(f"scenario {self.scenario!r} has no torch form of its constraints")

    @property
    def has_constraints(self) -> bool:
        """Whether the scenario defines constraints beyond the variable sets (its class overrides them)."""
        return type(self).constraints is not Problem.constraints

    @property
    def has_constraints_torch(self) -> bool:
        return type(self).constraints_torch is not Problem.constraints_torch

    def constraint_penalty_torch(self, x: Mapping[str, "torch.Tensor"]) -> "torch.Tensor":
        """``sum_c sum_i relu(-c_i)^2`` over :meth:`constraints_torch` (zero exactly where they hold)."""
        terms = [(-c).clamp(min=0.0).square().sum() for c in self.constraints_torch(x).values()]
        if not terms:
            first = next(iter(x.values()))
            return first.new_zeros((), dtype=first.real.dtype)
        return sum(terms[1:], terms[0])

    def penalised_loss_torch(self, x: Mapping[str, "torch.Tensor"], weight: float | None = None
                             ) -> "torch.Tensor":
        """What penalty solvers minimise: ``loss_torch(x) + weight * sum_c relu(-c)^2`` over the scenario
        constraints (:meth:`constraints_torch`; ``weight`` defaults to :attr:`constraint_penalty`). Without
        scenario constraints in torch this is ``loss_torch(x)`` itself."""
        loss = self.loss_torch(x)
        if not self.has_constraints_torch:
            return loss
        w = self.constraint_penalty if weight is None else float(weight)
        return loss + w * self.constraint_penalty_torch(x)

    def precoding_view(self, x: Vars) -> PrecodingView:
        """The linear-precoding sub-problem at ``x`` (other variables fixed), for scenarios that have one
        (built with :meth:`PrecodingView.build` from the variable with role ``precoder``)."""
        raise NotImplementedError(f"scenario {self.scenario!r} has no linear-precoding view")

    def miso_view(self, x: Vars) -> PrecodingView:
        """The former name of :meth:`precoding_view`."""
        return self.precoding_view(x)

    def closed_form_optimum(self) -> float | None:
        """The optimal utility where a closed form is known (e.g. one user), else ``None``."""
        return None

    def warm_start(self) -> WarmStart | None:
        """The simpler stage a solver may solve first (``warm=<name>`` options), or ``None``."""
        return None

    def extra_metrics(self, x: Vars) -> dict[str, float]:
        """Further numbers the harness records for a scored point, by name (e.g. a QoS shortfall on held-out
        draws); the leaderboard shows their means as columns. None by default."""
        return {}

    @property
    def has_precoding_view(self) -> bool:
        return type(self).precoding_view is not Problem.precoding_view

    has_miso_view = has_precoding_view

    # -- roles -----------------------------------------------------------------------------------
    def names_with_role(self, role: str) -> tuple[str, ...]:
        """The variables declaring ``role`` (see :data:`ROLES`), in problem order."""
        if role not in ROLES:
            raise ValueError(f"unknown variable role {role!r}; valid: {', '.join(ROLES)}")
        return tuple(n for n, v in self.variables.items() if v.role == role)

    def role_variable(self, role: str) -> str | None:
        """The one variable with ``role``, ``None`` if there is none (an error if there are several)."""
        names = self.names_with_role(role)
        if len(names) > 1:
            raise ValueError(f"several variables have the role {role!r}: {', '.join(names)}")
        return names[0] if names else None

    def resolve_names(self, token: str) -> tuple[str, ...]:
        """A variable name, or a role standing for every variable that declares it (solver options such as
        ``project=precoder`` use this)."""
        token = token.strip()
        if token in self.variables:
            return (token,)
        if token in ROLES and self.names_with_role(token):
            return self.names_with_role(token)
        roles = sorted({v.role for v in self.variables.values() if v.role})
        raise ValueError(f"unknown variable or role {token!r}; variables: {', '.join(self.variables)}"
                         + (f"; roles: {', '.join(roles)}" if roles else ""))

    # -- sets, feasibility, starting points -----------------------------------------------------
    def project(self, x: Vars) -> Vars:
        """Every variable onto its set, then the joint constraints in order (each rescales one variable)."""
        out = {k: self.variables[k].constraint.project(np.asarray(v)) for k, v in x.items()}
        for j in self.joint:
            out = j.project(out)
        return out

    def feasibility(self, x: Vars) -> Feasibility:
        viol: dict[str, float] = {}
        tols: dict[str, float] = {}
        for name, var in self.variables.items():
            value = np.asarray(x[name])
            if value.shape != var.shape:
                raise ValueError(f"variable {name!r} has shape {value.shape}, expected {var.shape}")
            viol[name] = var.constraint.violation(value)
            tols[name] = var.constraint.tol
        for j in self.joint:
            viol[j.name] = j.violation(x)
            tols[j.name] = j.tol
        for name, c in self.constraints(x).items():
            viol[name] = float(np.max(-np.asarray(c), initial=0.0).clip(min=0.0))
            tols[name] = self.constraint_tol
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
        """A random point projected onto every variable's set (full power for power balls, block by block
        for block budgets), then onto the joint constraints (on their boundary where ``full``)."""
        out: Vars = {}
        for name, var in self.variables.items():
            z = rng.standard_normal(var.shape)
            if var.complex:
                z = (z + 1j * rng.standard_normal(var.shape)) / np.sqrt(2)
            if isinstance(var.constraint, PowerBall):
                z = z * np.sqrt(var.constraint.budget / np.sum(np.abs(z) ** 2))
            elif isinstance(var.constraint, BlockPowerBall) and var.constraint.full:
                z = var.constraint.full_power(z)
            out[name] = var.constraint.project(z)
        for j in self.joint:
            out = j.full_power(out)
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
