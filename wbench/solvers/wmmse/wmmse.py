"""WMMSE for any problem with a linear-precoding view (``miso``; ``bdris`` with ``Phi`` held at its start
point), vectorised over realisations and starts.

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

Starts are run side by side: one *sweep* is one WMMSE iteration of every start that has not met the
stopping rule (``|WSR change| <= tol`` or ``max_iter`` iterations); a finished start is frozen while the
others go on, so each start's result does not depend on what it is batched with.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ...hookspecs import hookimpl
from ...params import Param
from ...problem import MisoView, PowerBall, Problem
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


def _v_step(
    H: np.ndarray, alpha: np.ndarray, power: np.ndarray, sigma2: np.ndarray, G: np.ndarray
) -> np.ndarray:
    """One WMMSE sweep (u, w, then V) for a stack of channels ``H`` (n, K, Nt) at gains ``G``."""
    signal, noise_int = sinr_parts(G, sigma2)
    total = signal + noise_int
    u = np.diagonal(G, axis1=1, axis2=2) / total
    w = total / noise_int
    c = alpha * w * (u.real**2 + u.imag**2)
    b = alpha * w * u
    Ht = H.transpose(0, 2, 1)  # column k is h_k
    A = (Ht * c[:, None, :]) @ H.conj()  # sum_k c_k h_k h_k^H
    B = Ht * b[:, None, :]

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
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run WMMSE on each of ``n`` independent instances; returns final ``V``, WSR and iteration counts.

    Shapes: ``H`` (n, K, Nt), ``alpha`` (n, K), ``power`` and ``sigma2`` (n,), ``V0`` (n, Nt, K).
    ``on_sweep(t, V, wsr, ran)`` is called before the first sweep (``t = 0``) and after every sweep
    ``t``, with ``ran`` marking the instances that iterated in it; ``stop()`` ends the run early.
    """
    V = np.array(V0, dtype=np.complex128)
    G = H.conj() @ V
    wsr = weighted_sum_rate_stack(G, alpha, sigma2)
    iters = np.zeros(len(V), dtype=np.int64)
    active = np.arange(len(V))
    if on_sweep is not None:
        on_sweep(0, V, wsr, np.ones(len(V), dtype=bool))
    for t in range(1, max_iter + 1):
        if active.size == 0 or (stop is not None and stop()):
            break
        i = active
        Vn = _v_step(H[i], alpha[i], power[i], sigma2[i], G[i])
        Gn = H[i].conj() @ Vn
        wn = weighted_sum_rate_stack(Gn, alpha[i], sigma2[i])
        bad = ~(np.isfinite(wn) & np.isfinite(Vn).all(axis=(1, 2)))  # defensive: keep the last good point
        ok = i[~bad]
        V[ok], G[ok] = Vn[~bad], Gn[~bad]
        done = bad | (np.abs(wn - wsr[i]) <= tol)
        wsr[ok] = wn[~bad]
        iters[ok] += 1
        active = i[~done]
        if on_sweep is not None:
            ran = np.zeros(len(V), dtype=bool)
            ran[ok] = True
            on_sweep(t, V, wsr, ran)
    return V, wsr, iters


class Wmmse(Solver):
    """WMMSE, best of ``starts`` runs; the defaults are the seed-001 protocol.

    ``wmmse[max_iter=10,init=mrt,starts=1]`` is the baseline of the MLBF authors' code. It applies to every
    problem with a :meth:`~wbench.problem.Problem.miso_view`: the precoder is optimised with the other
    variables held at the start point (for ``bdris``: ``Phi = I`` from ``init=mrt``, a random scattering
    matrix from ``init=random``, a different one per random start). The trace holds the best current start
    of each realisation after every sweep, numbered by sweep; :attr:`Solution.iterations` counts WMMSE
    iterations summed over the starts.
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

    def supports_problem(self, problem: Problem) -> bool:
        return problem.has_miso_view

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        return self.solve_batch([problem], options, [ctx])[0]

    def memory_bytes(self, problem: Problem, options: Mapping[str, Any]) -> int:
        """Every start's precoder-sized state (channel, precoder, receivers, weights, eigenvectors) is
        iterated at once: ``64 x starts x`` the precoder's bytes, plus the other variables (held fixed)."""
        starts = self.resolve_options(options)["starts"]
        sizes = {k: int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for k, v in problem.variables.items()}
        precoder = max((k for k, v in problem.variables.items() if isinstance(v.constraint, PowerBall)),
                       key=sizes.get, default=None)
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
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, s in enumerate(starts):
            groups.setdefault(np.shape(s[0][1].H), []).append(i)
        out: list[Solution] = [Solution()] * len(problems)
        for idx in groups.values():
            sols = _solve_same_shape([starts[i] for i in idx], opts, [ctxs[i] for i in idx])
            for i, s in zip(idx, sols):
                out[i] = s
        return out


Start = tuple[dict[str, np.ndarray], MisoView]


def _starting_points(problem: Problem, opts: Mapping[str, Any], rng: np.random.Generator) -> list[Start]:
    """First start from ``init``, the rest random feasible, drawn from ``rng`` in start order."""
    methods = [opts["init"]] + ["random"] * (opts["starts"] - 1)
    points = [problem.initial(m, rng) for m in methods]
    return [(x, problem.miso_view(x)) for x in points]


def _solve_same_shape(starts: list[list[Start]], opts: Mapping[str, Any], ctxs: list[RunContext]
                      ) -> list[Solution]:
    S, nb = opts["starts"], len(starts)
    flat = [s for per in starts for s in per]
    views = [v for _, v in flat]
    V0 = np.stack([np.asarray(x[v.variable], dtype=np.complex128) for x, v in flat])
    H = np.stack([np.asarray(v.H, dtype=np.complex128) for v in views])
    alpha = np.stack([np.asarray(v.weights, dtype=np.float64) for v in views])
    power = np.array([float(v.power) for v in views])
    sigma2 = np.array([float(v.sigma2) for v in views])
    budgeted = [c for c in ctxs if c.budget_seconds is not None]
    best_trace: list[np.ndarray] = []

    def point(b: int, s: int, V: np.ndarray) -> dict[str, np.ndarray]:
        x, view = flat[b * S + s]
        return {**x, view.variable: V}

    def on_sweep(t: int, V: np.ndarray, wsr: np.ndarray, ran: np.ndarray) -> None:
        # Trace of the best current start of each realisation (one WMMSE iteration of every running start
        # per sweep, so the checkpoint iteration is the sweep number).
        rates = wsr.reshape(nb, S)
        best = rates.argmax(axis=1)
        best_trace.append(rates[np.arange(nb), best])
        for b in np.flatnonzero(ran.reshape(nb, S).any(axis=1)):
            ctxs[b].checkpoint(point(b, best[b], V[b * S + best[b]]), t)

    V, wsr, iters = wmmse_stack(
        H, alpha, power, sigma2, V0, opts["max_iter"], opts["tol"], on_sweep,
        (lambda: any(c.expired() for c in budgeted)) if budgeted else None,
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
