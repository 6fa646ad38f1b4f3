"""Dirty-paper (weighted) sum capacity of the MISO broadcast channel: an upper bound for every linear precoder.

By BC-MAC duality (Vishwanath, Jindal, Goldsmith 2003; Viswanath & Tse 2003) the sum capacity of the
Gaussian MISO broadcast channel with sum power ``P`` equals that of the dual multiple-access channel:

    C = max_{p >= 0, sum p <= P} log2 det(I + (1/sigma2) sum_k p_k h_k h_k^H)

a concave problem on the simplex (SCENARIOS.md section 1).

With unequal user weights ``alpha`` the bound is the exact weighted sum capacity. The DPC region equals the
capacity region of the dual MAC under the same sum power (Vishwanath, Jindal, Goldsmith, "Duality,
achievable rates, and sum-rate capacity of Gaussian MIMO broadcast channels", IEEE Trans. Inf. Theory
49(10), 2003, Theorem 1), and on a MAC polymatroid a weighted sum rate is maximised at the corner where
users are decoded in order of increasing weight, the largest weight last (D. Tse, S. Hanly, "Multiaccess
fading channels -- Part I", IEEE Trans. Inf. Theory 44(7), 1998, Section III: the polymatroid
structure). With distinct weight levels
``w_1 < ... < w_L`` (``w_0 = 0``) and ``T_l = {k : alpha_k >= w_l}`` the weighted sum capacity is then

    C_alpha = max_{p >= 0, sum p <= P} sum_l (w_l - w_{l-1}) log2 det(I + (1/sigma2) sum_{k in T_l} p_k h_k h_k^H),

(M. Kobayashi, G. Caire, "An iterative water-filling algorithm for maximum weighted sum-rate of Gaussian
MIMO-BC", IEEE J. Sel. Areas Commun. 24(8), 2006, treat the same problem), again concave (nonnegative
combinations of log-determinants), with gradient ``g_k = sum_{l : k in T_l} (w_l - w_{l-1})
h_k^H S_l^{-1} h_k / (sigma2 ln 2)`` and Hessian ``-sum_l (w_l - w_{l-1}) |A_l^H S_l^{-1} A_l|^2`` on
``T_l``. For equal weights it is ``alpha C`` (one level), and that formula is used then. Every
``sum_k alpha_k R_k`` of a linear precoder is at most ``C_alpha`` (and ``C_alpha <= max(alpha) C``).

Method: rather than the sum-power iterative water-filling of Jindal, Rhee, Vishwanath, Jafar, Goldsmith
(2005), whose provably convergent (averaged) variant converges only linearly, a log-barrier
interior-point method with equality-constrained Newton centring (Boyd & Vandenberghe, *Convex
Optimization*, 2004, section 11.3) runs to a moderate gap, where the support of the optimum shows; then
Newton's method on the KKT system of that face of the simplex (with a primal active set) converges
quadratically, with exact zeros off the face. For the gradient ``g_k = h_k^H S^{-1} h_k / (sigma2 ln 2)``,
``S = I + sum_k p_k h_k h_k^H / sigma2``, concavity gives the Frank-Wolfe certificate
``C <= f(p) + P max_k g_k - p.g`` at any feasible ``p`` (the same method and certificate serve the
weighted objective). The reported value is the smallest such
certificate found, so it is an upper bound however far the iteration got; it is within ``tol``
(relative) of ``f(p) <= C`` on exit unless ``max_iter`` ran out. Deterministic.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ...hookspecs import hookimpl
from ...params import Param
from ...problem import Problem
from ...solver import RunContext, Solution, Solver

_LN2 = np.log(2.0)


class _Mac:
    """``f(p) = ln det(I + sum_k p_k a_k a_k^H)`` with ``a_k = h_k / sigma``, gradient and Hessian (nats)."""

    def __init__(self, H: np.ndarray, sigma2: float) -> None:
        self.A = np.asarray(H, dtype=np.complex128).T / np.sqrt(sigma2)  # column k is a_k

    def value(self, p: np.ndarray) -> float:
        S = np.eye(self.A.shape[0]) + (self.A * p) @ self.A.conj().T
        return float(np.linalg.slogdet(S)[1])

    def derivatives(self, p: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Value, gradient ``g_k = a_k^H S^{-1} a_k`` and ``Q = |A^H S^{-1} A|^2`` (Hessian is ``-Q``)."""
        S = np.eye(self.A.shape[0]) + (self.A * p) @ self.A.conj().T
        M = self.A.conj().T @ np.linalg.solve(S, self.A)
        return float(np.linalg.slogdet(S)[1]), M.diagonal().real.copy(), np.abs(M) ** 2


class _WeightedMac(_Mac):
    """``f(p) = sum_l beta_l ln det(I + sum_{k in T_l} p_k a_k a_k^H)`` (module docstring; nats), with
    ``beta_l = w_l - w_{l-1} > 0`` over the distinct weight levels and ``T_l`` the users at or above
    level ``l``; value, gradient and ``Q`` (the Hessian is ``-Q``) as :class:`_Mac`."""

    def __init__(self, H: np.ndarray, sigma2: float, weights: np.ndarray) -> None:
        super().__init__(H, sigma2)
        alpha = np.asarray(weights, dtype=np.float64)
        levels = np.unique(alpha)
        steps = np.diff(np.concatenate([[0.0], levels]))
        self.levels = [(float(b), alpha >= w) for w, b in zip(levels, steps) if b > 0]

    def _s(self, p: np.ndarray, members: np.ndarray) -> np.ndarray:
        return np.eye(self.A.shape[0]) + (self.A * np.where(members, p, 0.0)) @ self.A.conj().T

    def value(self, p: np.ndarray) -> float:
        return float(sum(b * np.linalg.slogdet(self._s(p, m))[1] for b, m in self.levels))

    def derivatives(self, p: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        K = self.A.shape[1]
        f, g, Q = 0.0, np.zeros(K), np.zeros((K, K))
        for b, m in self.levels:
            S = self._s(p, m)
            M = self.A.conj().T @ np.linalg.solve(S, self.A)
            f += b * float(np.linalg.slogdet(S)[1])
            g += b * np.where(m, M.diagonal().real, 0.0)
            Q += b * np.outer(m, m) * np.abs(M) ** 2
        return f, g, Q


def _certificate(mac: _Mac, p: np.ndarray, total: float) -> tuple[float, float]:
    """``(f(p), gap)`` in nats with ``gap = P max g - p.g >= C - f(p)`` (concavity)."""
    f, g, _ = mac.derivatives(p)
    return f, max(0.0, total * float(g.max()) - float(p @ g))


def _barrier(mac: _Mac, total: float, rtol: float, max_steps: int) -> tuple[np.ndarray, float, int]:
    """Log-barrier interior point: maximise ``t f(p) + sum log p`` on ``sum p = P`` for growing ``t``.

    Stops once the central-path gap ``K / t`` is below ``rtol f``; returns ``p``, ``t`` and Newton steps.
    """
    K = mac.A.shape[1]
    p = np.full(K, total / K)
    f, gap = _certificate(mac, p, total)
    t = K / max(gap, 1e-3 * f, 1e-300)
    steps = 0
    while steps < max_steps:
        for _ in range(50):  # centring: Newton in the scaled variable dp = p * z, with p.z = 0
            f, g, Q = mac.derivatives(p)
            r = t * p * g + 1.0
            Hs = t * np.outer(p, p) * Q + np.eye(K)
            y1, y2 = np.linalg.solve(Hs, np.stack([r, p], axis=1)).T
            z = y1 - (p @ y1) / (p @ y2) * y2
            decrement = float(r @ z)  # squared Newton decrement
            steps += 1
            if decrement <= 1e-9 or steps >= max_steps:
                break
            s = 1.0
            while np.any(1.0 + s * z <= 0.0):
                s *= 0.5
            phi = t * f + np.log(p).sum()
            while s > 1e-10:
                q = p * (1.0 + s * z)
                q *= total / q.sum()
                if t * mac.value(q) + np.log(q).sum() >= phi + 0.25 * s * decrement:
                    break
                s *= 0.5
            else:
                break  # no progress measurable in floating point: centred as well as it gets
            p = q
        if K / t <= max(rtol, 1e-15) * max(f, 1e-300):  # beyond 1e-15 nothing is measurable
            break
        t *= 20.0
    return p, t, steps


def _face_kkt(
    mac: _Mac, p: np.ndarray, support: np.ndarray, total: float, iters: int = 50
) -> tuple[np.ndarray, int]:
    """Newton's method on the KKT system of ``max f`` on the face ``{p_F >= 0, sum p_F = P, p = 0 off F}``.

    Solves ``g_F(p) = w 1`` and ``sum p_F = P`` (Jacobian ``[[Q_FF, 1], [1^T, 0]]``) with a backtracking
    search on the residual; a user whose power would turn negative is dropped from the face, and a user
    off the face whose gradient exceeds the level ``w`` is added (primal active set). Near the optimum
    the steps are plain Newton steps, so the gradients on the face agree to rounding.
    """
    support = support.copy()
    p = np.where(support, p, 0.0)
    p *= total / p.sum()
    steps = 0

    def residual(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        _, g, Q = mac.derivatives(q)
        F = np.flatnonzero(support)
        w = float(q[F] @ g[F]) / total
        return g, Q, np.append(g[F] - w, q[F].sum() - total), w

    for _ in range(iters):
        g, Q, res, w = residual(p)
        F = np.flatnonzero(support)
        norm = float(np.abs(res).max())
        if norm <= 4 * np.finfo(float).eps * float(g.max()):
            off = ~support & (g > w * (1 + 1e-12))
            if not off.any():
                break
            support[np.argmax(np.where(off, g, -np.inf))] = True
            continue
        m = F.size
        J = np.zeros((m + 1, m + 1))
        J[:m, :m], J[:m, m], J[m, :m] = Q[np.ix_(F, F)], 1.0, 1.0
        sol = np.linalg.lstsq(J, np.append(res[:m], -res[m]), rcond=None)[0]
        d = sol[:m]
        s, improved = 1.0, False
        while s > 1e-6:
            q = p.copy()
            q[F] = p[F] + s * d
            if np.all(q[F] > 0) and float(np.abs(residual(q)[2]).max()) < norm:
                improved = True
                break
            s *= 0.5
        steps += 1
        if not improved:
            neg = p[F] + d <= 0
            if not neg.any() or F.size == 1:
                break
            support[F[np.argmin(np.where(neg, (p[F] + d), np.inf))]] = False  # blocked by p_k >= 0: drop k
            p = np.where(support, p, 0.0)
            p *= total / p.sum()
            continue
        p = q
    return p, steps


def sum_capacity(
    H: np.ndarray, power: float, sigma2: float, tol: float = 1e-10, max_iter: int = 10000
) -> tuple[float, np.ndarray, float, int]:
    """Certified sum capacity ``(C+, p, C+ - f(p), Newton steps)`` in bit/s/Hz, with ``f(p) <= C <= C+``.

    ``H`` has the channels ``h_k`` as rows (K x Nt). The barrier runs to a moderate gap (``1e-7``, or
    ``tol`` if looser), where the support of the optimum shows; Newton on the KKT system of that face
    then converges quadratically to rounding; should it fail, the barrier continues down to ``tol``.
    """
    return _maximise(_Mac(H, sigma2), power, tol, max_iter)


def weighted_sum_capacity(
    H: np.ndarray, power: float, sigma2: float, weights: np.ndarray, tol: float = 1e-10, max_iter: int = 10000
) -> tuple[float, np.ndarray, float, int]:
    """Certified weighted sum capacity ``(C+, p, C+ - f(p), Newton steps)`` in bit/s/Hz (module docstring):
    the dual-MAC powers ``p`` with users decoded in order of increasing weight, ``f(p) <= C_alpha <= C+``.
    Equal weights give ``alpha C`` with :func:`sum_capacity`'s numbers."""
    alpha = np.asarray(weights, dtype=np.float64)
    if alpha.size and np.all(alpha == alpha[0]):
        upper, p, gap, steps = sum_capacity(H, power, sigma2, tol, max_iter)
        return float(alpha[0]) * upper, p, float(alpha[0]) * gap, steps
    if not np.any(alpha > 0):
        return 0.0, np.full(alpha.size, float(power) / alpha.size), 0.0, 0
    return _maximise(_WeightedMac(H, sigma2, alpha), power, tol, max_iter)


def _maximise(mac: _Mac, power: float, tol: float, max_iter: int) -> tuple[float, np.ndarray, float, int]:
    """Barrier, then Newton on the optimal face, of the concave ``mac`` objective on the simplex."""
    K = mac.A.shape[1]
    if K == 1 or not np.any(mac.A):  # one user (all power to it), or no channel at all (C = 0)
        p = np.full(K, float(power) / K)
        return mac.value(p) / _LN2, p, 0.0, 0
    pb, t, steps = _barrier(mac, power, max(tol, 1e-7), max_iter)
    fb, gap_b = _certificate(mac, pb, power)
    _, g, _ = mac.derivatives(pb)
    # On the central path g_k = nu - 1/(t p_k): users with t p_k g_k small sit well below the level.
    support = t * pb * g.max() >= 1e3
    if not support.any():
        support = pb == pb.max()
    pf, more = _face_kkt(mac, pb, support, power, min(50, max_iter - steps))
    steps += more
    ff, gap_f = _certificate(mac, pf, power)
    if gap_f > tol * ff and gap_b > tol * fb and steps < max_iter:
        pb, _, more = _barrier(mac, power, tol, max_iter - steps)
        steps += more
        fb, gap_b = _certificate(mac, pb, power)
    f, p = (ff, pf) if gap_f <= max(tol * ff, gap_b) else (fb, pb)
    upper = max(min(fb + gap_b, ff + gap_f), f)  # both sums are upper bounds on C, f(p) a lower one
    return upper / _LN2, p, (upper - f) / _LN2, steps


class DpcBound(Solver):
    """The weighted sum capacity of the DPC region, an upper bound on the weighted sum rate of every precoder.

    Generic over the linear-precoding view: it applies when the view *is* the whole problem (the precoder is
    the only variable, one total power budget, every column a user's stream, one noise level), as in
    ``miso`` or a hybrid scenario's fully-digital reference; the view's channel, weights, budget and noise
    are the bound's. A per-block budget or other variables (a RIS, held fixed by the view) make the DPC
    capacity of the view no bound of the problem: declined.
    """

    name = "dpc-bound"
    version = "2"
    description = "dirty-paper weighted sum capacity (BC-MAC duality): upper bound for miso"
    tags = frozenset({"bound"})
    scenarios = ("miso",)
    options = {
        "tol": Param(1e-10, "relative duality (Frank-Wolfe) gap at which to stop", min=0),
        "max_iter": Param(10000, "Newton steps at most", min=1),
    }

    def supports_problem(self, problem: Problem) -> bool:
        return self.declines(problem, {}) is None

    def declines(self, problem: Problem, options: Mapping[str, Any]) -> str | None:
        return whole_problem_view_reason(problem)

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        opts = self.resolve_options(options)
        view = problem.precoding_view(problem.initial())
        H = np.asarray(view.H)
        upper, p, gap, steps = weighted_sum_capacity(
            H, float(view.power), float(view.sigma2), np.asarray(view.weights), opts["tol"], opts["max_iter"]
        )
        info = {"p": p.tolist(), "gap": gap}
        return Solution(value=upper, x=None, iterations=steps, info=info)


def whole_problem_view_reason(problem: Problem) -> str | None:
    """Why the problem is not one plain MU-MISO precoding problem (its view covering everything)."""
    if not problem.has_precoding_view:
        return "the problem has no linear-precoding view"
    view = problem.precoding_view(problem.initial())
    if set(problem.variables) != {view.variable}:
        return "the problem has variables besides the precoder"
    if not view.simple:
        return "the precoding view has per-block budgets, a subset of streams or per-user noise"
    return None


@hookimpl
def wbench_register_solvers(register) -> None:
    register(DpcBound())
