"""Shared pieces of the hybrid-precoding solvers (SCENARIOS.md section 5).

Whitened digital design. For a fixed analog precoder ``F_RF`` (full column rank) write
``F_RF = G Q`` with ``Q = (F_RF^H F_RF)^{1/2}`` and ``G = F_RF Q^{-1}`` (orthonormal columns). Then
``F_RF F_BB = G X`` with ``X = Q F_BB`` and ``||F_RF F_BB||_F = ||X||_F``: the digital design is the plain
MU-MISO problem in ``X`` on the effective channel rows ``G^H h_k`` with the power ball ``||X||^2 <= P``, and
``F_BB = Q^{-1} X`` meets the power exactly (Sohrabi & Yu 2016, section IV; Yu et al. 2016, section IV-B use
the same whitening). :func:`digital_precoder` solves it by ZF or by WMMSE (:func:`wbench.solvers.wmmse.wmmse_stack`,
Shi et al. 2011).

Two phase shifters per entry (X. Zhang, A. F. Molisch, S.-Y. Kung, "Variable-phase-shift-based RF-baseband
codesign for MIMO antenna selection", IEEE TSP 53(11), 2005; F. Sohrabi, W. Yu, "Hybrid digital and analog
beamforming design for large-scale antenna arrays", IEEE JSTSP 10(3), 2016, Proposition 1): with
``N_RF >= 2K`` every fully-digital ``F`` is ``F_RF F_BB`` exactly: every complex ``z`` with ``|z| <= 2`` is
``e^{j(arg z + c)} + e^{j(arg z - c)}``, ``c = arccos(|z| / 2)``; scale ``F`` by ``2 / max |F_ik|``, put the two
phase columns of user ``k`` in columns ``k`` and ``K + k`` of ``F_RF``, and ``F_BB = (max|F_ik| / 2) [I; I; 0]``
(:func:`two_phase_shifters`).
"""

from __future__ import annotations

import numpy as np

from ...scenarios.hybrid import scale_to_power
from ..wmmse.wmmse import wmmse_stack


def whitening(F_RF: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(G, Q^{-1})``: ``G = F_RF Q^{-1}`` with orthonormal columns, ``Q = (F_RF^H F_RF)^{1/2}``."""
    lam, U = np.linalg.eigh(F_RF.conj().T @ F_RF)
    if lam.min() <= 1e-12 * lam.max():
        raise ValueError("the analog precoder is rank deficient: cannot whiten it")
    q_inv = (U / np.sqrt(lam)) @ U.conj().T
    return F_RF @ q_inv, q_inv


def digital_precoder(H: np.ndarray, F_RF: np.ndarray, power: float, method: str, sigma2: float = 1.0,
                     X0: np.ndarray | None = None, max_iter: int = 500, tol: float = 1e-6) -> np.ndarray:
    """``F_BB`` for fixed ``F_RF`` with ``||F_RF F_BB||_F^2 = power``: ``zf`` or ``wmmse`` (started from ``X0``
    in whitened coordinates, default the ZF point) on the whitened effective channel (module docstring)."""
    G, q_inv = whitening(F_RF)
    Hw = H @ G.conj()  # rows G^T h_k, i.e. gains Hw.conj() @ X = H.conj() @ G @ X
    A = Hw.conj()
    X = A.conj().T @ np.linalg.pinv(A @ A.conj().T)
    X = X * np.sqrt(power / np.sum(np.abs(X) ** 2))
    if method == "wmmse":
        start = X if X0 is None else X0 * np.sqrt(power / np.sum(np.abs(X0) ** 2))
        k = H.shape[0]
        V, _, _ = wmmse_stack(Hw[None], np.ones((1, k)), np.array([power]), np.array([sigma2]), start[None],
                              max_iter, tol)
        X = V[0]
    elif method != "zf":
        raise ValueError(f"unknown digital precoder {method!r}; valid: zf, wmmse")
    return scale_to_power(F_RF, q_inv @ X, power)


def fully_digital_wmmse(H: np.ndarray, power: float, rng: np.random.Generator, starts: int = 10,
                        sigma2: float = 1.0, max_iter: int = 1000, tol: float = 1e-6
                        ) -> tuple[np.ndarray, float, list[float]]:
    """The fully-digital WMMSE precoder (``Nt x K``, unconstrained ``N_RF``): best of ``starts`` runs, the
    first from RZF (regulariser ``K sigma2 / P``), the others from Gaussian precoders at full power; each to
    ``|WSR change| <= tol`` or ``max_iter`` sweeps. Returns ``(F, its sum rate, every start's sum rate)``."""
    k, nt = H.shape
    A = H.conj()
    starts_V = [A.conj().T @ np.linalg.inv(A @ A.conj().T + k * sigma2 / power * np.eye(k))]
    for _ in range(starts - 1):
        starts_V.append(rng.standard_normal((nt, k)) + 1j * rng.standard_normal((nt, k)))
    V0 = np.stack([v * np.sqrt(power / np.sum(np.abs(v) ** 2)) for v in starts_V])
    n = len(V0)
    V, wsr, _ = wmmse_stack(np.broadcast_to(H, (n, k, nt)).copy(), np.ones((n, k)), np.full(n, power),
                            np.full(n, sigma2), V0, max_iter, tol)
    best = int(np.argmax(wsr))
    return V[best], float(wsr[best]), wsr.tolist()


def two_phase_shifters(F: np.ndarray, n_rf: int) -> tuple[np.ndarray, np.ndarray]:
    """``(F_RF, F_BB)`` with unit-modulus ``F_RF`` (``Nt x n_rf``) and ``F_RF F_BB = F`` exactly (module
    docstring); needs ``n_rf >= 2K``. The columns beyond ``2K`` are all ones, with zero digital weight."""
    nt, k = F.shape
    if n_rf < 2 * k:
        raise ValueError(f"two phase shifters per entry need N_RF >= 2K, got N_RF={n_rf}, K={k}")
    m = float(np.max(np.abs(F)))
    if m == 0.0:
        raise ValueError("the precoder is zero")
    Z = F * (2.0 / m)
    c = np.arccos(np.clip(np.abs(Z) / 2.0, 0.0, 1.0))
    phase = np.angle(Z)
    F_RF = np.ones((nt, n_rf), dtype=np.complex128)
    F_RF[:, :k] = np.exp(1j * (phase + c))
    F_RF[:, k:2 * k] = np.exp(1j * (phase - c))
    F_BB = np.zeros((n_rf, k), dtype=np.complex128)
    F_BB[:k] = F_BB[k:2 * k] = (m / 2.0) * np.eye(k)
    return F_RF, F_BB
