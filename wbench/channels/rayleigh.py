"""I.i.d. Rayleigh fading: entries circularly-symmetric complex Gaussian ``CN(0, variance)``."""

from __future__ import annotations

import numpy as np


def cn(rng: np.random.Generator, shape: tuple[int, ...], variance: float = 1.0) -> np.ndarray:
    """Draw ``CN(0, variance)`` entries: real and imaginary parts i.i.d. ``N(0, variance/2)``."""
    scale = np.sqrt(variance / 2.0)
    return scale * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
