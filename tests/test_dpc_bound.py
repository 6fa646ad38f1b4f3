"""The dirty-paper sum-capacity bound: closed forms, brute force, KKT conditions, and bounding property."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar

from wbench.scenarios.miso import Miso
from wbench.solver import RunContext
from wbench.solvers.baselines.linear import InitialPointBaseline
from wbench.solvers.wmmse.dpc_bound import DpcBound, wbench_register_solvers
from wbench.solvers.wmmse.fp import Fp
from wbench.solvers.wmmse.wmmse import Wmmse

BOUND = DpcBound()


def make_problem(seed: int, **given):
    sc = Miso()
    params = sc.resolve_params(given)
    return sc.problem(params, sc.draw(params, np.random.default_rng(seed)))


def bound(prob, **options):
    return BOUND.solve(prob, options, RunContext(np.random.default_rng(0)))


def log2det(H: np.ndarray, p: np.ndarray, sigma2: float) -> float:
    """log2 det(I + sum_k p_k h_k h_k^H / sigma2), rows of H are h_k."""
    S = np.eye(H.shape[1]) + np.einsum("k,ka,kb->ab", p, H, H.conj()) / sigma2
    return float(np.linalg.slogdet(S)[1] / np.log(2))


@pytest.mark.parametrize("nt", [1, 3])
@pytest.mark.parametrize("snr_db", [-10.0, 20.0])
def test_single_user_closed_form(nt, snr_db):
    prob = make_problem(1, Nt=nt, K=1, snr_db=snr_db)
    expected = np.log2(1 + prob.power * np.sum(np.abs(prob.H) ** 2) / prob.sigma2)
    assert bound(prob).value == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("k", [2, 5])
def test_single_antenna_gives_all_power_to_the_strongest_user(k):
    prob = make_problem(2, Nt=1, K=k, snr_db=10.0)
    expected = np.log2(1 + prob.power * np.max(np.abs(prob.H) ** 2) / prob.sigma2)
    assert bound(prob).value == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("seed", range(6))
def test_two_users_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    prob = make_problem(seed, Nt=int(rng.integers(1, 4)), K=2, snr_db=float(rng.uniform(-10, 40)))
    H, P = prob.H, prob.power

    def neg_rate(p1: float) -> float:
        return -log2det(H, np.array([p1, P - p1]), prob.sigma2)

    grid = np.linspace(0.0, P, 4001)
    values = np.array([-neg_rate(a) for a in grid])
    i = int(values.argmax())
    fine = minimize_scalar(
        neg_rate, bounds=(grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]), method="bounded",
        options={"xatol": 1e-12 * P},
    )
    brute = max(values.max(), -fine.fun)
    assert bound(prob).value == pytest.approx(brute, abs=1e-7)


@pytest.mark.parametrize(
    "nt,k,snr_db", [(4, 4, 0.0), (4, 4, 30.0), (2, 6, -10.0), (2, 6, 20.0), (3, 2, 40.0), (4, 10, 10.0)]
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kkt_conditions_at_the_returned_allocation(nt, k, snr_db, seed):
    prob = make_problem(seed, Nt=nt, K=k, snr_db=snr_db)
    with warnings.catch_warnings(), np.errstate(divide="raise", over="raise", invalid="raise"):
        warnings.simplefilter("error")
        sol = bound(prob)
    p = np.asarray(sol.info["p"])
    H, s2 = prob.H, prob.sigma2
    S = np.eye(nt) + np.einsum("k,ka,kb->ab", p, H, H.conj()) / s2
    g = np.real(np.einsum("ka,ab,kb->k", H.conj(), np.linalg.inv(S), H)) / (s2 * np.log(2))
    level = g.max()
    assert np.all(p >= 0) and p.sum() == pytest.approx(prob.power, rel=1e-12)
    on = p > 0
    assert on.any()
    assert np.all(np.abs(g[on] - level) <= 1e-9 * level)
    assert np.all(g[~on] <= level * (1 + 1e-9))
    # the value is a certified upper bound within 1e-9 of the rate at p (up to rounding, 1e-12)
    lower = log2det(H, p, s2)
    assert lower * (1 - 1e-12) <= sol.value <= lower * (1 + 1e-9) + 1e-12


def test_invariant_under_user_permutation_and_antenna_rotation():
    prob = make_problem(3, Nt=3, K=5, snr_db=15.0)
    rng = np.random.default_rng(9)
    Q, _ = np.linalg.qr(rng.standard_normal((3, 3)) + 1j * rng.standard_normal((3, 3)))
    other = make_problem(3, Nt=3, K=5, snr_db=15.0)
    other.H = (prob.H @ Q)[rng.permutation(5)]
    assert bound(other).value == pytest.approx(bound(prob).value, rel=1e-10)


def test_equal_weights_scale_the_sum_capacity():
    plain = make_problem(4, Nt=3, K=3, snr_db=10.0)
    equal = make_problem(4, Nt=3, K=3, snr_db=10.0, weights="2.5;2.5;2.5")
    assert bound(equal).value == pytest.approx(2.5 * bound(plain).value, rel=1e-14)


def test_unequal_weights_are_tighter_than_the_largest_weight_times_capacity():
    plain = make_problem(4, Nt=3, K=3, snr_db=10.0)
    weighted = make_problem(4, Nt=3, K=3, snr_db=10.0, weights="1;3;0.5")
    b = bound(weighted).value
    assert b < 3.0 * bound(plain).value * (1 - 1e-3)
    wmmse = Wmmse().solve(weighted, {}, RunContext(np.random.default_rng(0)))
    assert weighted.utility(wmmse.x) <= b


def mac_rates(H: np.ndarray, p: np.ndarray, sigma2: float, order: list[int]) -> np.ndarray:
    """Rates of the dual MAC with successive decoding in ``order`` (first decoded sees everyone after it)."""
    rates = np.zeros(len(p))
    for i, k in enumerate(order):
        rest = np.zeros(len(p))
        rest[order[i + 1:]] = p[order[i + 1:]]
        with_k = rest.copy()
        with_k[k] = p[k]
        rates[k] = log2det(H, with_k, sigma2) - log2det(H, rest, sigma2)
    return rates


@pytest.mark.parametrize("seed", range(5))
def test_two_weighted_users_against_brute_force_over_both_decoding_orders(seed):
    # An oracle independent of the ordering theorem: the best of both decoding orders on a fine grid.
    rng = np.random.default_rng(100 + seed)
    alpha = rng.uniform(0.2, 3.0, 2)
    prob = make_problem(seed, Nt=int(rng.integers(1, 4)), K=2, snr_db=float(rng.uniform(-5, 30)),
                        weights=f"{alpha[0]};{alpha[1]}")
    H, P, s2 = prob.H, prob.power, prob.sigma2

    def neg(p1: float, order: list[int]) -> float:
        return -float(alpha @ mac_rates(H, np.array([p1, P - p1]), s2, order))

    best = -np.inf
    for order in ([0, 1], [1, 0]):
        grid = np.linspace(0.0, P, 2001)
        vals = np.array([-neg(a, order) for a in grid])
        i = int(vals.argmax())
        fine = minimize_scalar(neg, args=(order,), bounds=(grid[max(i - 1, 0)], grid[min(i + 1, 2000)]),
                               method="bounded", options={"xatol": 1e-12 * P})
        best = max(best, vals.max(), -fine.fun)
    assert bound(prob).value == pytest.approx(best, abs=1e-7)


@pytest.mark.parametrize("nt,k,snr_db", [(4, 4, 0.0), (4, 4, 30.0), (2, 5, 10.0), (3, 2, 40.0)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_kkt_conditions(nt, k, snr_db, seed):
    rng = np.random.default_rng(seed + 50)
    alpha = rng.uniform(0.1, 3.0, k)
    prob = make_problem(seed, Nt=nt, K=k, snr_db=snr_db, weights=";".join(map(str, alpha)))
    with warnings.catch_warnings(), np.errstate(divide="raise", over="raise", invalid="raise"):
        warnings.simplefilter("error")
        sol = bound(prob)
    p = np.asarray(sol.info["p"])
    H, s2 = prob.H, prob.sigma2
    order = list(np.argsort(alpha))  # increasing weight: the largest weight is decoded last
    value = float(alpha @ mac_rates(H, p, s2, order))
    # gradient of the weighted MAC sum rate by central differences in p (independent of the code's formula)
    h = 1e-6 * prob.power
    g = np.array([(alpha @ mac_rates(H, p + h * e, s2, order) - alpha @ mac_rates(H, p - h * e, s2, order))
                  / (2 * h) for e in np.eye(k)])
    level = g.max()
    assert np.all(p >= 0) and p.sum() == pytest.approx(prob.power, rel=1e-12)
    on = p > 1e-9 * prob.power
    assert np.all(np.abs(g[on] - level) <= 1e-5 * level)
    assert np.all(g[~on] <= level * (1 + 1e-5))
    assert value * (1 - 1e-12) <= sol.value <= value * (1 + 1e-9) + 1e-12


def test_zero_weight_users_get_no_power_and_single_positive_weight_is_single_user_capacity():
    prob = make_problem(7, Nt=2, K=3, snr_db=10.0, weights="0.000001;2;0.000001")
    alone = 2 * np.log2(1 + prob.power * np.sum(np.abs(prob.H[1]) ** 2) / prob.sigma2)
    assert bound(prob).value >= alone
    assert bound(prob).value <= alone + 1e-4


def test_deterministic_and_registered():
    prob = make_problem(5, Nt=4, K=6, snr_db=25.0)
    a, b = bound(prob), bound(prob)
    assert a.value == b.value and a.x is None
    got = []
    wbench_register_solvers(got.append)
    assert [type(s) for s in got] == [DpcBound] and "bound" in got[0].tags


def test_fewer_iterations_still_give_an_upper_bound():
    prob = make_problem(6, Nt=4, K=6, snr_db=20.0)
    full = bound(prob).value
    for n in (1, 2, 5):
        assert bound(prob, max_iter=n).value >= full - 1e-12


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    nt=st.integers(1, 4),
    k=st.integers(1, 5),
    snr_db=st.floats(-10.0, 40.0),
)
def test_bounds_every_precoder(seed, nt, k, snr_db):
    prob = make_problem(seed, Nt=nt, K=k, snr_db=snr_db)
    c = bound(prob).value
    slack = 1e-9 * (1.0 + c)
    ctx = RunContext(np.random.default_rng(seed))
    rates = {"wmmse": prob.utility(Wmmse().solve(prob, {}, ctx).x),
             "fp": prob.utility(Fp().solve(prob, {"starts": 2}, ctx).x)}
    for name in prob.init_methods:
        if name != "random":
            rates[name] = prob.utility(InitialPointBaseline(name, "").solve(prob, {}, ctx).x)
    for name, rate in rates.items():
        assert rate <= c + slack, name


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    nt=st.integers(1, 4),
    k=st.integers(2, 4),
    snr_db=st.floats(-10.0, 30.0),
    weights=st.lists(st.floats(0.05, 5.0), min_size=4, max_size=4),
)
def test_weighted_bound_bounds_every_precoder(seed, nt, k, snr_db, weights):
    text = ";".join(repr(w) for w in weights[:k])
    prob = make_problem(seed, Nt=nt, K=k, snr_db=snr_db, weights=text)
    c = bound(prob).value
    plain = bound(make_problem(seed, Nt=nt, K=k, snr_db=snr_db)).value
    assert c <= max(weights[:k]) * plain * (1 + 1e-9) + 1e-12  # never looser than the old bound
    slack = 1e-9 * (1.0 + c)
    ctx = RunContext(np.random.default_rng(seed))
    rates = {"wmmse": prob.utility(Wmmse().solve(prob, {"starts": 3}, ctx).x),
             "fp": prob.utility(Fp().solve(prob, {"starts": 3}, ctx).x)}
    for name in prob.init_methods:
        if name != "random":
            rates[name] = prob.utility(InitialPointBaseline(name, "").solve(prob, {}, ctx).x)
    for name, rate in rates.items():
        assert rate <= c + slack, name
