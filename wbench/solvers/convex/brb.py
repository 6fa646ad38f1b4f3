"""``brb``: the certified global optimum of linear precoding for small ``K`` (branch-reduce-and-bound).

Problem (the linear-precoding view covering the whole problem, e.g. ``miso``; SCENARIOS.md section 1):

    max_V  sum_k alpha_k log2(1 + SINR_k(V))   s.t.  ||V||_F^2 <= P,

non-convex in ``V``, but a linear (hence monotone) function over the achievable rate region
``R = {r >= 0 : the SINR targets 2^r - 1 are achievable within P}``, which is compact and normal (downward
closed). Monotonic optimisation over ``R`` by branch-reduce-and-bound finds the global optimum to any
accuracy: H. Tuy, F. Al-Khayyal, P. T. Thach, "Monotonic optimization: branch and cut methods" (2005);
applied to multi-cell MISO by E. Björnson, G. Zheng, M. Bengtsson, B. Ottersten, "Robust monotonic
optimization framework for multicell MISO systems", IEEE Trans. Signal Process. 60(5), 2012 (Algorithm 1),
and E. Björnson, E. Jorswieck, "Optimal resource allocation in coordinated multi-cell systems", Found.
Trends Commun. Inf. Theory 9(2-3), 2013 (Section 2.3, the BRB algorithm). A rate point is in ``R`` iff the
SINR-constrained power minimisation needs at most ``P`` (:mod:`.powermin`: the fixed-point iteration by
default, the SOCP with ``method=socp``).

The algorithm, on boxes ``[a, b]`` of rate space (``f(r) = alpha . r``):

* start: ``[0, r_max]`` with ``r_max,k = log2(1 + P ||h_k||^2 / sigma2)`` (user ``k`` alone at full power);
  lower bound ``LB`` from the zero precoder, or (``lower=wmmse``, the default) from a few WMMSE starts: any
  feasible precoder is a valid lower bound, and a good one lets the reduction below cut early;
* select the open box with the largest upper bound; stop when that bound is within ``epsilon`` of ``LB``;
* branch: halve the box along the edge with the largest ``alpha_k (b_k - a_k)`` (the edge that moves the
  objective most);
* reduce (Tuy et al., Section 3): the points of ``[a, b]`` with ``f >= LB`` have
  ``r_k >= b_k - (f(b) - LB) / alpha_k``, so ``a`` is raised to that (the box is dropped if it empties);
* reduce the upper corner (Tuy et al., Section 3): with ``a`` feasible, user ``k``'s rate in the box is
  below any ``s`` with ``a + (s - a_k) e_k`` infeasible (such a point is dominated by every point of the
  box with ``r_k >= s``), so ``b_k`` drops to the smallest such ``s`` a short bisection (``UPPER_STEPS``
  steps) certifies;
* bound: a box whose lower corner ``a`` is certified infeasible holds no feasible point (``R`` is normal)
  and is dropped; a box whose upper corner ``b`` is feasible is solved (``f(b)`` is achieved). Otherwise a
  bisection on the segment ``a + t (b - a)`` finds the boundary of ``R`` between a feasible ``t_lo`` (a
  precoder: a candidate for ``LB``) and an infeasible ``t_hi``. As no feasible point dominates the
  infeasible ``c = a + t_hi (b - a)``, every feasible point of the box has some ``r_k < c_k``, so its upper
  bound is ``f(b) - (1 - t_hi) min_k alpha_k (b_k - a_k)`` (a polyblock cut, Tuy et al. Section 2), not
  just ``f(b)``. The bisection stops once ``f(b - a) (t_hi - t_lo)`` is below half the tolerance. A box
  keeps the last few certified-infeasible and feasible points of its ancestors (``MAX_CUTS``): each
  infeasible one bounds it the same way (the smallest such bound counts) and may prove a corner infeasible,
  each feasible one may prove its lower corner feasible, without solving a power minimisation.

Every bound used to discard is certified (an iterate of the monotone fixed point above the budget); a point
the oracle leaves ``undecided`` (rounding, exactly on the boundary) is never used to discard, nor as a
lower bound. ``lower`` is always the weighted sum rate of the precoder returned, evaluated on that precoder,
so the harness scores exactly it. ``upper`` is the largest bound of an open box (or of a solved box), so
``upper >= optimum >= lower`` whether or not the run finished.

Choices the papers leave open: ``epsilon`` is relative by default (``upper - lower <= epsilon * lower``;
``relative=false``: absolute, in bit/s/Hz); the search declines ``K > 4`` users (the number of boxes
grows exponentially with ``K``: measured here, ``K = Nt = 3`` certifies ``1e-3`` in a median of 600-2200
boxes, 7-20 s on a busy 2-core machine, while a ``K = Nt = 4`` instance at 10 dB still had a gap of
``1.1e-3`` after 20000 boxes); when ``max_nodes`` boxes have been branched or ``max_seconds`` (or the run's
time budget) pass, it returns its best precoder with ``certified = False`` and the gap reached
(``info["stalled"] = True``: stopped with the gap open). Users of weight 0 are left out (zero column).
With ``lower=wmmse`` the search's best point is also polished by WMMSE at the end (a monotone ascent: the
rate can only rise, so ``lower`` stays a certified lower bound and the gap can only shrink); the option
``lower=none`` starts from ``LB = 0`` without either, so that the search alone finds the optimum (the tests
use it). Deterministic given the run's seed (the WMMSE starts draw from the run's RNG), unless the time
limit ends it.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from ...hookspecs import hookimpl
from ...params import Param
from ...problem import PrecodingView, Problem
from ...rates import weighted_sum_rate
from ...solver import RunContext, Solution, Solver
from ..wmmse.dpc_bound import whole_problem_view_reason
from .powermin import PowerMinResult, SocpPowerMin, fixed_point, sinr_targets

#: Largest number of users ``brb`` accepts (module docstring).
MAX_USERS = 4
#: Bisection steps of the upper-corner reduction, per user and box (0: no upper-corner reduction).
UPPER_STEPS = 3
#: Known infeasible (and feasible) points a box keeps from its ancestors, most recent first.
MAX_CUTS = 8
#: The bisection on a box's diagonal stops at this fraction of the tolerance (in objective units).
LINE_TOL = 0.5


@dataclass
class BrbResult:
    """``V`` (``Nt x K``) achieving ``lower``; ``upper >= optimum >= lower``; ``nodes`` branched,
    ``checks`` feasibility problems solved; ``certified`` when ``upper - lower`` met the tolerance;
    ``reason`` why it stopped."""

    V: np.ndarray
    lower: float
    upper: float
    nodes: int
    checks: int
    certified: bool
    reason: str
    undecided: int = 0
    stats: dict[str, Any] = field(default_factory=dict)


class _Oracle:
    """Feasibility of rate points of one channel (counts its calls)."""

    def __init__(self, H: np.ndarray, sigma2: float, power: float, method: str) -> None:
        self.H, self.sigma2, self.power = H, sigma2, power
        self.socp = SocpPowerMin(H, sigma2, power) if method == "socp" else None
        self.checks = 0
        self.undecided = 0

    def __call__(self, rates: np.ndarray) -> PowerMinResult:
        self.checks += 1
        gamma = sinr_targets(rates)
        res = self.socp.solve(gamma) if self.socp is not None else fixed_point(self.H, gamma, self.sigma2,
                                                                                self.power)
        self.undecided += res.verdict == "undecided"
        return res


def brb(H: np.ndarray, weights: np.ndarray, sigma2: float, power: float, epsilon: float = 1e-3,
        relative: bool = True, max_nodes: int = 20000, method: str = "fixed-point",
        start: np.ndarray | None = None, stop: Callable[[], bool] | None = None) -> BrbResult:
    """Branch-reduce-and-bound for ``max sum alpha_k R_k`` (module docstring) on channel rows ``H`` (K x Nt).

    ``start``: a feasible precoder whose rates seed the lower bound (optional); ``stop()``: end early
    (time budget). Returns the best precoder with certified ``lower <= optimum <= upper``.
    """
    H = np.asarray(H, dtype=np.complex128)
    w_all = np.asarray(weights, dtype=np.float64)
    K, Nt = H.shape
    users = np.flatnonzero(w_all > 0)
    Hs, w = H[users], w_all[users]
    oracle = _Oracle(Hs, float(sigma2), float(power), method)

    def full(Vs: np.ndarray) -> np.ndarray:
        V = np.zeros((Nt, K), dtype=np.complex128)
        V[:, users] = Vs
        return V

    def value(V: np.ndarray) -> float:
        return weighted_sum_rate(H.conj() @ V, w_all, float(sigma2))

    best_V = np.zeros((Nt, K), dtype=np.complex128)
    lower = 0.0
    if start is not None and np.sum(np.abs(start) ** 2) <= power * (1 + 1e-12) and value(start) > lower:
        best_V, lower = np.asarray(start, dtype=np.complex128), value(start)

    def tol() -> float:
        return epsilon * max(lower, 0.0) if relative else epsilon

    def offer(res: PowerMinResult) -> None:
        nonlocal best_V, lower
        if res.verdict == "feasible" and res.V is not None:
            V = full(res.V)
            u = value(V)
            if u > lower:
                best_V, lower = V, u

    if users.size == 0:
        return BrbResult(best_V, lower, lower, 0, 0, True, "no user has a positive weight")
    r_max = np.log2(1.0 + float(power) * np.sum(np.abs(Hs) ** 2, axis=1) / float(sigma2))
    heap: list[tuple[float, int, np.ndarray, np.ndarray, tuple, tuple]] = []
    counter = itertools.count()
    solved_upper = -math.inf  # f(b) of boxes whose upper corner was found feasible

    def cut_bound(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
        """The upper bound on ``[a, b]`` given the infeasible point ``c`` (``-inf``: no feasible point)."""
        escape = c > a  # a feasible x of the box has x_k < c_k for some such k
        if not escape.any():
            return -math.inf
        return float(w @ b) - float(np.min((w * np.maximum(b - c, 0.0))[escape]))

    def process(a: np.ndarray, b: np.ndarray, cuts: tuple, feas: tuple) -> None:
        """Reduce and bound the box ``[a, b]``; ``cuts``: certified-infeasible points known from its
        ancestors, ``feas``: feasible points known from them (``R`` is normal: what lies below a feasible
        point is feasible, above an infeasible one infeasible)."""
        nonlocal solved_upper
        fb = float(w @ b)
        a = np.maximum(a, b - (fb - lower) / w)  # reduce: points of the box with f >= lower
        if np.any(a > b) or fb <= lower:
            return
        ub = min([fb] + [cut_bound(a, b, c) for c in cuts])
        if ub <= lower:
            return
        cuts = tuple(c for c in cuts if np.any(c < b))[-MAX_CUTS:]  # a cut above b says nothing here
        if not any(np.all(a <= p) for p in feas):
            res = oracle(a)
            if res.verdict == "infeasible":
                return
            offer(res)
            if res.verdict != "feasible":  # undecided: keep the box as it is, unexplored
                heapq.heappush(heap, (-ub, next(counter), a, b, cuts, feas))
                return
            feas = feas + (a,)
        if UPPER_STEPS:
            b = b.copy()
            for k in range(b.size):  # Tuy's upper-corner reduction: user k's largest rate above a
                if w[k] * (b[k] - a[k]) <= LINE_TOL * max(tol(), 1e-12):
                    continue
                lo, hi = a[k], b[k]
                end = a.copy()
                end[k] = hi
                if not any(np.all(c <= end) for c in cuts):
                    res = oracle(end)
                    if res.verdict != "infeasible":
                        offer(res)
                        continue
                for _ in range(UPPER_STEPS):
                    end[k] = 0.5 * (lo + hi)
                    res = oracle(end)
                    if res.verdict == "undecided":
                        break
                    if res.verdict == "feasible":
                        offer(res)
                        lo = end[k]
                    else:
                        hi = end[k]
                b[k] = hi  # a + (hi - a_k) e_k is infeasible: no feasible point of the box has r_k >= hi
            fb = float(w @ b)
            ub = min(ub, fb)
            if fb <= lower:
                return
        b_known_infeasible = any(np.all(c <= b) for c in cuts)
        if not b_known_infeasible:
            res_b = oracle(b)
            if res_b.verdict == "feasible":
                offer(res_b)
                solved_upper = max(solved_upper, fb)
                return
            if res_b.verdict == "infeasible":
                cuts = (cuts + (b,))[-MAX_CUTS:]
        t_lo, t_top = 0.0, 1.0
        span = float(w @ (b - a))
        t_hi = math.nan  # smallest certified-infeasible t found on the segment
        while span * (t_top - t_lo) > LINE_TOL * max(tol(), 1e-12) and t_top - t_lo > 1e-12:
            mid = 0.5 * (t_lo + t_top)
            point = a + mid * (b - a)
            if any(np.all(c <= point) for c in cuts):
                t_top = t_hi = mid
                continue
            res = oracle(point)
            if res.verdict == "feasible":
                offer(res)
                t_lo = mid
            else:
                t_top = mid
                if res.verdict == "infeasible":
                    t_hi = mid
        if t_lo > 0:
            feas = (feas + (a + t_lo * (b - a),))[-MAX_CUTS:]
        if t_hi == t_hi:
            c = a + t_hi * (b - a)
            cuts = (cuts + (c,))[-MAX_CUTS:]
            ub = min(ub, cut_bound(a, b, c))
        if ub > lower:
            heapq.heappush(heap, (-ub, next(counter), a, b, cuts, feas))

    process(np.zeros_like(r_max), r_max, (), (np.zeros_like(r_max),))
    nodes = 0
    reason = "certified"
    while True:
        while heap and -heap[0][0] <= lower:  # a box that cannot beat the incumbent
            heapq.heappop(heap)
        upper = max(-heap[0][0] if heap else -math.inf, solved_upper, lower)
        if upper - lower <= tol():
            break
        if nodes >= max_nodes:
            reason = f"node budget of {max_nodes} boxes spent"
            break
        if stop is not None and stop():
            reason = "time budget spent"
            break
        _, _, a, b, cuts, feas = heapq.heappop(heap)
        nodes += 1
        j = int(np.argmax(w * (b - a)))
        mid = 0.5 * (a[j] + b[j])
        b_low, a_up = b.copy(), a.copy()
        b_low[j], a_up[j] = mid, mid
        process(a.copy(), b_low, cuts, feas)
        process(a_up, b.copy(), cuts, feas)
    upper = max(-heap[0][0] if heap else -math.inf, solved_upper, lower)
    certified = upper - lower <= tol()
    if certified:
        reason = "certified"
    return BrbResult(best_V, lower, upper, nodes, oracle.checks, certified, reason, oracle.undecided)


class Brb(Solver):
    """The certified optimum of the weighted sum rate over linear precoders, by BRB (module docstring)."""

    name = "brb"
    version = "3"
    description = ("certified global optimum of linear precoding by branch-reduce-and-bound "
                   "(Björnson & Jorswieck 2013), K <= 4")
    tags = frozenset({"optimum"})
    options = {
        "epsilon": Param(1e-3, "certified gap: stop when upper - lower <= epsilon (x lower if relative)", min=0),
        "relative": Param(True, "epsilon relative to the lower bound (else absolute, bit/s/Hz)"),
        "max_nodes": Param(20000, "boxes branched at most; then the best point and the gap reached", min=1),
        "max_seconds": Param(120.0, "seconds at most (also the run's time budget, if shorter)", min=0),
        "method": Param("fixed-point", "feasibility oracle: fixed-point (uplink-downlink duality) or socp (cvxpy)",
                        choices=("fixed-point", "socp")),
        "lower": Param("wmmse", "initial lower bound: wmmse (best of 4 starts) or none (zero precoder)",
                       choices=("wmmse", "none")),
    }
    budget_options = ("epsilon", "max_nodes")

    def supports_problem(self, problem: Problem) -> bool:
        return whole_problem_view_reason(problem) is None

    def declines(self, problem: Problem, options: Mapping[str, Any]) -> str | None:
        why = whole_problem_view_reason(problem)
        if why is not None:
            return why
        K = problem.precoding_view(problem.initial()).users
        if K > MAX_USERS:
            return f"brb certifies optima for K <= {MAX_USERS} users only (K={K}: too many boxes)"
        return None

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        opts = self.resolve_options(options)
        x0 = problem.initial()
        view = problem.precoding_view(x0)
        start = _wmmse_start(problem, view, ctx) if opts["lower"] == "wmmse" else None
        limit = float(opts["max_seconds"])
        t0 = time.perf_counter()

        def stop() -> bool:
            return ctx.expired() or time.perf_counter() - t0 >= limit

        res = brb(np.asarray(view.H), np.asarray(view.weights), float(view.sigma2), float(view.power),
                  opts["epsilon"], bool(opts["relative"]), opts["max_nodes"], opts["method"], start, stop)
        V, lower = res.V, res.lower
        if opts["lower"] == "wmmse":  # polish: WMMSE never lowers the rate, so the point stays certified
            Vp, up = _wmmse(view, V[None])
            if up > lower and np.sum(np.abs(Vp) ** 2) <= float(view.power) * (1 + 1e-12):
                V, lower = Vp, up
        gap = res.upper - lower
        certified = gap <= (opts["epsilon"] * lower if opts["relative"] else opts["epsilon"])
        info = {"upper": res.upper, "lower": lower, "gap": gap, "nodes": res.nodes, "checks": res.checks,
                "certified": bool(certified), "reason": "certified" if certified else res.reason,
                "undecided": res.undecided, "stalled": not certified}
        return Solution(x=view.embed(x0, V), iterations=res.nodes, info=info)


def _wmmse(view: PrecodingView, V0: np.ndarray) -> tuple[np.ndarray, float]:
    """The best of WMMSE (:func:`~wbench.solvers.wmmse.wmmse.wmmse_stack`, 100 iterations or a change below
    1e-8) from the starts ``V0`` (``n x Nt x K``) on the view, and its weighted sum rate."""
    from ..wmmse.wmmse import view_arrays, wmmse_stack

    args = view_arrays([view] * len(V0))
    V, _, _ = wmmse_stack(args["H"], args["alpha"], args["power"], args["sigma2"], V0, 100, 1e-8)
    rates = [view.wsr(v) for v in V]
    best = int(np.argmax(rates))
    return V[best], float(rates[best])


def _wmmse_start(problem: Problem, view: PrecodingView, ctx: RunContext) -> np.ndarray:
    """The best of WMMSE from RZF and three random starts (a lower bound only)."""
    points = [problem.initial("rzf" if "rzf" in problem.init_methods else None, ctx.rng)]
    points += [problem.random_feasible(ctx.rng) for _ in range(3)]
    return _wmmse(view, np.stack([view.start(x) for x in points]))[0]


@hookimpl
def wbench_register_solvers(register) -> None:
    register(Brb())
