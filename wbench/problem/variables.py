"""Variables: a point of a problem (:data:`Vars`), the roles a variable declares (:data:`ROLES`), the
:class:`Variable` itself, and :func:`to_numpy_vars`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .sets import ConstraintSet

Vars = dict[str, np.ndarray]

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


def to_numpy_vars(x: Mapping[str, Any]) -> Vars:
    """Detach torch tensors (or anything array-like) into float64/complex128 NumPy arrays."""
    out: Vars = {}
    for k, v in x.items():
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        arr = np.asarray(v)
        out[k] = arr.astype(np.complex128 if np.iscomplexobj(arr) else np.float64, copy=True)
    return out
