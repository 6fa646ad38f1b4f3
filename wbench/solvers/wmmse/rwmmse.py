"""Reduced WMMSE (R-WMMSE): WMMSE in the ``K x K`` space of the channel's row span.

X. Zhao, S. Lu, Q. Shi, Z.-Q. Luo, "Rethinking WMMSE: can its complexity scale linearly with the number
of BS antennas?", IEEE Trans. Signal Process. 71, 2023. Every WMMSE iterate after the first lies in the
range of ``H^T = [h_1, ..., h_K]`` (the ``v`` update is ``(A + mu I)^{-1} B`` with ``A = H^T C conj(H)``,
``B = H^T diag(b)``), so the precoder is written ``V = H^T X`` with ``X`` ``K x K`` (their Section III,
specialised to single-antenna users). With the Gram matrix ``J = conj(H) H^T`` (``J_kj = h_k^H h_j``,
formed once, ``O(Nt K^2)``) everything WMMSE needs is in ``K x K`` terms:

    gains        G = conj(H) V = J X
    power        ||V||_F^2 = Re tr(X^H J X)
    V step       X = (C J + mu I)^{-1} diag(b)        (push-through: (A + mu I)^{-1} H^T = H^T (C J + mu I)^{-1})

with WMMSE's ``c_k = alpha_k w_k |u_k|^2`` and ``b_k = alpha_k w_k u_k`` (:mod:`.wmmse`). With
``D = diag(sqrt(c))``, ``D J D = U diag(lam) U^H`` and ``E = U^H diag(b / sqrt(c))``:
``X(mu) = D U (lam + mu)^{-1} E`` and ``power(mu) = sum_i lam_i |E_i|^2 / (lam_i + mu)^2``, the same
secular equation as WMMSE's (the nonzero eigenvalues of ``A`` are those of ``D J D``), solved by the same
routine (:func:`.wmmse._multiplier`), then ``X`` rescaled onto the power sphere as WMMSE's ``V``. A zero
eigenvalue of ``D J D`` (a direction with ``H^T D u = 0``) adds nothing to ``V`` and is dropped. One
iteration therefore costs ``O(K^3)`` whatever ``Nt``; only forming ``J`` and ``V = H^T X`` (at the end, and
for the anytime trace) are linear in ``Nt``.

Start: a start ``V0`` is projected onto the range of ``H^T`` (least squares, ``J X0 = conj(H) V0``) and
scaled up to the full budget (MRT, ZF and RZF lie in that range already and are kept). From ``H^T X0``,
WMMSE's iterates and R-WMMSE's are equal in exact arithmetic (the tests check it to ~1e-9). Single total
power budget only (per-block budgets are declined); per-user noise is handled. Starts, stopping rule and
trace as :mod:`.wmmse`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ...hookspecs import hookimpl
from ...params import Param
from ...rates import sinr_parts
from .wmmse import Wmmse, _multiplier, sweep_stack

_EPS = np.finfo(np.float64).eps


def gram(H: np.ndarray) -> np.ndarray:
    """``J = conj(H) H^T`` per instance: ``J[k, j] = h_k^H h_j`` (``H`` is (n, K, Nt))."""
    return H.conj() @ H.transpose(0, 2, 1)


def range_start(H: np.ndarray, V0: np.ndarray, power: np.ndarray) -> np.ndarray:
    """``X0`` with ``H^T X0`` the projection of ``V0`` onto the range of ``H^T``, scaled to power ``power``."""
    J = gram(H)
    X = np.linalg.pinv(J, hermitian=True) @ (H.conj() @ V0)
    pw = _power(J, X)
    mrt = pw <= 1e-30 * np.maximum(np.sum(np.abs(V0) ** 2, axis=(1, 2)), 1e-300)  # V0 orthogonal to the range
    X[mrt] = np.eye(X.shape[-1])
    pw = np.where(mrt, _power(J, X), pw)
    factor = np.sqrt(np.divide(power, pw, out=np.zeros_like(pw), where=pw > 0))
    return X * factor[:, None, None]


def _power(J: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``||H^T X||_F^2 = Re tr(X^H J X)``."""
    return np.maximum((X.conj() * (J @ X)).real.sum(axis=(1, 2)), 0.0)


def _x_step(J: np.ndarray, alpha: np.ndarray, power: np.ndarray, sigma2: np.ndarray, G: np.ndarray
            ) -> np.ndarray:
    """One R-WMMSE iteration (u, w, then X) in the ``K x K`` space, at gains ``G = J X``."""
    signal, noise_int = sinr_parts(G, sigma2)
    total = signal + noise_int
    u = np.diagonal(G, axis1=1, axis2=2) / total
    w = total / noise_int
    c = alpha * w * (u.real**2 + u.imag**2)
    b = alpha * w * u
    sc = np.sqrt(c)
    e = np.divide(b, sc, out=np.zeros_like(b), where=sc > 0)  # b_k = 0 wherever c_k = 0
    M = sc[:, :, None] * J * sc[:, None, :]
    lam, U = np.linalg.eigh(M)
    E = U.conj().transpose(0, 2, 1) * e[:, None, :]  # U^H diag(e)
    k = lam.shape[-1]
    lam = np.maximum(lam, 0.0)
    lam = np.where(lam <= lam[:, -1:] * k * _EPS, 0.0, lam)
    d = lam * (E.real**2 + E.imag**2).sum(axis=-1)
    mu = _multiplier(lam, d, power)
    den = lam + mu[:, None]
    inv = np.divide(1.0, den, out=np.zeros_like(den), where=lam > 0)
    X = sc[:, :, None] * (U @ (E * inv[..., None]))
    pw = _power(J, X)
    rescale = ((mu > 0) | (pw > power)) & (pw > 0)
    factor = np.sqrt(np.divide(power, pw, out=np.ones_like(pw), where=rescale))
    return X * factor[:, None, None]


def rwmmse_stack(
    H: np.ndarray,
    alpha: np.ndarray,
    power: np.ndarray,
    sigma2: np.ndarray,
    V0: np.ndarray,
    max_iter: int,
    tol: float,
    on_sweep: Callable[[int, np.ndarray, np.ndarray, np.ndarray], None] | None = None,
    stop: Callable[[], bool] | None = None,
    budgets: np.ndarray | None = None,
    block_index: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R-WMMSE on each of ``n`` instances; the signature and results of :func:`~.wmmse.wmmse_stack`.

    ``V0`` is projected onto the range of ``H^T`` first (:func:`range_start`); ``budgets`` must be ``None``.
    ``on_sweep`` receives ``V = H^T X`` (formed only when it is given)."""
    if budgets is not None and np.shape(budgets)[-1] > 1:
        raise ValueError("r-wmmse: per-block budgets are not implemented")
    H = np.asarray(H, dtype=np.complex128)
    Ht = H.transpose(0, 2, 1)
    J = gram(H)
    X = range_start(H, np.asarray(V0, dtype=np.complex128), power)

    def step(i: np.ndarray, X: np.ndarray, G: np.ndarray) -> np.ndarray:
        return _x_step(J[i], alpha[i], power[i], sigma2[i], G[i])

    X, wsr, iters = sweep_stack(X, J @ X, alpha, sigma2, step, lambda i, Xn: J[i] @ Xn, max_iter, tol, on_sweep,
                                stop, as_v=lambda Z: Ht @ Z)
    return Ht @ X, wsr, iters


class RWmmse(Wmmse):
    """R-WMMSE (Zhao, Lu, Shi, Luo 2023), best of ``starts`` runs, batched like ``wmmse``."""

    name = "r-wmmse"
    version = "1"
    description = "reduced WMMSE, V = H^H X with K x K updates (Zhao et al. 2023), best of n starts"
    tags = frozenset({"conventional"})
    options = {
        "max_iter": Param(100, "R-WMMSE iterations per start", min=1),
        "tol": Param(1e-4, "stop a start when its WSR changes by <= tol (bit/s/Hz)", min=0),
        "starts": Param(10, "number of starts; the best final WSR is kept", min=1),
        "init": Param(
            "random",
            "first start: a named initial point of the scenario (miso: random, mrt, zf, rzf; bdris: random, "
            "mrt), projected onto the channel's row span and scaled to full power; the other starts are "
            "random feasible points, projected likewise",
        ),
    }
    budget_options = ("max_iter", "tol", "starts", "init")
    _run = staticmethod(rwmmse_stack)
    per_block_budgets = False


@hookimpl
def wbench_register_solvers(register) -> None:
    register(RWmmse())
