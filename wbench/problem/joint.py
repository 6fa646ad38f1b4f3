"""Joint constraints: constraints coupling several variables (:class:`JointConstraint`), e.g. the hybrid
precoder's transmit power (:class:`ProductPower`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import numpy as np

from .feasibility import POWER_RTOL
from .variables import Vars

if TYPE_CHECKING:  # torch is optional at run time: imported only by the solvers that need it
    import torch


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
