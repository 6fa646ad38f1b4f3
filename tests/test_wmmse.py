"""WMMSE on ``miso``: closed forms, the monotonicity theorem, degenerate channels, batching, budgets."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import brentq

from wbench.channels.channelset import realisation_rng
from wbench.params import ParamError
from wbench.scenarios.miso import Miso
from wbench.solver import RunContext
from wbench.solvers.wmmse.wmmse import Wmmse, _multiplier, wbench_register_solvers, wmmse_stack

SOLVER = Wmmse()


def make_problem(seed: int, **given):
    sc = Miso()
    params = sc.resolve_params(given)
    return sc.problem(params, sc.draw(params, np.random.default_rng(seed)))


def solve(prob, seed: int = 1, **options):
    ctx = RunContext(np.random.default_rng(seed))
    return SOLVER.solve(prob, options, ctx), ctx


@pytest.mark.parametrize("nt", [1, 4])
@pytest.mark.parametrize("snr_db", [0.0, 20.0])
@pytest.mark.parametrize(
    "options", [{"init": "mrt", "starts": 1}, {"max_iter": 3000, "tol": 1e-12, "starts": 2}]
)
def test_single_user_reaches_capacity(nt, snr_db, options):
    # From a random start the exact algorithm creeps up to full power (mu = 0 while the MMSE precoder
    # fits in the ball, |h^H v| growing by about 1/|h^H v| per sweep), hence the iteration budget.
    prob = make_problem(3, Nt=nt, K=1, snr_db=snr_db)
    sol, _ = solve(prob, **options)
    closed_form = np.log2(1 + prob.power * np.sum(np.abs(prob.H) ** 2) / prob.sigma2)
    assert prob.utility(sol.x) == pytest.approx(closed_form, rel=1e-6)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 30.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape", [(4, 4), (2, 5)])
def test_wsr_never_decreases_along_the_trace(snr_db, seed, shape):
    nt, k = shape
    prob = make_problem(seed, Nt=nt, K=k, snr_db=snr_db)
    sol, ctx = solve(prob, seed, starts=1, tol=0.0, max_iter=80)
    # The harness's own evaluation of the recorded iterates, not the solver's numbers.
    its = [it for _, it, _ in ctx.checkpoints]
    rates = np.array([prob.utility(x) for _, _, x in ctx.checkpoints])
    assert its == sorted(its) and its[0] == 0 and len(its) >= 10
    assert np.all(np.diff(rates) >= -1e-9)
    assert np.all(np.diff(sol.info["wsr_trace"]) >= -1e-9)  # every sweep, not only the checkpoints
    assert rates[-1] > rates[0]  # and it does move


@pytest.mark.parametrize(
    "nt,k,snr_db", [(4, 4, -20.0), (4, 4, 0.0), (2, 6, 0.0), (2, 6, 20.0), (1, 3, 10.0), (6, 2, 30.0)]
)
def test_survives_switched_off_users(nt, k, snr_db):
    prob = make_problem(7, Nt=nt, K=k, snr_db=snr_db)
    with warnings.catch_warnings(), np.errstate(divide="raise", over="raise", invalid="raise"):
        warnings.simplefilter("error")  # underflow of |u_k|^2 of a user that is off is harmless
        sol, _ = solve(prob, starts=3, tol=0.0, max_iter=300)
    V = sol.x["V"]
    assert np.all(np.isfinite(V))
    assert prob.feasibility(sol.x).feasible
    assert prob.utility(sol.x) == pytest.approx(max(sol.info["start_wsr"]), abs=1e-9)
    if snr_db <= 0 or k > nt:
        # the regime is the one meant: at least one user gets (numerically) no power
        col_power = np.sum(np.abs(V) ** 2, axis=0)
        assert col_power.min() < 1e-6 * prob.power


@pytest.mark.parametrize("snr_db", [0.0, 20.0])
@pytest.mark.parametrize("seed", [2, 5])
def test_iterates_stay_in_the_span_of_the_channels(snr_db, seed):
    # V = (A + mu I)^+ B lies in range(A), a subspace of span{h_k}: with K < Nt no power may be parked
    # in directions no user hears (seeds where the MMSE precoder at mu = 0 fits in the ball early on).
    prob = make_problem(seed, Nt=6, K=2, snr_db=snr_db)
    _, ctx = solve(prob, seed, starts=1, tol=0.0, max_iter=40)
    Hc = prob.H.conj()
    null = np.eye(6) - np.linalg.pinv(Hc) @ Hc
    for _, it, x in ctx.checkpoints:
        if it > 0:
            assert np.linalg.norm(null @ x["V"]) ** 2 <= 1e-20 * prob.power


def test_weights_steer_the_solution():
    sc = Miso()
    weighted = sc.resolve_params({"Nt": 4, "K": 4, "snr_db": 20.0, "weights": "4;1;1;1"})
    plain = sc.resolve_params({"Nt": 4, "K": 4, "snr_db": 20.0})
    for seed in range(10):
        ch = sc.draw(plain, np.random.default_rng(seed))
        pw, pp = sc.problem(weighted, ch), sc.problem(plain, ch)
        with_w = pw.utility(SOLVER.solve(pw, {}, RunContext(np.random.default_rng(seed))).x)
        without = pw.utility(SOLVER.solve(pp, {}, RunContext(np.random.default_rng(seed))).x)
        assert with_w > without + 0.5


def test_user_with_exactly_zero_gain_at_start():
    prob = make_problem(2, Nt=4, K=4, snr_db=10.0)
    # Start with v_1 orthogonal to h_1: u_1 = 0, so user 1 contributes nothing to A and A is singular.
    V = prob.initial("zf", None)["V"].copy()
    V[:, 0] = V[:, 1]
    V *= np.sqrt(prob.power / np.sum(np.abs(V) ** 2))
    assert abs(prob.H[0].conj() @ V[:, 0]) < 1e-12
    with np.errstate(divide="raise", over="raise", invalid="raise"):
        Vf, wsr, iters = wmmse_stack(
            prob.H[None], prob.weights[None], np.array([prob.power]), np.array([1.0]), V[None], 50, 0.0
        )
    assert np.all(np.isfinite(Vf)) and iters[0] == 50
    assert prob.feasibility({"V": Vf[0]}).feasible
    assert wsr[0] == pytest.approx(prob.utility({"V": Vf[0]}), abs=1e-9)
    assert wsr[0] >= prob.utility({"V": V}) - 1e-9


def _secular_root(lam: np.ndarray, d: np.ndarray, power: float) -> float:
    """Independent solution of sum d / (lam + mu)^2 = P with a bracketing root finder."""
    def excess(mu: float) -> float:
        on = d > 0
        return float(np.sum(d[on] / (lam[on] + mu) ** 2)) - power

    singular = (lam == 0) & (d > 0)
    # lo: excess(lo) > 0 (a singular term alone is 1e6 P there, or mu = 0 is infeasible)
    lo = 1e-3 * float(np.sqrt(d[singular] / power).min()) if singular.any() else 0.0
    hi = 1.0
    while excess(hi) > 0:
        hi *= 2.0
    return brentq(excess, lo, hi, xtol=1e-300, rtol=1e-15, maxiter=500)


def test_multiplier_against_an_independent_root_finder():
    rng = np.random.default_rng(0)
    for case in range(300):
        nt = int(rng.integers(1, 6))
        lam = np.sort(rng.exponential(size=nt) * 10.0 ** rng.uniform(-3, 3))
        if case % 3 == 0:
            lam[: rng.integers(1, nt + 1)] = 0.0  # singular A
        d = rng.exponential(size=nt) * 10.0 ** rng.uniform(-4, 4)
        if case % 5 == 0:
            d[lam == 0] = 0.0  # B in the range of A: mu = 0 allowed when it fits
        power = float(10.0 ** rng.uniform(-2, 4))
        mu = _multiplier(lam[None], d[None], np.array([power]))[0]
        pos = lam > 0
        fits = not np.any((lam == 0) & (d > 0)) and np.sum(d[pos] / lam[pos] ** 2) <= power
        if fits:
            assert mu == 0.0
        else:
            assert mu > 0
            assert mu == pytest.approx(_secular_root(lam, d, power), rel=1e-9)
            on = d > 0
            assert np.sum(d[on] / (lam[on] + mu) ** 2) == pytest.approx(power, rel=1e-10)


@pytest.mark.parametrize(
    "options", [{}, {"init": "rzf", "starts": 3, "max_iter": 40}, {"init": "mrt", "starts": 1}]
)
def test_batched_equals_unbatched(options):
    probs = [make_problem(s, Nt=3, K=4, snr_db=15.0) for s in range(6)]
    single = [
        SOLVER.solve(p, options, RunContext(np.random.default_rng(100 + i))) for i, p in enumerate(probs)
    ]
    ctxs = [RunContext(np.random.default_rng(100 + i)) for i in range(len(probs))]
    batch = SOLVER.solve_batch(probs, options, ctxs)
    for p, a, b in zip(probs, single, batch):
        assert p.utility(b.x) == pytest.approx(p.utility(a.x), abs=1e-8)
        assert b.iterations == a.iterations
        np.testing.assert_allclose(b.info["start_wsr"], a.info["start_wsr"], atol=1e-8)
    assert all(c.checkpoints and c.checkpoints[-1][1] > 0 for c in ctxs)


def test_batch_with_mixed_shapes_is_grouped():
    probs = [make_problem(0, Nt=2, K=3), make_problem(1, Nt=4, K=4), make_problem(2, Nt=2, K=3)]
    opts = {"starts": 2, "max_iter": 20}
    batch = SOLVER.solve_batch(probs, opts, [RunContext(np.random.default_rng(i)) for i in range(3)])
    for i, (p, b) in enumerate(zip(probs, batch)):
        a = SOLVER.solve(p, opts, RunContext(np.random.default_rng(i)))
        assert b.x["V"].shape == p.variables["V"].shape
        assert p.utility(b.x) == pytest.approx(p.utility(a.x), abs=1e-8)


def test_seed001_budgets_differ_at_30db():
    """SCENARIOS.md section 1: about 29.7 (converged, 10 starts) vs 27.4 (10 iterations from MRT)."""
    sc = Miso()
    params = sc.resolve_params({"Nt": 4, "K": 4, "snr_db": 30.0})
    probs = [sc.problem(params, sc.draw(params, realisation_rng(0, "miso", i))) for i in range(50)]

    def mean_wsr(options):
        ctxs = [RunContext(np.random.default_rng(i)) for i in range(len(probs))]
        sols = SOLVER.solve_batch(probs, options, ctxs)
        assert all(p.feasibility(s.x).feasible for p, s in zip(probs, sols))
        return np.mean([p.utility(s.x) for p, s in zip(probs, sols)])

    converged = mean_wsr({})
    mlbf_code = mean_wsr({"max_iter": 10, "init": "mrt", "starts": 1})
    assert 28.5 < converged < 31.0
    assert converged - mlbf_code > 1.0


def test_expired_budget_returns_the_best_start():
    prob = make_problem(4, Nt=4, K=4, snr_db=20.0)
    ctx = RunContext(np.random.default_rng(0), budget_seconds=0.0)
    sol = SOLVER.solve(prob, {"starts": 3}, ctx)
    assert sol.iterations == 0
    assert prob.feasibility(sol.x).feasible
    assert prob.utility(sol.x) == pytest.approx(max(sol.info["start_wsr"]))


def test_first_start_uses_init_and_the_rest_are_random():
    prob = make_problem(5, Nt=4, K=4, snr_db=10.0)
    sol, ctx = solve(prob, starts=3, init="mrt", max_iter=1)
    # one sweep from the recorded starts: the best start at sweep 0 is one of MRT / two random draws
    rng = np.random.default_rng(1)
    starts = [prob.initial(m, rng)["V"] for m in ("mrt", "random", "random")]
    assert ctx.checkpoints[0][1] == 0
    best0 = max(prob.utility({"V": v}) for v in starts)
    assert prob.utility(ctx.checkpoints[0][2]) == pytest.approx(best0, abs=1e-12)
    assert sol.iterations == 3


def test_options_and_registration():
    opts = SOLVER.resolve_options({"max_iter": "10", "init": "mrt", "starts": "1"})
    assert opts == {"max_iter": 10, "tol": 1e-4, "starts": 1, "init": "mrt"}
    assert SOLVER.budget_label(opts) == "max_iter=10,tol=0.0001,starts=1,init=mrt"
    for bad in ({"tol": -1}, {"starts": 0}, {"max_iter": 0}, {"iters": 3}):
        with pytest.raises(ParamError):
            SOLVER.resolve_options(bad)
    got = []
    wbench_register_solvers(got.append)
    assert [type(s) for s in got] == [Wmmse] and got[0].batched and got[0].supports("miso")
    with pytest.raises(ValueError, match="zf"):
        SOLVER.solve(make_problem(0, Nt=2, K=3), {"init": "zf"}, RunContext(np.random.default_rng(0)))
    # initial points are the scenario's: an unknown name fails the run, naming the valid ones
    with pytest.raises(ValueError, match="unknown initial point 'svd'; valid: mrt, rzf, zf, random"):
        SOLVER.solve(make_problem(0), {"init": "svd"}, RunContext(np.random.default_rng(0)))
