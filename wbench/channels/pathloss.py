"""Large-scale fading and unit conversions shared by scenarios.

The distance-dependent path loss ``xi(d) = xi0 (d / d0)^(-eps)`` (linear power gain, ``xi0`` in dB at the
reference distance ``d0``) is the model of Cerna Loli & Clerckx, "Meta-learning-based optimization for
beyond-diagonal RIS" (section VI: ``xi0 = -30 dB``, ``d0 = 1 m``, ``eps = 2``), also used by the movable-antenna
and STAR-RIS seeds with their own constants.
"""

from __future__ import annotations


def path_loss(d: float, xi0_db: float = -30.0, d0: float = 1.0, eps: float = 2.0) -> float:
    """``xi = xi0 (d / d0)^(-eps)`` as a linear power gain."""
    return 10 ** (xi0_db / 10) * (d / d0) ** (-eps)


def dbm_to_watt(dbm: float) -> float:
    """A power in dBm as watts: ``10^((dbm - 30) / 10)``."""
    return 10 ** ((dbm - 30.0) / 10.0)


def db_to_linear(db: float) -> float:
    """A power ratio in dB as a linear factor."""
    return 10 ** (db / 10.0)
