"""Saleh-Valenzuela clustered mmWave channels on a half-wavelength uniform linear array (ULA).

The narrowband clustered model of seed 002 (GGML hybrid precoding; SCENARIOS.md section 5, as the authors'
public code generates it; the paper's own formulas were lost in extraction), after O. El Ayach, S. Rajagopal,
S. Abu-Surra, Z. Pi, R. W. Heath, "Spatially sparse precoding in millimeter wave MIMO systems", IEEE TWC
13(3), 2014, eq. (4), reduced to single-antenna users. User ``k``'s channel is

    h_k = sqrt(Nt / (N_cl N_ray)) sum_{i=1}^{N_cl} sum_{l=1}^{N_ray} alpha_il a(phi_il),   alpha_il ~ CN(0, 1)
    a(phi) = (1 / sqrt(Nt)) [1, e^{j pi sin phi}, ..., e^{j pi (Nt - 1) sin phi}]^T        (unit norm)

so that ``E ||h_k||^2 = Nt`` (each of the ``N_cl N_ray`` terms has unit mean power). The ray angles of a
cluster are Laplacian around the cluster's mean angle with standard deviation ``spread`` (scale
``spread / sqrt(2)``).

Choices where the sources are silent:

* the cluster mean angles are uniform on ``[0, 2 pi)`` (as El Ayach et al.); ``sin`` of it has the same
  (arcsine) law as ``sin`` of a uniform angle on ``[-pi/2, pi/2]``, so the ULA sees the same channel law;
* every user draws its own clusters, independently of the other users.
"""

from __future__ import annotations

import numpy as np

from .rayleigh import cn


def ula_response(angles: np.ndarray, nt: int) -> np.ndarray:
    """Unit-norm half-wavelength ULA responses ``a(phi)`` for an array of angles (radians): shape
    ``angles.shape + (nt,)``."""
    n = np.arange(nt)
    phase = np.pi * np.sin(np.asarray(angles, dtype=np.float64))[..., None] * n
    return np.exp(1j * phase) / np.sqrt(nt)


def sv_angles(rng: np.random.Generator, users: int, clusters: int, rays: int, spread_rad: float) -> np.ndarray:
    """Ray angles ``(users, clusters, rays)``: a uniform mean per cluster plus Laplacian offsets of standard
    deviation ``spread_rad``."""
    means = rng.uniform(0.0, 2.0 * np.pi, size=(users, clusters, 1))
    offsets = rng.laplace(0.0, spread_rad / np.sqrt(2.0), size=(users, clusters, rays))
    return means + offsets


def saleh_valenzuela(rng: np.random.Generator, users: int, nt: int, clusters: int = 3, rays: int = 30,
                     spread_deg: float = 10.0) -> np.ndarray:
    """``users`` channels ``h_k`` (rows of the returned ``(users, nt)`` array) of the clustered model above."""
    if users < 1 or nt < 1 or clusters < 1 or rays < 1:
        raise ValueError("saleh_valenzuela: users, nt, clusters and rays must be at least 1")
    if not np.isfinite(spread_deg) or spread_deg < 0:
        raise ValueError(f"saleh_valenzuela: spread must be a non-negative angle in degrees, got {spread_deg}")
    angles = sv_angles(rng, users, clusters, rays, np.deg2rad(spread_deg))
    gains = cn(rng, (users, clusters, rays))
    a = ula_response(angles, nt)  # (users, clusters, rays, nt)
    h = np.einsum("ucr,ucrn->un", gains, a)
    return np.sqrt(nt / (clusters * rays)) * h
