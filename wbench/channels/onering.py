"""Uniform circular array, one-ring spatial correlation and imperfect-CSIT draws (seed 000, section IV-A).

Cerna Loli & Clerckx, "Meta-learning for large-scale H-RSMA, ISAC and BD-RIS" (seed 000), eqs. (13)-(14) and
(20); SCENARIOS.md section 3. Everything is in units of the wavelength (``lambda = 1`` unless given).

* **Array.** ``Nt`` elements on a circle with adjacent spacing ``lambda/2``: radius ``lambda / (4 sin(pi/Nt))``
  (the paper's radius formula writes ``M`` for the antenna count). Choice (the paper is silent): element ``i``
  at angle ``2 pi i / Nt``, ``r_i = radius [cos, sin]``. One element (``Nt = 1``) sits at the origin.
* **Steering vector** ``b_i(a) = exp(-j 2 pi psi(a).r_i / lambda)``, ``psi(a) = [cos a, sin a]``: the vector
  eq. (13) is built from (``R -> b b^H`` as ``Delta -> 0``); the ``isac`` scenario reuses it.
* **One-ring correlation** (eq. (13)) ``[R]_ij = 1/(2 Delta) int_{theta-Delta}^{theta+Delta}
  exp(-j 2pi/lambda psi(a).(r_i - r_j)) da = E_a[b_i(a) conj(b_j(a))]``, by Gauss-Legendre quadrature
  ``R = sum_q (w_q / 2) b(a_q) b(a_q)^H``, ``a_q = theta + Delta x_q``, with
  ``32 + ceil(2 pi (diameter / lambda) Delta)`` nodes by default (converged to about 1e-12 for every
  ``Delta``; the test doubles them). The diagonal is exactly 1 (unit-modulus entries, weights summing to 2),
  so ``tr R = Nt`` (SCENARIOS.md's choice) holds without rescaling; ``Delta -> 0`` tends to ``b b^H`` and
  ``Delta = pi`` to ``J0(2 pi |r_i - r_j| / lambda)``.
* **Square root.** ``R`` is rank-deficient (for a narrow spread nearly rank one), so Cholesky fails;
  ``R^{1/2} = U diag(sqrt(max(lam, 0))) U^H`` from ``eigh`` with the rounding-level negative eigenvalues
  clipped (Hermitian PSD, ``R^{1/2} R^{1/2} = R`` to rounding).
* **CSIT** (eq. (14)): ``h = R^{1/2} (sqrt(1 - se2) g_hat + sqrt(se2) z)``, the estimate ``h_hat = R^{1/2} g_hat``,
  ``g_hat, z ~ CN(0, I)``; given the estimate a draw is ``h = sqrt(1 - se2) h_hat + sqrt(se2) R^{1/2} z``
  (eq. (20), the draws of the sample-average approximation).

Array convention (as every wbench channel): row ``k`` of a channel matrix is ``h_k``.
"""

from __future__ import annotations

import math

import numpy as np


def uca_radius(nt: int, wavelength: float = 1.0) -> float:
    """Radius of the uniform circular array of ``nt`` elements with adjacent spacing ``wavelength / 2``."""
    if nt < 1:
        raise ValueError(f"the array needs at least one element, not {nt}")
    return 0.0 if nt == 1 else wavelength / (4.0 * math.sin(math.pi / nt))


def uca_positions(nt: int, wavelength: float = 1.0) -> np.ndarray:
    """Element positions ``r_i`` (``nt x 2``), element ``i`` at angle ``2 pi i / nt``."""
    phi = 2.0 * np.pi * np.arange(nt) / nt
    return uca_radius(nt, wavelength) * np.stack([np.cos(phi), np.sin(phi)], axis=1)


def steering(positions: np.ndarray, angles: np.ndarray | float, wavelength: float = 1.0) -> np.ndarray:
    """``b(a)`` with entries ``exp(-j 2 pi psi(a).r_i / lambda)``; shape ``angles.shape + (Nt,)``."""
    a = np.asarray(angles, dtype=np.float64)
    psi = np.stack([np.cos(a), np.sin(a)], axis=-1)  # (..., 2)
    return np.exp(-2j * np.pi * (psi @ np.asarray(positions, dtype=np.float64).T) / wavelength)


def quadrature_nodes(positions: np.ndarray, delta: float, wavelength: float = 1.0) -> int:
    """Default Gauss-Legendre node count ``32 + ceil(2 pi (diameter / lambda) Delta)`` (SCENARIOS.md §3)."""
    pos = np.asarray(positions, dtype=np.float64)
    diameter = 2.0 * float(np.max(np.linalg.norm(pos, axis=1), initial=0.0))
    return 32 + int(math.ceil(2.0 * math.pi * diameter / wavelength * abs(delta)))


def one_ring_correlation(positions: np.ndarray, theta: float, delta: float, nodes: int | None = None,
                         wavelength: float = 1.0) -> np.ndarray:
    """One-ring correlation ``R`` (eq. (13)) of azimuth ``theta`` and angular spread ``delta`` (radians).

    ``delta = 0`` gives ``b(theta) b(theta)^H`` exactly; ``nodes`` defaults to :func:`quadrature_nodes`."""
    if not (math.isfinite(delta) and 0.0 <= delta <= math.pi):
        raise ValueError(f"the angular spread Delta must lie in [0, pi], not {delta}")
    if delta == 0.0:
        b = steering(positions, theta, wavelength)
        return np.outer(b, b.conj())
    n = quadrature_nodes(positions, delta, wavelength) if nodes is None else int(nodes)
    if n < 1:
        raise ValueError(f"quadrature needs at least one node, not {n}")
    x, w = np.polynomial.legendre.leggauss(n)
    B = steering(positions, theta + delta * x, wavelength)  # (n, Nt)
    R = (B.T * (w / 2.0)) @ B.conj()
    return 0.5 * (R + R.conj().T)


def psd_sqrt(R: np.ndarray) -> np.ndarray:
    """Hermitian PSD square root by ``eigh`` with negative eigenvalues clipped (works on rank-deficient ``R``;
    a stack ``(..., n, n)`` gives a stack)."""
    lam, U = np.linalg.eigh(np.asarray(R))
    S = (U * np.sqrt(np.clip(lam, 0.0, None))[..., None, :]) @ np.swapaxes(U.conj(), -1, -2)
    return 0.5 * (S + np.swapaxes(S.conj(), -1, -2))


def cn(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """``CN(0, 1)`` entries."""
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / math.sqrt(2.0)


def estimate(R_sqrt: np.ndarray, g_hat: np.ndarray) -> np.ndarray:
    """The CSIT ``h_hat_k = R_k^{1/2} g_hat_k`` for every user: ``R_sqrt`` is ``(K, Nt, Nt)``, ``g_hat``
    ``(K, Nt)``; rows of the result are ``h_hat_k``."""
    return np.einsum("kij,kj->ki", R_sqrt, g_hat)


def csit_draws(R_sqrt: np.ndarray, H_hat: np.ndarray, se2: float, z: np.ndarray) -> np.ndarray:
    """Channel draws consistent with the estimate (eqs. (14), (20)): ``h_k = sqrt(1-se2) h_hat_k +
    sqrt(se2) R_k^{1/2} z_k`` for each error draw ``z[m]`` (``z``: ``(M, K, Nt)``; result ``(M, K, Nt)``)."""
    if not 0.0 <= se2 <= 1.0:
        raise ValueError(f"the CSIT error variance se2 must lie in [0, 1], not {se2}")
    z = np.asarray(z)
    err = np.empty(z.shape, dtype=np.result_type(z, R_sqrt))
    for k in range(z.shape[1]):  # one BLAS product per user: (M, Nt) @ R_k^{1/2 T}
        err[:, k, :] = z[:, k, :] @ np.asarray(R_sqrt[k]).T
    return math.sqrt(1.0 - se2) * np.asarray(H_hat)[None] + math.sqrt(se2) * err
