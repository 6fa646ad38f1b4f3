"""The constraint sets: the closed vocabulary of sets a variable may lie in (:class:`PowerBall`,
:class:`BlockPowerBall`, :class:`UnitModulus`, :class:`Unitary`, :class:`BlockUnitary`, :class:`Box`,
:class:`Simplex`, :class:`Unconstrained`), each with projections (NumPy, torch, batched torch), a violation
measure and a smooth penalty."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..linalg import (polar, polar_torch, project_symmetric_unitary, project_symmetric_unitary_torch,
                      stacked_matmul, unitary_residual)
from .feasibility import MODULUS_ATOL, POWER_RTOL, UNITARY_ATOL

if TYPE_CHECKING:  # torch is optional at run time: imported only by the solvers that need it
    import torch


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
            from ..linalg import stack_rows

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
