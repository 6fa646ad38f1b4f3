"""WMMSE for any problem with a linear-precoding view (``miso``; ``bdris`` with ``Phi`` held at its start
point; any precoder with per-block budgets), vectorised over realisations and starts.

Algorithm: Q. Shi, M. Razaviyayn, Z.-Q. Luo, C. He, "An iteratively weighted MMSE approach to distributed
sum-utility maximization for a MIMO interfering broadcast channel", IEEE Trans. Signal Process. 59(9),
2011, specialised to single-antenna users (SCENARIOS.md section 1). One sweep, with
``g_kj = h_k^H v_j`` and ``T_k = sum_j |g_kj|^2 + sigma2``:

    u_k = g_kk / T_k                                               (MMSE receiver)
    w_k = 1 / (1 - conj(u_k) g_kk) = 1 + SINR_k                    (inverse MSE)
    v_k = alpha_k w_k u_k (sum_j alpha_j w_j |u_j|^2 h_j h_j^H + mu I)^{-1} h_k

with ``mu >= 0`` the multiplier of ``tr(V V^H) <= P`` (``mu = 0`` when that point is feasible). This is
the standard form; seed 001 (Xia & Gunduz, MLBF), eq. (8), writes the factors of the ``v_k`` update in
the wrong order. ``w_k`` is computed as ``T_k / (T_k - |g_kk|^2)`` with the interference summed
directly, which equals ``1 / (1 - conj(u_k) g_kk)`` without its cancellation at high SINR.

The ``v`` step is an exact minimiser of the weighted MSE over the power ball, which is what makes the
weighted sum rate non-decreasing from sweep to sweep. With ``A = U diag(lam) U^H`` and ``C = U^H B``
(``B = [alpha_k w_k u_k h_k]``), ``V(mu) = U (lam + mu)^{-1} C`` and
``power(mu) = sum_i |C_i|^2 / (lam_i + mu)^2`` decreases in ``mu``. ``mu = 0`` is taken only when ``A``
is invertible on the support of ``C`` and ``power(0) <= P``. Eigenvalues below ``Nt eps lam_max`` count
as zero, so a switched-off user (``u_k -> 0``, ``A`` singular) forces ``mu > 0`` instead of a division
by zero; a component of ``C`` in that null space at round-off level is dropped (in exact arithmetic
``B`` lies in the range of ``A``), so that ``K < Nt`` does not force ``mu > 0`` and park power where no
user hears it. ``mu`` is bracketed (``power(sqrt(||B||^2 / P)) <= P``, so the upper end needs no
doubling search) and found by Newton steps on ``1 - sqrt(P / power(mu))``, a convex decreasing function
(Moré & Sorensen 1983), falling back to bisection whenever a step leaves the bracket; ``V`` is then
rescaled onto the power sphere so that it ends exactly on the ball.

Per-block power budgets (the view's ``budgets`` on blocks of precoder rows, e.g. one per base station
in CoMP joint transmission, SCENARIOS.md section 6). The ``V`` step is then the convex QCQP
``min f(V) = tr(V^H A V) - 2 Re tr(B^H V)`` s.t. ``||V_b||_F^2 <= P_b`` for every block ``b``, with one
multiplier per block: ``V(mu) = (A + D(mu))^{-1} B`` with ``D(mu)`` diagonal, ``mu_b`` on the rows of block
``b`` (Shi et al. 2011 find one multiplier per BS by bisection, their BSs' precoders being separate; under
joint transmission every block's power depends on every multiplier). Two exact methods, in turn:

1. The multipliers maximise the concave dual ``g(mu) = -Re tr(B^H (A + D(mu))^{-1} B) - sum_b mu_b P_b``
   over ``mu >= 0`` (Slater holds at ``V = 0``: no duality gap; Boyd & Vandenberghe, *Convex
   Optimization*, 2004, section 5.2.3), with gradient ``||V_b(mu)||^2 - P_b`` and Hessian
   ``-2 Re tr(V^H E_b (A + D)^{-1} E_c V)``: projected Newton ascent (D. P. Bertsekas, "Projected Newton
   methods for optimization problems with simple constraints", SIAM J. Control Optim. 20(2), 1982) with
   Armijo backtracking, started from the previous WMMSE iteration's multipliers (or the total budget's
   multiplier), until every block meets complementary slackness to ``1e-9`` relative. ``mu = 0`` is taken
   where every block fits at the minimum-norm unconstrained minimiser. Blocks over budget, and active
   blocks, are then scaled onto their sphere.
2. The better of that point and the current ``V`` is polished by exact block coordinate descent (each
   block's own single-budget problem, solved as above, the other blocks fixed; P. Tseng, "Convergence of a
   block coordinate descent method for nondifferentiable minimization", JOTA 109, 2001) where the dual
   did not meet complementary slackness, until a sweep gains less than ``1e-10`` relative, the objective
   reaches the unconstrained minimum ``g(0)`` (then it is optimal), or 20 sweeps are done (its rate is
   linear; on 64 channels with two BSs of 4 antennas and 4 users, 100 sweeps instead of 20 changed the
   converged WSR by at most 4e-5 bit/s/Hz and doubled the time). This settles the degenerate case the dual cannot: ``A`` singular
   (fewer users than antennas) with zero optimal multipliers, where the minimiser is not unique and the
   dual optimum sits at its nonsmooth corner (a single user served by several BSs is one).

Neither step increases ``f`` from the current (feasible) ``V``, which is all the argument that makes the
weighted sum rate non-decreasing needs (Shi et al. 2011, Theorem 3). With one block the block descent is
the single-block step above, and the single-block path is used for it anyway.

The view may also hold some precoder columns fixed (their interference is part of each user's noise,
their power is taken off the budgets): WMMSE then optimises the other columns only.

Starts are run side by side: one *sweep* is one WMMSE iteration of every start that has not met the
stopping rule (``|WSR change| <= tol`` or ``max_iter`` iterations); a finished start is frozen while the
others go on, so each start's result does not depend on what it is batched with.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ...hookspecs import hookimpl
from ...params import Param
from ...problem import PrecodingView, Problem
from ...rates import sinr_parts, weighted_sum_rate_stack
from ...solver import RunContext, Solution, Solver

_EPS = np.finfo(np.float64).eps
_MU_RTOL = 1e-12  # |power(mu) / P - 1| at which the multiplier search stops
_NULL_RTOL = 1e3 * _EPS  # per antenna: |C_i| / ||C|| below which a null-space component is round-off


def _multiplier(lam: np.ndarray, d: np.ndarray, power: np.ndarray) -> np.ndarray:
    """Smallest ``mu >= 0`` with ``sum_i d_i / (lam_i + mu)^2 <= P`` (0 where already feasible), per row.

    Works in units where the bracket is ``[lo, 1]``: ``mu = s m`` with ``s = sqrt(sum(d) / P)``, so that
    every quantity stays O(1) and nothing overflows.
    """
    dsum = d.sum(axis=-1)
    empty = dsum <= 0.0
    dsum = np.where(empty, 1.0, dsum)
    s = np.sqrt(dsum / power)
    lam_n = lam / s[:, None]
    rd = np.sqrt(d / dsum[:, None])  # sum of squares is 1
    # mu = 0: every component must satisfy rd_i <= lam_i (else its term alone exceeds P), then the sum.
    fits = np.all(lam_n >= rd, axis=-1)
    ratio = np.divide(rd, lam_n, out=np.zeros_like(rd), where=fits[:, None] & (rd > 0))
    zero = empty | (fits & ((ratio**2).sum(axis=-1) <= 1.0))

    lo = np.maximum(0.0, (rd - lam_n).max(axis=-1))  # power(lo) >= P, so lo <= root <= 1
    hi = np.ones_like(lo)
    m = lo.copy()
    active = ~zero
    for _ in range(100):
        if not active.any():
            break
        den = lam_n + m[:, None]  # >= rd_i > 0 wherever rd_i > 0, because m >= lo
        x = np.divide(rd, den, out=np.zeros_like(rd), where=rd > 0)
        x2 = x * x
        q = x2.sum(axis=-1)
        s3 = np.divide(x2, den, out=np.zeros_like(x2), where=rd > 0).sum(axis=-1)
        above = q > 1.0
        lo = np.where(active & above, m, lo)
        hi = np.where(active & ~above, m, hi)
        step = np.divide(q * (np.sqrt(q) - 1.0), s3, out=np.zeros_like(q), where=s3 > 0)
        m_new = m + step
        outside = ~((m_new > lo) & (m_new < hi))
        m_new = np.where(outside, 0.5 * (lo + hi), m_new)
        done = (np.abs(q - 1.0) <= _MU_RTOL) | (np.abs(m_new - m) <= 4 * _EPS * m)
        active &= ~done
        m = np.where(active, m_new, m)
    return np.where(zero, 0.0, m * s)


def _quadratic(H: np.ndarray, alpha: np.ndarray, sigma2: np.ndarray, G: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """The u and w steps at gains ``G``, as the V sub-problem ``min tr(V^H A V) - 2 Re tr(B^H V)``."""
    signal, noise_int = sinr_parts(G, sigma2)
    total = signal + noise_int
    u = np.diagonal(G, axis1=1, axis2=2) / total
    w = total / noise_int
    c = alpha * w * (u.real**2 + u.imag**2)
    b = alpha * w * u
    Ht = H.transpose(0, 2, 1)  # column k is h_k
    A = (Ht * c[:, None, :]) @ H.conj()  # sum_k c_k h_k h_k^H
    B = Ht * b[:, None, :]
    return A, B


def _v_step(
    H: np.ndarray, alpha: np.ndarray, power: np.ndarray, sigma2: np.ndarray, G: np.ndarray
) -> np.ndarray:
    """One WMMSE sweep (u, w, then V) for a stack of channels ``H`` (n, K, Nt) at gains ``G``."""
    A, B = _quadratic(H, alpha, sigma2, G)
    return _ball_step(A, B, power)


def _ball_step(A: np.ndarray, B: np.ndarray, power: np.ndarray) -> np.ndarray:
    """``argmin tr(V^H A V) - 2 Re tr(B^H V)`` s.t. ``||V||_F^2 <= power``, per instance (module docstring)."""
    lam, U = np.linalg.eigh(A)
    C = U.conj().transpose(0, 2, 1) @ B
    d = (C.real**2 + C.imag**2).sum(axis=-1)
    nt = lam.shape[-1]
    lam = np.maximum(lam, 0.0)
    lam = np.where(lam <= lam[:, -1:] * nt * _EPS, 0.0, lam)
    # B lies in the range of A in exact arithmetic (b_k != 0 implies c_k > 0), so a null-space component
    # at round-off level is noise: keeping it would force mu > 0 and park power where no user hears it.
    noise = (lam == 0.0) & (d <= (_NULL_RTOL * nt) ** 2 * d.sum(axis=-1, keepdims=True))
    d = np.where(noise, 0.0, d)
    C = np.where(noise[..., None], 0.0, C)
    mu = _multiplier(lam, d, power)
    den = lam + mu[:, None]
    inv = np.divide(1.0, den, out=np.zeros_like(den), where=den > 0)  # zero only where C is zero too
    V = U @ (C * inv[..., None])

    pw = (V.real**2 + V.imag**2).sum(axis=(1, 2))
    rescale = ((mu > 0) | (pw > power)) & (pw > 0)
    factor = np.sqrt(np.divide(power, pw, out=np.ones_like(pw), where=rescale))
    return V * factor[:, None, None]


_SLACK_RTOL = 1e-9  # complementary slackness of the per-block multipliers, relative to the budget
_MAX_SWEEPS = 20  # block coordinate descent sweeps per V step, at most
_BCD_RTOL = 1e-10  # relative gain of a sweep (or distance to the lower bound) at which block descent stops
_MAX_NEWTON = 50  # Newton steps on the dual per V step, at most
_MAX_HALVINGS = 30  # Armijo backtracking halvings per Newton step, at most
_ARMIJO = 1e-4


class _Dual:
    """The dual of the per-block V step for a stack: ``V(mu) = (A + D(mu))^+ B``, the block powers, the dual
    value ``g(mu) = -Re tr(B^H (A + D)^+ B) - sum_b mu_b P_b`` and its Hessian (see the module docstring).

    An eigendirection of ``A + D`` with a zero eigenvalue (below ``Nt eps lam_max``) is dropped where
    ``C = U^H B`` is round-off there (``B`` lies in the range of ``A`` in exact arithmetic) and is given the
    threshold as its eigenvalue otherwise, so that its huge power pushes the multipliers of its blocks up
    (and its dual value down), as the single-block path forces ``mu > 0``.
    """

    def __init__(self, A: np.ndarray, B: np.ndarray, budgets: np.ndarray, block_index: np.ndarray) -> None:
        self.A, self.B, self.P = A, B, budgets
        self.E = (np.asarray(block_index)[None, :] == np.arange(budgets.shape[1])[:, None]).astype(np.float64)
        self.nt = A.shape[-1]

    def __call__(self, mu: np.ndarray, rows: np.ndarray, hessian: bool = False) -> tuple[np.ndarray, ...]:
        """``V``, block powers ``p``, dual value ``g`` (and the Hessian ``d^2 g / d mu^2``) at ``mu``."""
        M = self.A[rows].copy()
        diag = np.arange(self.nt)
        M[:, diag, diag] += mu @ self.E
        lam, U = np.linalg.eigh(M)
        C = U.conj().transpose(0, 2, 1) @ self.B[rows]
        d = (C.real**2 + C.imag**2).sum(axis=-1)
        floor = np.maximum(lam[:, -1:], 0.0) * self.nt * _EPS
        null = lam <= floor
        noise = null & (d <= (_NULL_RTOL * self.nt) ** 2 * d.sum(axis=-1, keepdims=True))
        den = np.where(null, np.maximum(floor, np.finfo(np.float64).tiny), lam)
        with np.errstate(over="ignore", invalid="ignore"):
            inv = np.where(noise, 0.0, 1.0 / den)
            V = U @ (C * inv[..., None])
            p = (V.real**2 + V.imag**2).sum(axis=-1) @ self.E.T
            g = -(inv * d).sum(axis=-1) - (mu * self.P[rows]).sum(axis=-1)
        p = np.where(np.isfinite(p), p, np.inf)
        g = np.where(np.isfinite(g), g, -np.inf)
        if not hessian:
            return V, p, g
        # d p_b / d mu_c = -2 Re tr(V^H E_b (A + D)^+ E_c V)
        Uh = U.conj().transpose(0, 2, 1)
        H = np.empty(mu.shape + (mu.shape[1],))
        for c in range(mu.shape[1]):
            W = U @ ((Uh @ (V * self.E[c][None, :, None])) * inv[..., None])
            H[:, :, c] = -2.0 * (V.conj() * W).real.sum(axis=-1) @ self.E.T
        return V, p, g, H


def _path(m: np.ndarray, step: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The multipliers at step length ``t`` along a Newton direction, kept positive: a positive multiplier
    moves multiplicatively, ``mu exp(t step / mu)`` (first order: ``mu + t step``), a zero one additively."""
    ts = t[:, None] * step
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        moved = m * np.exp(np.minimum(np.divide(ts, m, out=np.zeros_like(m), where=m > 0), 50.0))
    return np.where(m > 0, moved, np.maximum(ts, 0.0))


def _dual_newton(dual: _Dual, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The multipliers of the per-block V step: Newton ascent on the concave dual over ``mu >= 0`` (module
    docstring), with Armijo backtracking.

    The step is Newton's for the multipliers that may move (positive ones, and zero ones whose block is
    over budget); positive multipliers follow it multiplicatively (:func:`_path`), so that none jumps onto
    ``mu_b = 0``: with fewer users than antennas the dual is not smooth where several multipliers vanish,
    and a projected step onto that corner can stall there. A multiplier that falls below ``1e-13`` of the
    largest one, with its block within budget, is set to zero (complementary slackness). Returns the
    multipliers and whether each instance met complementary slackness."""
    n, nb = mu.shape
    P = dual.P
    mu = np.array(mu, dtype=np.float64)
    converged = np.zeros(n, dtype=bool)
    was_local = np.zeros(n, dtype=bool)
    todo = np.arange(n)
    for _ in range(_MAX_NEWTON):
        if todo.size == 0:
            break
        m = mu[todo]
        _, p, g, H = dual(m, todo, hessian=True)
        grad = p - P[todo]
        rel = p / P[todo]
        tiny = (m <= 1e-13 * m.max(axis=1, keepdims=True)) & (rel <= 1.0 + _SLACK_RTOL)
        m = np.where(tiny, 0.0, m)
        done = np.where(m > 0, np.abs(rel - 1.0) <= _SLACK_RTOL, rel <= 1.0 + _SLACK_RTOL).all(axis=1)
        done |= ~np.isfinite(g)
        free = (m > 0) | (grad > 0)  # a multiplier at 0 whose block fits stays there
        grad = np.where(free, grad, 0.0)
        curv = -H * (free[:, :, None] & free[:, None, :])
        scale = np.maximum(np.abs(np.diagonal(curv, axis1=1, axis2=2)).max(axis=1), np.finfo(float).tiny)
        curv = curv + np.eye(nb) * (~free[:, :, None] + 1e-13 * scale[:, None, None])
        with np.errstate(over="ignore", invalid="ignore"):
            step = np.linalg.solve(curv, grad[..., None])[..., 0]
        step = np.where(np.isfinite(step), step, grad / scale[:, None])
        t = np.ones(todo.size)
        live = ~done
        new = m.copy()
        # Near the optimum the predicted increase is below the round-off of g, where Armijo's test is
        # noise: the full Newton step is taken there (it converges quadratically).
        local = live & ((grad * step).sum(axis=1) <= 1e3 * _EPS * (np.abs(g) + 1.0))
        new = np.where(local[:, None], _path(m, step, t), new)
        accepted = local.copy()
        live &= ~local
        for _ls in range(_MAX_HALVINGS):
            if not live.any():
                break
            trial = _path(m, step, t)
            gt = dual(trial[live], todo[live])[2]
            ok = np.zeros(todo.size, dtype=bool)
            ok[live] = gt >= g[live] + _ARMIJO * (grad[live] * (trial[live] - m[live])).sum(axis=1)
            new = np.where(ok[:, None], trial, new)
            accepted |= ok
            live &= ~ok
            t = np.where(live, 0.5 * t, t)
        mu[todo] = np.where(done[:, None], m, new)
        converged[todo[done]] = True
        # finished: optimal; or no ascent step found; or a second step in a row whose predicted gain is
        # round-off (the dual is as high as floating point can tell: near the optimum the check after the
        # first such step passes, at the dual's corner none does, and the block descent takes over)
        stalled = local & was_local[todo]
        was_local[todo] = local
        todo = todo[~(done | ~accepted | stalled)]
    return mu, converged


def _wmse(A: np.ndarray, B: np.ndarray, V: np.ndarray) -> np.ndarray:
    """``Re tr(V^H A V) - 2 Re tr(B^H V)`` per instance (the V part of the weighted MSE)."""
    AV = A @ V
    return (V.conj() * AV).real.sum(axis=(1, 2)) - 2.0 * (B.conj() * V).real.sum(axis=(1, 2))


def _v_blocks(A: np.ndarray, B: np.ndarray, budgets: np.ndarray, block_index: np.ndarray,
              V_cur: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The V step under per-block budgets (module docstring); returns ``V`` and the multipliers ``mu``.

    ``mu = 0`` (the minimum-norm unconstrained minimiser) is taken where every block fits its budget there,
    as in the single-block step. Elsewhere the multipliers start from ``mu`` (the previous WMMSE
    iteration's) or, where that is all zero, from the multiplier of the total budget ``sum_b P_b`` (the
    single-block step) on every block. Where Newton does not meet complementary slackness from there (the
    dual's nonsmooth corner, fewer users than antennas), it restarts from the multipliers that the
    block-descent point implies, ``mu_b = Re tr(V_b^H (B - A V)_b) / ||V_b||^2`` (the KKT condition
    ``(A + D(mu)) V = B`` read block by block), which lie near the optimal ones."""
    n = budgets.shape[0]
    dual = _Dual(A, B, budgets, block_index)
    mu = np.array(mu, dtype=np.float64)
    _, p0, g0 = dual(np.zeros_like(mu), np.arange(n))
    fits = (p0 <= budgets * (1.0 + _SLACK_RTOL)).all(axis=1)
    mu[fits] = 0.0
    cold = ~fits & ~(mu > 0).any(axis=1)
    if cold.any():
        lam, U = np.linalg.eigh(A[cold])
        C = U.conj().transpose(0, 2, 1) @ B[cold]
        d = (C.real**2 + C.imag**2).sum(axis=-1)
        lam = np.maximum(lam, 0.0)
        lam = np.where(lam <= lam[:, -1:] * lam.shape[-1] * _EPS, 0.0, lam)
        mu[cold] = _multiplier(lam, d, budgets[cold].sum(axis=1))[:, None]
    rows = np.flatnonzero(~fits)
    converged = np.ones(n, dtype=bool)
    if rows.size:
        mu[rows], converged[rows] = _dual_newton(_Dual(A[rows], B[rows], budgets[rows], block_index), mu[rows])
    V = _better(A, B, _on_spheres(dual, mu, np.arange(n)), V_cur)
    stuck = np.flatnonzero(~converged)
    if stuck.size:
        V[stuck] = _block_descent(A[stuck], B[stuck], V[stuck], budgets[stuck], block_index, g0[stuck])
    # g(0) = min f without constraints <= the optimum <= f(V): equality proves V optimal (the dual's corner)
    f = _wmse(A, B, V)
    corner = ~converged & (f <= g0 + _BCD_RTOL * (np.abs(g0) + 1.0))
    mu[corner] = 0.0
    converged |= corner
    redo = np.flatnonzero(~converged)
    if redo.size:
        Ar, Br, Vr = A[redo], B[redo], V[redo]
        sub = _Dual(Ar, Br, budgets[redo], block_index)
        mu_redo, ok = _dual_newton(sub, _implied_multipliers(Ar, Br, Vr, block_index, budgets.shape[1]))
        retry = _better(Ar, Br, _on_spheres(sub, mu_redo, np.arange(redo.size)), Vr)
        retry = _block_descent(Ar, Br, retry, budgets[redo], block_index, g0[redo])
        V[redo] = _better(Ar, Br, retry, Vr)
        mu[redo] = np.where(ok[:, None], mu_redo, mu[redo])
    return V, mu


def _on_spheres(dual: _Dual, mu: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``V(mu)`` with blocks over budget, and active blocks (mu > 0) near their sphere, scaled onto it."""
    V, p, _ = dual(mu, rows)
    budgets = dual.P[rows]
    rel = p / budgets
    scale = ((rel > 1.0) | ((mu > 0) & (np.abs(rel - 1.0) <= 1e-6))) & (p > 0) & np.isfinite(p)
    factor = np.sqrt(np.divide(budgets, p, out=np.ones_like(p), where=scale))
    index = np.argmax(dual.E, axis=0)
    return V * factor[:, index][..., None]


def _better(A: np.ndarray, B: np.ndarray, V: np.ndarray, V_cur: np.ndarray) -> np.ndarray:
    """Per instance, ``V`` where its objective is finite and not above ``V_cur``'s, else ``V_cur``."""
    with np.errstate(invalid="ignore", over="ignore"):
        better = _wmse(A, B, V) <= _wmse(A, B, V_cur)
    better &= np.isfinite(V).all(axis=(1, 2))
    return np.where(better[:, None, None], V, V_cur)


def _implied_multipliers(A: np.ndarray, B: np.ndarray, V: np.ndarray, block_index: np.ndarray, blocks: int
                         ) -> np.ndarray:
    """``mu_b = max(0, Re tr(V_b^H (B - A V)_b) / ||V_b||^2)`` per block."""
    R = B - A @ V
    num = (V.conj() * R).real.sum(axis=-1)
    den = (V.real**2 + V.imag**2).sum(axis=-1)
    E = (np.asarray(block_index)[None, :] == np.arange(blocks)[:, None]).astype(np.float64)
    num, den = num @ E.T, den @ E.T
    return np.maximum(np.divide(num, den, out=np.zeros_like(num), where=den > 0), 0.0)


def _block_descent(A: np.ndarray, B: np.ndarray, V: np.ndarray, budgets: np.ndarray, block_index: np.ndarray,
                   floor: np.ndarray) -> np.ndarray:
    """Polish a feasible ``V`` by exact block coordinate descent: each block in turn solves its own
    single-budget problem (:func:`_ball_step`) with the other blocks fixed (Tseng 2001: converges to a
    minimiser of this convex problem with separable constraints), until a sweep gains less than
    ``1e-10`` relative or the objective is within that of ``floor`` (a lower bound: ``g(0)``, the
    unconstrained minimum). Never increases the objective; it settles the degenerate case the dual cannot
    (``A`` singular, optimal multipliers zero, the minimiser not unique)."""
    V = np.array(V, dtype=np.complex128)
    f = _wmse(A, B, V)
    todo = np.arange(len(V))
    blocks = [np.flatnonzero(block_index == b) for b in range(budgets.shape[1])]
    others = [np.flatnonzero(block_index != b) for b in range(budgets.shape[1])]
    for _ in range(_MAX_SWEEPS):
        if todo.size == 0:
            break
        Vt = V[todo]
        At, Bt = A[todo], B[todo]
        for b, (r, o) in enumerate(zip(blocks, others)):
            rhs = Bt[:, r] - At[:, r][:, :, o] @ Vt[:, o]
            Vt[:, r] = _ball_step(At[:, r][:, :, r], rhs, budgets[todo, b])
        fn = _wmse(At, Bt, Vt)
        keep = np.isfinite(fn) & (fn <= f[todo])
        V[todo[keep]] = Vt[keep]
        gain = f[todo] - np.where(keep, fn, f[todo])
        f[todo] = np.where(keep, fn, f[todo])
        tol = _BCD_RTOL * (np.abs(f[todo]) + 1.0)
        todo = todo[keep & (gain > tol) & (f[todo] - floor[todo] > tol)]
    return V


def _v_step_blocks(H: np.ndarray, alpha: np.ndarray, sigma2: np.ndarray, G: np.ndarray, V: np.ndarray,
                   budgets: np.ndarray, block_index: np.ndarray, mu: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """One WMMSE sweep (u, w, then V under per-block budgets) from the current ``V`` at gains ``G``."""
    A, B = _quadratic(H, alpha, sigma2, G)
    return _v_blocks(A, B, budgets, block_index, V, mu)


def wmmse_stack(
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
    """Run WMMSE on each of ``n`` independent instances; returns final ``V``, WSR and iteration counts.

    Shapes: ``H`` (n, K, Nt), ``alpha`` (n, K), ``power`` (n,), ``sigma2`` (n,) or per user (n, K),
    ``V0`` (n, Nt, K). With ``budgets`` (n, N) and ``block_index`` (Nt,) (the block of every precoder
    row) the power constraint is one budget per block instead of ``power`` (module docstring).
    ``on_sweep(t, V, wsr, ran)`` is called before the first sweep (``t = 0``) and after every sweep
    ``t``, with ``ran`` marking the instances that iterated in it; ``stop()`` ends the run early.
    """
    V = np.array(V0, dtype=np.complex128)
    if budgets is not None:
        budgets = np.asarray(budgets, dtype=np.float64)
        block_index = np.zeros(V.shape[1], dtype=np.int64) if block_index is None else np.asarray(block_index)
        mu = np.zeros(budgets.shape)

    def step(i: np.ndarray, V: np.ndarray, G: np.ndarray) -> np.ndarray:
        if budgets is None:
            return _v_step(H[i], alpha[i], power[i], sigma2[i], G[i])
        Vn, mu[i] = _v_step_blocks(H[i], alpha[i], sigma2[i], G[i], V[i], budgets[i], block_index, mu[i])
        return Vn

    return sweep_stack(V, H.conj() @ V, alpha, sigma2, step, lambda i, Vn: H[i].conj() @ Vn, max_iter, tol,
                       on_sweep, stop)


def sweep_stack(
    Z: np.ndarray,
    G: np.ndarray,
    alpha: np.ndarray,
    sigma2: np.ndarray,
    step: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    gains: Callable[[np.ndarray, np.ndarray], np.ndarray],
    max_iter: int,
    tol: float,
    on_sweep: Callable[[int, np.ndarray, np.ndarray, np.ndarray], None] | None = None,
    stop: Callable[[], bool] | None = None,
    as_v: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sweep loop shared by the WMMSE family (``wmmse``, ``fp``, ``r-wmmse``) on a stack of instances.

    ``Z`` (n, ., K) is the iterate (the precoder ``V``, or R-WMMSE's ``X`` with ``V = H^T X``), ``G`` its gains
    ``h_k^H v_j``; ``step(i, Z, G)`` returns the next iterates of the instances ``i`` and ``gains(i, Zn)``
    their gains. An instance stops when its WSR changes by at most ``tol``; a step that gives a non-finite
    iterate or WSR is not taken (the instance keeps its last good point and stops). ``on_sweep(t, V, wsr,
    ran)`` sees ``V = as_v(Z)``. Returns ``Z``, the WSR and the iterations taken per instance.
    """
    show = (lambda z: z) if as_v is None else as_v
    wsr = weighted_sum_rate_stack(G, alpha, sigma2)
    iters = np.zeros(len(Z), dtype=np.int64)
    active = np.arange(len(Z))
    if on_sweep is not None:
        on_sweep(0, show(Z), wsr, np.ones(len(Z), dtype=bool))
    for t in range(1, max_iter + 1):
        if active.size == 0 or (stop is not None and stop()):
            break
        i = active
        Zn = step(i, Z, G)
        Gn = gains(i, Zn)
        wn = weighted_sum_rate_stack(Gn, alpha[i], sigma2[i])
        bad = ~(np.isfinite(wn) & np.isfinite(Zn).all(axis=(1, 2)))  # defensive: keep the last good point
        ok = i[~bad]
        Z[ok], G[ok] = Zn[~bad], Gn[~bad]
        done = bad | (np.abs(wn - wsr[i]) <= tol)
        wsr[ok] = wn[~bad]
        iters[ok] += 1
        active = i[~done]
        if on_sweep is not None:
            ran = np.zeros(len(Z), dtype=bool)
            ran[ok] = True
            on_sweep(t, show(Z), wsr, ran)
    return Z, wsr, iters


class Wmmse(Solver):
    """WMMSE, best of ``starts`` runs; the defaults are the seed-001 protocol.

    ``wmmse[max_iter=10,init=mrt,starts=1]`` is the baseline of the MLBF authors' code. It applies to every
    problem with a :meth:`~wbench.problem.Problem.precoding_view`: the precoder (the variable with role
    ``precoder``; the view's columns of it) is optimised with the other variables held at the start point
    (for ``bdris``: ``Phi = I`` from ``init=mrt``, a random scattering matrix from ``init=random``, a
    different one per random start), under the view's total or per-block power budgets. The trace holds
    the best current start of each realisation after every sweep, numbered by sweep;
    :attr:`Solution.iterations` counts WMMSE iterations summed over the starts.
    """

    name = "wmmse"
    version = "1"
    description = "WMMSE (Shi et al. 2011), best of n starts; defaults = seed-001 protocol"
    tags = frozenset({"conventional"})
    scenarios = None
    batched = True
    options = {
        "max_iter": Param(100, "WMMSE iterations per start", min=1),
        "tol": Param(1e-4, "stop a start when its WSR changes by <= tol (bit/s/Hz)", min=0),
        "starts": Param(10, "number of starts; the best final WSR is kept", min=1),
        "init": Param(
            "random",
            "first start: a named initial point of the scenario (miso: random, mrt, zf, rzf; bdris: random, "
            "mrt); the other starts are random feasible points",
        ),
    }
    budget_options = ("max_iter", "tol", "starts", "init")
    #: The stacked iteration (same signature as :func:`wmmse_stack`); a variant of the method overrides it.
    _run = staticmethod(wmmse_stack)

    def supports_problem(self, problem: Problem) -> bool:
        return self.declines(problem, {}) is None

    #: Whether the method handles one power budget per block (per BS); variants that implement a single
    #: total budget set it False and decline such problems with the reason.
    per_block_budgets: bool = True

    def declines(self, problem: Problem, options: Mapping[str, Any]) -> str | None:
        if not problem.has_precoding_view:
            return "the problem has no linear-precoding view (no precoder variable with a channel)"
        if not self.per_block_budgets and problem.precoding_view(problem.initial()).n_blocks > 1:
            return f"{self.name} implements a single total power budget, not per-block budgets"
        return None

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        return self.solve_batch([problem], options, [ctx])[0]

    def memory_bytes(self, problem: Problem, options: Mapping[str, Any]) -> int:
        """Every start's precoder-sized state (channel, precoder, receivers, weights, eigenvectors) is
        iterated at once: ``64 x starts x`` the precoder's bytes, plus the other variables (held fixed)."""
        starts = self.resolve_options(options)["starts"]
        sizes = {k: int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for k, v in problem.variables.items()}
        precoder = problem.role_variable("precoder")
        if precoder is None:
            return super().memory_bytes(problem, options)
        return 64 * starts * sizes[precoder] + 2 * (sum(sizes.values()) - sizes[precoder])

    def solve_batch(
        self, problems: Sequence[Problem], options: Mapping[str, Any], ctxs: Sequence[RunContext]
    ) -> list[Solution]:
        opts = self.resolve_options(options)
        problems, ctxs = list(problems), list(ctxs)
        if len(problems) != len(ctxs):
            raise ValueError("solve_batch needs one RunContext per problem")
        starts = [_starting_points(p, opts, c.rng) for p, c in zip(problems, ctxs)]
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, s in enumerate(starts):
            view = s[0][1]
            groups.setdefault((np.shape(view.H), view.blocks), []).append(i)
        out: list[Solution] = [Solution()] * len(problems)
        for idx in groups.values():
            sols = _solve_same_shape([starts[i] for i in idx], opts, [ctxs[i] for i in idx], self._run)
            for i, s in zip(idx, sols):
                out[i] = s
        return out


Start = tuple[dict[str, np.ndarray], PrecodingView]


def _starting_points(problem: Problem, opts: Mapping[str, Any], rng: np.random.Generator) -> list[Start]:
    """First start from ``init``, the rest random feasible, drawn from ``rng`` in start order."""
    methods = [opts["init"]] + ["random"] * (opts["starts"] - 1)
    points = [problem.initial(m, rng) for m in methods]
    return [(x, problem.precoding_view(x)) for x in points]


def view_arrays(views: Sequence[PrecodingView]) -> dict[str, Any]:
    """The arguments of :func:`wmmse_stack` for a stack of views of one shape and block structure:
    ``H``, ``alpha``, ``power``, ``sigma2`` (per instance, or per user when a view has fixed streams'
    interference), and ``budgets`` / ``block_index`` when the views have several blocks."""
    out: dict[str, Any] = {
        "H": np.stack([np.asarray(v.H, dtype=np.complex128) for v in views]),
        "alpha": np.stack([np.asarray(v.weights, dtype=np.float64) for v in views]),
        "power": np.array([float(v.power) for v in views]),
    }
    if all(np.ndim(v.sigma2) == 0 for v in views):
        out["sigma2"] = np.array([float(v.sigma2) for v in views])
    else:
        out["sigma2"] = np.stack([v.noise() for v in views])
    if views[0].blocks is not None:
        out["budgets"] = np.stack([v.block_budgets() for v in views])
        out["block_index"] = views[0].block_index()
    return out


def _solve_same_shape(starts: list[list[Start]], opts: Mapping[str, Any], ctxs: list[RunContext],
                      run: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[Solution]:
    """Run ``run`` (:func:`wmmse_stack` or a function with its signature) on every start of a stack of
    problems of one shape; the best start of each realisation is its solution."""
    S, nb = opts["starts"], len(starts)
    flat = [s for per in starts for s in per]
    views = [v for _, v in flat]
    V0 = np.stack([np.asarray(v.start(x), dtype=np.complex128) for x, v in flat])
    arrays = view_arrays(views)
    budgeted = [c for c in ctxs if c.budget_seconds is not None]
    best_trace: list[np.ndarray] = []

    def point(b: int, s: int, V: np.ndarray) -> dict[str, np.ndarray]:
        x, view = flat[b * S + s]
        return view.embed(x, V)

    def on_sweep(t: int, V: np.ndarray, wsr: np.ndarray, ran: np.ndarray) -> None:
        # Trace of the best current start of each realisation (one WMMSE iteration of every running start
        # per sweep, so the checkpoint iteration is the sweep number).
        rates = wsr.reshape(nb, S)
        best = rates.argmax(axis=1)
        best_trace.append(rates[np.arange(nb), best])
        for b in np.flatnonzero(ran.reshape(nb, S).any(axis=1)):
            ctxs[b].checkpoint(point(b, best[b], V[b * S + best[b]]), t)

    V, wsr, iters = run(
        arrays["H"], arrays["alpha"], arrays["power"], arrays["sigma2"], V0, opts["max_iter"], opts["tol"],
        on_sweep, (lambda: any(c.expired() for c in budgeted)) if budgeted else None,
        budgets=arrays.get("budgets"), block_index=arrays.get("block_index"),
    )
    trace = np.array(best_trace)
    out = []
    for b, ctx in enumerate(ctxs):
        sl = slice(b * S, (b + 1) * S)
        best = int(np.argmax(wsr[sl]))
        xb = point(b, best, V[sl][best].copy())
        sweeps = int(iters[sl].max())
        if not ctx.checkpoints or ctx.checkpoints[-1][1] != sweeps:
            ctx.checkpoint(xb, sweeps, force=True)
        info = {
            "start_wsr": wsr[sl].tolist(),
            "best_start": best,
            "wsr_trace": trace[: sweeps + 1, b].tolist(),  # best current WSR after each sweep
        }
        out.append(Solution(x=xb, iterations=int(iters[sl].sum()), info=info))
    return out


@hookimpl
def wbench_register_solvers(register) -> None:
    register(Wmmse())
