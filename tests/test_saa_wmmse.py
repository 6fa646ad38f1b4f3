"""SAA-WMMSE (``saa-wmmse``): the rate-WMSE bound, monotonicity, the perfect-CSIT WMMSE oracle, closed forms,
QoS, the DPP problem, declines and the solver plugin. Data are built directly from random arrays
(:class:`wbench.rsma.SaaData`), so nothing here depends on the ``hrsma`` scenario."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import linprog

from wbench.rates import weighted_sum_rate_stack
from wbench.rsma import RsmaLayout, SaaData
from wbench.solver import RunContext
from wbench.solvers.convex.saa_wmmse import (
    SaaQcqp,
    SaaWmmse,
    qos_deficit,
    saa_rates,
    saa_wmmse,
    surrogate,
)
from wbench.solvers.wmmse.wmmse import wmmse_stack

SCHEMES = ("sdma", "rsma", "hrsma")
LN2 = math.log(2.0)


def cn(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)


def make_data(scheme: str, Nt: int = 4, K: int = 4, G: int = 2, M: int = 30, snr_db: float = 20.0,
              se2: float = 0.3, R_th: float = 0.0, seed: int = 0) -> SaaData:
    """Draws ``sqrt(1 - se2) h^_k + sqrt(se2) z``: one estimate, ``M`` errors; users split evenly into groups."""
    rng = np.random.default_rng(seed)
    H = np.sqrt(1 - se2) * cn(rng, K, Nt)[None] + np.sqrt(se2) * cn(rng, M, K, Nt)
    layout = RsmaLayout(scheme, np.arange(K) * G // K)
    return SaaData(H, layout, 10 ** (snr_db / 10), 1.0, R_th)


def random_start(data: SaaData, seed: int = 1) -> np.ndarray:
    P = cn(np.random.default_rng(seed), data.Nt, data.layout.n_streams)
    return P * np.sqrt(data.power) / np.linalg.norm(P)


def sinrs_by_formula(data: SaaData, P: np.ndarray) -> dict[str, np.ndarray]:
    """The SINRs (M, K) of SCENARIOS.md section 3 written out term by term, user by user."""
    lay = data.layout
    out = {s: np.zeros((data.M, lay.K)) for s in ("c", "cg", "p")}
    for m in range(data.M):
        for k in range(lay.K):
            a = np.abs(data.H[m, k].conj() @ P) ** 2
            g = lay.groups[k]
            own_cg = a[lay.group_common(g)] if lay.has_group_commons else 0.0
            cgs = sum(a[lay.group_common(n)] for n in range(lay.G)) if lay.has_group_commons else 0.0
            privs = sum(a[lay.private(j)] for j in range(lay.K))
            if lay.has_common:
                out["c"][m, k] = a[lay.common] / (cgs + privs + data.sigma2)
            out["cg"][m, k] = own_cg / (cgs - own_cg + privs + data.sigma2)
            out["p"][m, k] = a[lay.private(k)] / (cgs - own_cg + privs - a[lay.private(k)] + data.sigma2)
    return out


@pytest.mark.parametrize("scheme", SCHEMES)
def test_saa_rates_match_the_written_out_sinrs(scheme):
    data = make_data(scheme, M=12)
    P = random_start(data)
    gam = sinrs_by_formula(data, P)
    r = saa_rates(data, P)
    np.testing.assert_allclose(r.private, np.log2(1 + gam["p"]).mean(axis=0), rtol=1e-12)
    common = np.log2(1 + gam["c"]).mean(axis=0).min() if scheme != "sdma" else 0.0
    group = [np.log2(1 + gam["cg"][:, data.layout.groups == g]).mean(axis=0).min() for g in range(2)]
    expected = r.private.sum() + common + (sum(group) if scheme == "hrsma" else 0.0)
    assert r.asr == pytest.approx(expected, rel=1e-12)


def test_rsma_without_common_power_is_sdma():
    rs, sd = make_data("rsma"), make_data("sdma")
    P = random_start(sd)
    P_rs = np.concatenate([np.zeros((rs.Nt, 1)), P], axis=1)
    np.testing.assert_allclose(saa_rates(rs, P_rs).private, saa_rates(sd, P).private, rtol=1e-12)
    assert saa_rates(rs, P_rs).asr == pytest.approx(saa_rates(sd, P).asr, rel=1e-12)


def test_hrsma_without_group_commons_is_rsma():
    hr, rs = make_data("hrsma"), make_data("rsma")
    P = random_start(rs)
    P_hr = np.concatenate([P[:, :1], np.zeros((hr.Nt, 2)), P[:, 1:]], axis=1)
    a, b = saa_rates(hr, P_hr), saa_rates(rs, P)
    np.testing.assert_allclose(a.private, b.private, rtol=1e-12)
    assert a.common == pytest.approx(b.common, rel=1e-12) and a.asr == pytest.approx(b.asr, rel=1e-12)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_surrogate_is_a_tight_lower_bound_of_the_saa_rates(scheme):
    """``1 - xi_ks(P) <= mean_m ln(1 + gamma_ks,m(P))`` for every ``P``, with equality at the point where the
    surrogate is built (``-ln e = max_u (ln u - u e + 1)`` at ``u = 1/e``, and the MMSE equaliser)."""
    data = make_data(scheme)
    P = random_start(data)
    sur = surrogate(data, P)
    exact = {s: np.log1p(g).mean(axis=0) for s, g in sinrs_by_formula(data, P).items()}
    for s, r in sur.rates(P).items():
        np.testing.assert_allclose(r, exact[s], rtol=1e-10, atol=1e-12)
    rng = np.random.default_rng(7)
    for _ in range(20):
        Q = P + cn(rng, *P.shape) * rng.uniform(0.1, 10)
        exact = {s: np.log1p(g).mean(axis=0) for s, g in sinrs_by_formula(data, Q).items()}
        for s, r in sur.rates(Q).items():
            assert np.all(r <= exact[s] + 1e-10)


@pytest.mark.parametrize("R_th", [0.0, 1.0])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_monotone_surrogate_and_merit(scheme, R_th):
    """The surrogate optimum ``v_t`` is non-decreasing and sandwiched: ``merit(P_{t-1}) <= v_t <= merit(P_t)``
    (merit = ASR - rho deficit; the ASR without QoS)."""
    data = make_data(scheme, R_th=R_th)
    P, tr = saa_wmmse(data, random_start(data), max_iter=15, tol=0.0)
    v, merit = np.array(tr.surrogate), np.array(tr.merit)
    assert tr.status == "max_iter" and len(v) == 15
    eps = 1e-6 * (np.abs(merit).max() + 1)
    assert np.all(np.diff(v) >= -eps)
    assert np.all(np.diff(merit) >= -eps)
    assert np.all(merit[:-1] <= v + eps) and np.all(v <= merit[1:] + eps)
    assert merit[-1] > merit[0] + 0.5  # it does improve from a random start
    assert np.linalg.norm(P) ** 2 <= data.power * (1 + 1e-6)


def test_identical_draws_follow_perfect_csit_wmmse():
    """With all draws equal the SDMA QCQP is WMMSE's V step (Psi = sum w |u|^2 h h^H, f = w u h; Shi et al.
    2011), whose minimiser is unique for K = Nt generic channels: the iterates coincide, up to the conic
    solver's accuracy (Clarabel's default gap 1e-8 leaves about 1e-5 relative in the iterate, and the rate moves
    to first order with it; at tolerance 1e-11 the gap closes to about 1e-6)."""
    rng = np.random.default_rng(3)
    h = cn(rng, 4, 4)
    data = SaaData(np.repeat(h[None], 5, axis=0), RsmaLayout("sdma", np.zeros(4, int)), 100.0)
    P0 = random_start(data)
    P, tr = saa_wmmse(data, P0, max_iter=8, tol=0.0)
    V, wsr, _ = wmmse_stack(h[None], np.ones((1, 4)), np.array([data.power]), np.ones(1), P0[None], 8, 0.0)
    np.testing.assert_allclose(P, V[0], atol=1e-4 * np.linalg.norm(V[0]))
    assert tr.asr[-1] == pytest.approx(float(wsr[0]), rel=1e-5)
    # the SAA rate of identical draws is the perfect-CSIT rate (SCENARIOS: se2 = 0)
    assert tr.asr[-1] == pytest.approx(float(weighted_sum_rate_stack(h.conj() @ P, 1.0, 1.0)), rel=1e-12)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_single_user_reaches_capacity(scheme):
    """K = 1, one draw: every scheme reaches ``log2(1 + P_t ||h||^2 / sigma2)`` (superposition with SIC is
    capacity-achieving for one user)."""
    rng = np.random.default_rng(5)
    h = cn(rng, 1, 1, 4)
    data = SaaData(h, RsmaLayout(scheme, np.zeros(1, int)), 10.0)
    P, tr = saa_wmmse(data, random_start(data), max_iter=100, tol=1e-10)
    capacity = math.log2(1 + data.power * np.linalg.norm(h) ** 2)
    assert saa_rates(data, P).asr == pytest.approx(capacity, rel=1e-5)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_qos_met_from_a_start_that_misses_it(scheme):
    data = make_data(scheme, M=20, R_th=1.0, seed=2)
    P0 = random_start(data, seed=4)
    assert saa_rates(data, P0).deficit > 0.1
    P, tr = saa_wmmse(data, P0, max_iter=8, tol=0.0)
    assert saa_rates(data, P).deficit <= 1e-3  # the feasibility tolerance of SCENARIOS.md section 3
    deficit = np.array(tr.deficit)
    first = int(np.argmax(deficit <= 1e-3))
    assert np.all(deficit[first:] <= 1e-3)  # once met, the targets stay met
    assert np.linalg.norm(P) ** 2 <= data.power * (1 + 1e-6)


def test_qos_deficit_is_the_lp_optimum():
    """The closed-form deficit = the smallest total slack of an LP that splits the common rates."""
    rng = np.random.default_rng(11)
    for _ in range(30):
        K, G = 5, 2
        lay = RsmaLayout("hrsma", rng.integers(0, G, K))
        Rp, Rg, Rc, R_th = rng.uniform(0, 2, K), rng.uniform(0, 1, lay.G), rng.uniform(0, 1), 1.5
        # variables [Cc (K), Cg (K), s (K)]; minimise sum s
        c = np.r_[np.zeros(2 * K), np.ones(K)]
        A, b = [], []
        A.append(np.r_[np.ones(K), np.zeros(2 * K)]); b.append(Rc)
        for g in range(lay.G):
            A.append(np.r_[np.zeros(K), (lay.groups == g).astype(float), np.zeros(K)]); b.append(Rg[g])
        for k in range(K):
            row = np.zeros(3 * K); row[[k, K + k, 2 * K + k]] = -1.0
            A.append(row); b.append(Rp[k] - R_th)
        lp = linprog(c, A_ub=np.array(A), b_ub=np.array(b), bounds=[(0, None)] * (3 * K))
        assert lp.status == 0
        assert qos_deficit(lay, Rp, Rg, Rc, R_th) == pytest.approx(lp.fun, abs=1e-9)


@pytest.mark.parametrize("R_th", [0.0, 0.5])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_qcqp_is_dpp(scheme, R_th):
    lay = RsmaLayout(scheme, np.array([0, 0, 1, 1]))
    assert SaaQcqp(lay, 4, 10.0, R_th, backend="cvxpy").problem.is_dpp()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_rebuilt_and_parametrised_solves_agree(scheme):
    """One QCQP solved through the DPP Parameters, rebuilt with constants, and in the hand-written conic form
    (three independent assemblies of the same problem): the same optimum."""
    data = make_data(scheme, R_th=0.5)
    P0 = random_start(data)
    sur = surrogate(data, P0)
    args = (data.layout, data.Nt, data.power, data.R_th)
    P1 = SaaQcqp(*args, backend="cvxpy").solve(sur).P
    P2 = SaaQcqp(*args, parametric=False, backend="cvxpy").solve(sur).P
    P3 = SaaQcqp(*args).solve(sur).P
    v1, v2, v3 = (sur.value(P, data.layout, data.R_th, 100.0) for P in (P1, P2, P3))
    assert v1 == pytest.approx(v2, rel=1e-7, abs=1e-7)
    assert v3 == pytest.approx(v1, rel=1e-7, abs=1e-7)
    np.testing.assert_allclose(P1, P2, atol=1e-4 * np.linalg.norm(P1))
    np.testing.assert_allclose(P3, P1, atol=1e-4 * np.linalg.norm(P1))


@pytest.mark.parametrize("R_th", [0.0, 0.5])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_conic_qcqp_optimum_is_the_surrogates_maximum(scheme, R_th):
    """The conic form's optimal value (its objective plus constant, negated) is the surrogate's value at its own
    optimum, and no feasible random point does better."""
    data = make_data(scheme, R_th=R_th)
    sur = surrogate(data, random_start(data))
    qcqp = SaaQcqp(data.layout, data.Nt, data.power, data.R_th)
    P = qcqp.solve(sur).P
    best = sur.value(P, data.layout, data.R_th, 100.0)
    rng = np.random.default_rng(1)
    for _ in range(20):
        Q = rng.standard_normal(P.shape) + 1j * rng.standard_normal(P.shape)
        Q *= math.sqrt(data.power) / np.linalg.norm(Q)
        assert sur.value(Q, data.layout, data.R_th, 100.0) <= best + 1e-7
        R = P + 0.05 * math.sqrt(data.power) * Q / np.linalg.norm(Q)  # nearby points
        R *= min(1.0, math.sqrt(data.power) / np.linalg.norm(R))
        assert sur.value(R, data.layout, data.R_th, 100.0) <= best + 1e-7


def test_bad_input_one_line():
    data = make_data("hrsma")
    with pytest.raises(ValueError, match="shape"):
        saa_wmmse(data, np.zeros((4, 3)), max_iter=1)
    with pytest.raises(ValueError, match="qos_penalty"):
        SaaQcqp(data.layout, 4, 10.0, 0.5, qos_penalty=0.5)


class FakeProblem:
    """What the solver uses of an ``hrsma`` problem: ``saa_data()``, a named start, the precoder's role."""

    def __init__(self, data: SaaData) -> None:
        self.data = data
        self.init_methods = ("svd-mrt", "random")

    def saa_data(self) -> SaaData:
        return self.data

    def initial(self, method=None, rng=None):
        return {"P": random_start(self.data)}

    def role_variable(self, role):
        return "P" if role == "precoder" else None


def test_declines_beyond_the_size_cap_with_the_reason():
    solver = SaaWmmse()
    big = FakeProblem(make_data("sdma", Nt=16, K=16, M=2))
    reason = solver.declines(big, {})
    assert reason is not None and "Nt K = 256" in reason and "max_size=100" in reason
    assert solver.declines(big, {"max_size": 256}) is None
    assert solver.declines(FakeProblem(make_data("sdma")), {}) is None
    assert solver.declines(object(), {}) == "the problem offers no SAA data (no saa_data())"
    cvx = {"backend": "cvxpy"}
    assert solver.memory_bytes(big, cvx) > solver.memory_bytes(big, {**cvx, "dpp": False}) > 0
    assert 0 < solver.memory_bytes(big, {}) < solver.memory_bytes(big, cvx)
    assert "grows as (Nt K)^3.5" in reason


def test_solver_plugin_runs_and_honours_the_budget():
    solver = SaaWmmse()
    prob = FakeProblem(make_data("hrsma", R_th=0.5))
    ctx = RunContext(np.random.default_rng(0))
    sol = solver.solve(prob, {"max_iter": 5}, ctx)
    assert sol.iterations == len(sol.info["surrogate_trace"]) and 1 <= sol.iterations <= 5
    assert np.linalg.norm(sol.x["P"]) ** 2 <= prob.data.power * (1 + 1e-6)
    assert saa_rates(prob.data, sol.x["P"]).asr == pytest.approx(sol.info["asr_trace"][-1], rel=1e-12)
    assert [c[1] for c in ctx.checkpoints][0] == 0 and ctx.checkpoints[-1][1] == sol.iterations
    for opts in ({"dpp": False, "backend": "cvxpy"}, {"backend": "cvxpy"}):
        other = solver.solve(prob, {"max_iter": 2, "tol": 0.0, **opts}, RunContext(np.random.default_rng(0)))
        assert other.iterations == 2 and other.info["status"] == "max_iter"
    spent = RunContext(np.random.default_rng(0), budget_seconds=0.0)
    sol0 = solver.solve(prob, {}, spent)
    assert sol0.iterations == 0 and sol0.info["status"] == "stopped"
