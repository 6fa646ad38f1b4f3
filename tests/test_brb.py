"""``brb``: the certified optimum of linear precoding (branch-reduce-and-bound over the rate region).

Oracles: the single-user closed form (MRT at full power); on two users an independent search over the
Pareto boundary of the rate region (a 1-D grid over user 1's rate, user 2's largest rate by bisection,
refined around the best cell; it brackets the optimum from both sides); every conventional solver's utility
(below the optimum); the DPC weighted sum capacity (above it); the SOCP power minimisation through cvxpy as
the reference for the fixed-point feasibility oracle.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import miso_problem
from wbench.registry import get_registry
from wbench.scenarios.miso import Miso
from wbench.selection import select
from wbench.solver import RunContext
from wbench.solvers.convex.brb import Brb, brb
from wbench.solvers.convex.powermin import SocpPowerMin, fixed_point, sinr_targets
from wbench.solvers.wmmse.dpc_bound import weighted_sum_capacity

BRB = Brb()


def weighted_problem(seed: int, nt: int, k: int, snr: float, weights: str):
    sc = Miso()
    params = sc.resolve_params({"Nt": nt, "K": k, "snr_db": snr, "weights": weights})
    return sc.problem(params, sc.draw(params, np.random.default_rng(seed)))


def run(prob, seed: int = 0, **options):
    return BRB.solve(prob, options, RunContext(np.random.default_rng(seed)))


def channel(seed: int, k: int, nt: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((k, nt)) + 1j * rng.standard_normal((k, nt))) / np.sqrt(2)


@pytest.mark.parametrize("nt,snr", [(1, 0.0), (3, 10.0), (4, 30.0)])
def test_one_user_is_mrt_at_full_power(nt, snr):
    prob = miso_problem(nt, 1, snr, 2, 5)
    sol = run(prob, lower="none")
    closed = prob.closed_form_optimum()
    assert sol.info["certified"] and sol.info["gap"] <= 1e-9 * closed
    assert prob.utility(sol.x) == pytest.approx(closed, rel=1e-9)
    assert sol.info["upper"] >= closed * (1 - 1e-12)


def _pareto_bracket(H: np.ndarray, w: np.ndarray, power: float, cells: int = 8, rounds: int = 4
                    ) -> tuple[float, float]:
    """``(lo, hi)`` with ``lo <= max w.r over the 2-user rate region <= hi``, found without BRB.

    On a grid ``x_0 < ... < x_n`` of user 1's rate, ``r2(x)`` (user 2's largest rate with user 1 at ``x``) is
    bracketed by bisection ``[lo2, hi2]`` (to a tenth of the cell width; certified verdicts only: it stops at
    an undecided point); as ``r2``
    is non-increasing, on the cell ``[x_i, x_{i+1}]`` the objective is at most ``w1 x_{i+1} + w2 hi2(x_i)``,
    and at the grid point it is at least ``w1 x_i + w2 lo2(x_i)``. Cells that may hold the optimum are
    split ``rounds`` times; ``hi`` is the largest bound over all cells left.
    """
    r_max = np.log2(1 + power * np.sum(np.abs(H) ** 2, axis=1))

    def verdict(r: np.ndarray) -> str:
        return fixed_point(H, sinr_targets(r), 1.0, power).verdict

    def r2(x: float, width: float, lo: float = 0.0, hi: float = float(r_max[1])) -> tuple[float, float]:
        # [lo, hi] brackets r2(x) on entry (r2 is non-increasing: a neighbour cell's ends bracket it)
        if verdict(np.array([x, hi])) == "feasible":
            return hi, hi
        while hi - lo > max(width, 1e-9):
            mid = 0.5 * (lo + hi)
            v = verdict(np.array([x, mid]))
            if v == "undecided":
                break
            lo, hi = (mid, hi) if v == "feasible" else (lo, mid)
        return lo, hi

    best_lo = -np.inf
    cells_left: list[tuple[float, ...]] = []  # (left, right, upper bound on the cell, r2 bracket)
    todo = [(0.0, float(r_max[0]), 0.0, float(r_max[1]))]  # a cell and a bracket of r2 over it
    for _ in range(rounds):
        for left, right, lo2, hi2 in todo:
            xs = np.linspace(left, right, cells + 1)
            ends = [r2(x, 0.1 * (right - left) / cells, lo2, hi2) for x in xs]
            best_lo = max([best_lo] + [w[0] * x + w[1] * e[0] for x, e in zip(xs, ends)])
            cells_left += [(xs[i], xs[i + 1], w[0] * xs[i + 1] + w[1] * ends[i][1], ends[i + 1][0], ends[i][1])
                           for i in range(cells)]
        todo = [(a, b, lo2, hi2) for a, b, u, lo2, hi2 in cells_left if u > best_lo + 1e-5]
        cells_left = [c for c in cells_left if c[2] <= best_lo + 1e-5]
    return best_lo, max([c[2] for c in cells_left] + [w[0] * b + w[1] * hi2 for _, b, _, hi2 in todo])


@pytest.mark.parametrize("seed,snr,weights", [(3, 10.0, (1.0, 1.0)), (4, 20.0, (0.6, 1.7))])
def test_two_users_against_a_search_over_the_pareto_boundary(seed, snr, weights):
    H = channel(seed, 2, 3)
    P = 10 ** (snr / 10)
    w = np.array(weights)
    lo, hi = _pareto_bracket(H, w, P)
    assert hi - lo < 5e-3  # the oracle itself is sharp enough to judge a 1e-3 gap
    res = brb(H, w, 1.0, P, epsilon=1e-3, relative=False)
    assert res.certified and res.upper - res.lower <= 1e-3
    assert res.lower <= hi + 1e-9 and res.upper >= lo - 1e-9  # both bracket the same optimum
    assert res.lower >= lo - 1e-3  # brb's point is as good as the best grid point


@pytest.mark.parametrize("seed,shape,snr", [(0, (3, 2), 10.0), (1, (2, 2), 20.0), (2, (3, 3), 0.0)])
def test_above_every_conventional_solver_and_below_the_dpc_bound(seed, shape, snr):
    nt, k = shape
    prob = miso_problem(nt, k, snr, seed, 11)
    sol = run(prob, seed, lower="none", epsilon=5e-3)
    info = sol.info
    assert info["certified"] and info["upper"] - info["lower"] <= 5e-3 * info["lower"] * (1 + 1e-12)
    reg = get_registry()
    for name in ("wmmse", "fp", "r-wmmse", "mrt", "zf", "rzf"):
        solver = reg.solver(name)
        if solver.declines(prob, {}) is not None:
            continue
        other = solver.solve(prob, {}, RunContext(np.random.default_rng(seed)))
        u = prob.utility(other.x)
        assert info["upper"] >= u - 1e-9, name
        assert info["lower"] >= u - 5e-3 * info["lower"], name
    dpc = weighted_sum_capacity(prob.H, prob.power, prob.sigma2, prob.weights)[0]
    assert info["lower"] <= dpc * (1 + 1e-9)


def test_returned_precoder_is_feasible_and_achieves_the_lower_bound_with_weights():
    prob = weighted_problem(5, 3, 3, 10.0, "0.5;2;1")
    sol = run(prob, 5, epsilon=2e-3)
    assert prob.feasibility(sol.x).feasible
    assert prob.utility(sol.x) == pytest.approx(sol.info["lower"], rel=1e-12)
    info = sol.info
    assert info["certified"] and info["gap"] == pytest.approx(info["upper"] - info["lower"])
    assert info["gap"] <= 2e-3 * info["lower"] * (1 + 1e-12)
    assert info["nodes"] == sol.iterations and not info["stalled"]


def test_a_weighted_optimum_favours_the_heavy_user_and_beats_the_weighted_conventional_answer():
    prob = weighted_problem(6, 2, 2, 10.0, "0.2;3")
    sol = run(prob, 6, lower="none", epsilon=1e-4, relative=False)
    wm = get_registry().solver("wmmse").solve(prob, {}, RunContext(np.random.default_rng(6)))
    assert sol.info["upper"] >= prob.utility(wm.x) - 1e-12
    g = np.abs(prob.H.conj() @ sol.x["V"]) ** 2
    rates = np.log2(1 + np.diag(g) / (g.sum(axis=1) - np.diag(g) + 1))
    assert rates[1] > rates[0]


def test_absolute_epsilon_and_a_zero_weight_user():
    H = channel(8, 3, 3)
    full = brb(H, np.array([1.0, 0.0, 2.0]), 1.0, 10.0, epsilon=5e-3, relative=False)
    sub = brb(H[[0, 2]], np.array([1.0, 2.0]), 1.0, 10.0, epsilon=5e-3, relative=False)
    assert full.certified and full.upper - full.lower <= 5e-3
    assert np.all(full.V[:, 1] == 0)
    assert abs(full.lower - sub.lower) <= 5e-3 and abs(full.upper - sub.upper) <= 5e-3


def test_node_budget_returns_the_best_point_and_an_honest_gap():
    prob = miso_problem(2, 2, 20.0, 1, 11)
    short = run(prob, 1, lower="none", max_nodes=3)
    full = run(prob, 1, lower="none", epsilon=1e-3)
    info = short.info
    assert not info["certified"] and info["stalled"] and "node budget" in info["reason"]
    assert info["nodes"] == 3 and info["gap"] > 1e-3 * info["lower"]
    assert prob.utility(short.x) == pytest.approx(info["lower"], rel=1e-12)
    assert info["upper"] >= full.info["lower"] - 1e-9  # still an upper bound on the optimum
    assert info["lower"] <= full.info["upper"] + 1e-9


def test_time_budget_stops_the_search():
    prob = miso_problem(3, 3, 30.0, 2, 11)
    sol = run(prob, 2, lower="none", max_seconds=0.0)
    assert not sol.info["certified"] and sol.info["reason"] == "time budget spent"
    assert sol.info["upper"] >= sol.info["lower"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fixed_point_agrees_with_the_socp(seed):
    H = channel(seed, 3, 3)
    P = 10.0
    socp, unlimited = SocpPowerMin(H, 1.0, P), SocpPowerMin(H, 1.0, 1e12)
    rng = np.random.default_rng(seed)
    seen = set()
    for _ in range(12):
        gamma = sinr_targets(rng.uniform(0, 3, 3))
        a, b = fixed_point(H, gamma, 1.0, P), socp.solve(gamma)
        if "undecided" in (a.verdict, b.verdict):
            continue
        pmin = unlimited.solve(gamma).power  # the minimum power itself
        if abs(pmin - P) > 1e-4 * P:  # away from the budget both must decide alike
            assert a.verdict == b.verdict, (gamma, pmin)
        seen.add(a.verdict)
        if a.verdict == "feasible":
            assert a.power == pytest.approx(pmin, rel=1e-5)
        else:
            assert a.power <= pmin * (1 + 1e-6)  # the iterate that proved it is a lower bound
    assert seen == {"feasible", "infeasible"}


def test_socp_oracle_in_brb_gives_the_same_optimum():
    H = channel(9, 2, 2)
    a = brb(H, np.ones(2), 1.0, 10.0, epsilon=1e-3, method="fixed-point")
    b = brb(H, np.ones(2), 1.0, 10.0, epsilon=1e-3, method="socp")
    assert a.certified and b.certified
    assert a.lower <= b.upper + 1e-9 and b.lower <= a.upper + 1e-9


def test_declines_beyond_four_users_and_problems_without_a_whole_view():
    assert "K <= 4" in BRB.declines(miso_problem(5, 5, 10.0, 0, 1), {})
    assert BRB.declines(miso_problem(4, 4, 10.0, 0, 1), {}) is None
    from tests.helpers import bdris_problem

    assert BRB.declines(bdris_problem(0), {}) is not None


def test_selected_by_the_optimum_tag():
    specs, _ = select(get_registry(), "optimum", "miso")
    assert [s.name for s in specs] == ["brb"]
    assert "optimum" in BRB.tags and "bound" not in BRB.tags
