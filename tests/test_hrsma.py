"""The ``hrsma`` scenario (seed 000 section IV; SCENARIOS.md section 3): rates, QoS, scoring, bound, solvers.

Oracles: the vectorised SINRs equal an explicit successive-interference-cancellation loop on the received
signal ``y_k = sum_j h_k^H p_j s_j + n_k`` and a Monte Carlo simulation of it; ``rsma`` with ``p_c = 0`` is
``sdma`` and ``hrsma`` with ``p_cg = 0`` is ``rsma``; ``se2 = 0`` makes the SAA rate the perfect-CSIT rate;
one user reaches ``log2(1 + P ||h||^2)``; Algorithm 2 on hand-worked examples, its shortfall equal to the
closed form (and order-free) on random cases; the finite-difference gradient of the loss; no held-out data in
anything a solver can reach; every scheme's ASR below the perfect-CSIT genie bound; solvers through the harness.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.csi_plugin import reachable_buffers
from tests.helpers import compare, stored
from wbench import rsma
from wbench.channels.channelset import realisation_rng
from wbench.rsma import RsmaLayout
from wbench.scenarios.hrsma import Hrsma, parse_angle, parse_azimuths
from wbench.solvers.wmmse.genie_dpc import genie_bound


def cn(rng, *shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)


def make(seed=0, **given):
    sc = Hrsma()
    params = sc.resolve_params(given)
    ch = sc.draw(params, realisation_rng(seed, "hrsma", 0))
    prob, scorer = sc.problems(params, ch)
    return sc, params, ch, prob, scorer


# -- SINRs against the received signal --------------------------------------------------------------
def sic_loop(h: np.ndarray, P: np.ndarray, lay: RsmaLayout, k: int, sigma2: float) -> list[float]:
    """User ``k`` decodes its streams in order, each against every stream it has not yet removed."""
    g = int(lay.groups[k])
    order = [c for c in (lay.common, lay.group_common(g)) if c is not None] + [lay.private(k)]
    amp = h.conj() @ P  # y = sum_j amp_j s_j + n
    left = set(range(P.shape[1]))
    rates = []
    for s in order:
        interference = sum(abs(amp[j]) ** 2 for j in left if j != s) + sigma2
        rates.append(np.log2(1 + abs(amp[s]) ** 2 / interference))
        left.discard(s)
    return rates


@pytest.mark.parametrize("scheme", ["hrsma", "rsma", "sdma"])
def test_vectorised_rates_equal_the_sic_loop(scheme):
    rng = np.random.default_rng(1)
    lay = RsmaLayout(scheme, np.array([0, 0, 1, 2, 2]))
    H = cn(rng, 3, 5, 4)
    P = cn(rng, 4, lay.n_streams) * 2
    Rc, Rcg, Rp = rsma.stage_rates(H, P, lay, 0.7)
    for m in range(3):
        for k in range(5):
            want = sic_loop(H[m, k], P, lay, k, 0.7)
            got = [r[m, k] for r, has in ((Rc, lay.has_common), (Rcg, lay.has_group_commons), (Rp, True)) if has]
            np.testing.assert_allclose(got, want, rtol=1e-12)
    if not lay.has_common:
        assert np.all(Rc == 0)
    if not lay.has_group_commons:
        assert np.all(Rcg == 0)


def test_sinrs_equal_a_monte_carlo_of_the_received_signal():
    """Symbols and noise drawn, SIC subtracts the decoded streams; the SINR of each stage is its signal power
    over the measured power of what remains (relative error of a 200k-sample mean, 2%)."""
    rng = np.random.default_rng(2)
    lay = RsmaLayout("hrsma", np.array([0, 1, 1]))
    h = cn(rng, 4)
    P = cn(rng, 4, lay.n_streams)
    n = 200_000
    s = cn(rng, lay.n_streams, n)
    noise = np.sqrt(0.5) * cn(rng, n)
    amp = h.conj() @ P
    Rc, Rcg, Rp = rsma.stage_rates(h[None], P, lay, 0.5)
    for k in range(3):
        y = amp @ s + noise
        g = int(lay.groups[k])
        for stage, col, R in (("c", lay.common, Rc), ("cg", lay.group_common(g), Rcg), ("p", lay.private(k), Rp)):
            rest = y - amp[col] * s[col]
            sinr = abs(amp[col]) ** 2 / np.mean(abs(rest) ** 2)
            assert np.log2(1 + sinr) == pytest.approx(R[k], rel=0.02), stage
            y = rest  # SIC: the decoded stream is removed
        assert np.mean(abs(y) ** 2) == pytest.approx(
            sum(abs(amp[j]) ** 2 for j in range(lay.n_streams) if j not in
                (lay.common, lay.group_common(g), lay.private(k))) + 0.5, rel=0.02)


def test_schemes_nest_when_the_extra_streams_are_off():
    rng = np.random.default_rng(3)
    groups = np.array([0, 0, 1, 1, 1])
    H = cn(rng, 20, 5, 6)
    Pp = cn(rng, 6, 5)
    Pc = cn(rng, 6, 1)
    sd, rs, hr = (RsmaLayout(s, groups) for s in ("sdma", "rsma", "hrsma"))
    # rsma with p_c = 0 is sdma
    a = rsma.stage_rates(H, np.hstack([0 * Pc, Pp]), rs)
    b = rsma.stage_rates(H, Pp, sd)
    np.testing.assert_allclose(a[2], b[2], rtol=1e-13)
    assert rsma.saa_asr(H, np.hstack([0 * Pc, Pp]), rs) == pytest.approx(rsma.saa_asr(H, Pp, sd), rel=1e-13)
    # hrsma with every p_cg = 0 is rsma
    P_h = np.hstack([Pc, np.zeros((6, 2)), Pp])
    a = rsma.stage_rates(H, P_h, hr)
    b = rsma.stage_rates(H, np.hstack([Pc, Pp]), rs)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-15)
    assert rsma.saa_asr(H, P_h, hr) == pytest.approx(rsma.saa_asr(H, np.hstack([Pc, Pp]), rs), rel=1e-13)


def test_torch_rates_equal_numpy():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    lay = RsmaLayout("hrsma", np.array([0, 1, 1, 0]))
    H, P = cn(rng, 7, 4, 3), cn(rng, 3, lay.n_streams)
    ref = rsma.saa_rates(*rsma.stage_rates(H, P, lay), lay)
    got = rsma.saa_rates(*rsma.stage_rates(torch.as_tensor(H), torch.as_tensor(P), lay), lay)
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g.numpy(), r, rtol=1e-12)
    for th in (0.3, 2.0):
        assert float(rsma.qos_margin(*got, lay, th)) == pytest.approx(rsma.qos_margin(*ref, lay, th), rel=1e-12)


# -- perfect CSIT, one user --------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["hrsma", "rsma", "sdma"])
def test_perfect_csit_makes_the_saa_rate_the_perfect_csit_rate(scheme):
    sc, params, ch, prob, scorer = make(3, scheme=scheme, se2=0.0, M=7, M_eval=11)
    x = prob.initial("svd-mrt")
    np.testing.assert_array_equal(prob.H, np.broadcast_to(ch["H_hat"], prob.H.shape))
    perfect = rsma.saa_asr(ch["H_hat"][None], x["P"], prob.layout)
    assert prob.utility(x) == pytest.approx(perfect, rel=1e-13)
    assert scorer.utility(x) == pytest.approx(perfect, rel=1e-13)


@pytest.mark.parametrize("scheme,column", [("hrsma", 0), ("hrsma", 1), ("hrsma", 2), ("rsma", 0), ("rsma", 1),
                                           ("sdma", 0)])
def test_one_user_reaches_the_single_user_capacity(scheme, column):
    sc, params, ch, prob, scorer = make(5, scheme=scheme, K=1, G=1, se2=0.0, M=3, snr_db=13.0)
    h = ch["H_hat"][0]
    P = np.zeros(prob.variables["P"].shape, complex)
    P[:, column] = h / np.linalg.norm(h) * np.sqrt(prob.power)
    cap = np.log2(1 + prob.power * np.linalg.norm(h) ** 2)
    assert prob.utility({"P": P}) == pytest.approx(cap, rel=1e-12)
    assert prob.closed_form_optimum() == pytest.approx(cap, rel=1e-12)
    rand = prob.random_feasible(np.random.default_rng(0))
    assert prob.utility(rand) <= cap + 1e-12


# -- Algorithm 2 and its closed form -----------------------------------------------------------------
def test_algorithm2_hand_worked_examples():
    lay = RsmaLayout("hrsma", np.array([0, 0, 1]))
    # group 0: user 0 needs 0.8, gets the whole 0.5 (break); group 1: user 2 needs 0.6, gets 0.3 (break);
    # global 0.4: user 0 needs 0.3 (0.1 left), user 2 needs 0.3 and gets the 0.1 (break)
    alloc = rsma.allocate_common_rates(0.4, np.array([0.5, 0.3]), np.array([0.2, 1.5, 0.4]), lay, 1.0)
    np.testing.assert_allclose(alloc, [1.0, 1.5, 0.8], atol=1e-15)
    assert rsma.qos_shortfall(0.4, np.array([0.5, 0.3]), np.array([0.2, 1.5, 0.4]), lay, 1.0) == pytest.approx(0.2)
    # leftovers: group 0 serves user 1 (0.1) and splits 0.2 over both; group 1 splits all 0.2; nobody is left
    # below target, so the global 0.6 is split equally over the three users
    alloc = rsma.allocate_common_rates(0.6, np.array([0.3, 0.2]), np.array([1.2, 0.9, 2.0]), lay, 1.0)
    np.testing.assert_allclose(alloc, [1.5, 1.3, 2.4], atol=1e-15)
    # nobody below target: every common rate split equally
    alloc = rsma.allocate_common_rates(0.3, np.array([0.4, 0.1]), np.array([1.0, 1.0, 1.0]), lay, 0.5)
    np.testing.assert_allclose(alloc, [1.3, 1.3, 1.2], atol=1e-15)
    # the global stage in user order: user 0 is served first, user 1 gets the rest, user 2 nothing
    lay1 = RsmaLayout("rsma", np.array([0, 0, 0]))
    alloc = rsma.allocate_common_rates(0.5, np.zeros(1), np.array([0.6, 0.5, 0.1]), lay1, 1.0)
    np.testing.assert_allclose(alloc, [1.0, 0.6, 0.1], atol=1e-15)


def test_algorithm2_shortfall_is_the_order_free_closed_form():
    rng = np.random.default_rng(6)
    feasible_seen = infeasible_seen = 0
    for trial in range(300):
        K, G = rng.integers(1, 7), None
        G = int(rng.integers(1, K + 1))
        groups = np.sort(np.concatenate([np.arange(G), rng.integers(0, G, K - G)]))
        lay = RsmaLayout("hrsma", groups)
        Rp = rng.uniform(0, 1.5, K)
        Rcg = rng.uniform(0, 0.8, G) * rng.integers(0, 2, G)
        Rc = rng.uniform(0, 1.5) * rng.integers(0, 2)
        th = rng.uniform(0.1, 1.2)
        alloc = rsma.allocate_common_rates(Rc, Rcg, Rp, lay, th)
        assert alloc.sum() == pytest.approx(Rc + Rcg.sum() + Rp.sum(), rel=1e-12)
        assert np.all(alloc >= Rp - 1e-15)
        short = np.sum(np.maximum(th - alloc, 0.0))
        closed = rsma.qos_shortfall(Rc, Rcg, Rp, lay, th)
        assert short == pytest.approx(closed, abs=1e-12)
        assert (closed <= 1e-12) == (rsma.qos_margin(Rc, Rcg, Rp, lay, th) >= -1e-12)
        feasible_seen += closed == 0
        infeasible_seen += closed > 0
        # another user order within the groups gives the same shortfall
        perm = np.concatenate([rng.permutation(np.flatnonzero(groups == g)) for g in range(G)])
        alloc2 = rsma.allocate_common_rates(Rc, Rcg, Rp[perm], RsmaLayout("hrsma", groups[perm]), th)
        assert np.sum(np.maximum(th - alloc2, 0.0)) == pytest.approx(short, abs=1e-12)
    assert feasible_seen > 30 and infeasible_seen > 30


# -- the problem: loss, gradient, feasibility --------------------------------------------------------
@pytest.mark.parametrize("scheme", ["hrsma", "rsma", "sdma"])
def test_loss_gradient_matches_complex_finite_differences_of_the_numpy_model(scheme):
    from wbench.solvers.common import autodiff

    sc, params, ch, prob, scorer = make(7, scheme=scheme, M=30, R_th=0.6)
    rng = np.random.default_rng(8)

    def loss_np(P):
        r = prob.rates({"P": P})
        return -rsma.asr(*r) + prob.qos_weight * rsma.qos_shortfall(*r, prob.layout, prob.R_th)

    for x in (prob.initial("svd-mrt"), prob.random_feasible(rng)):
        loss, grad = autodiff.loss_and_grad(prob, x)
        assert loss == pytest.approx(loss_np(x["P"]), rel=1e-12)
        for _ in range(2):
            d = cn(rng, *x["P"].shape)
            eps = 1e-6
            fd = (loss_np(x["P"] + eps * d) - loss_np(x["P"] - eps * d)) / (2 * eps)
            assert float(np.real(np.vdot(grad["P"], d))) == pytest.approx(fd, rel=1e-5, abs=1e-6)


def test_qos_feasibility_is_judged_on_the_solver_draws_with_tolerance():
    sc, params, ch, prob, scorer = make(0, scheme="sdma", R_th=0.25)
    x = prob.initial("svd-mrt")
    margin = prob.constraints(x)["qos"][0]
    assert margin == pytest.approx(rsma.qos_margin(*prob.rates(x), prob.layout, 0.25))
    assert prob.constraint_tol == 1e-3
    assert scorer.feasibility(x) == prob.feasibility(x)
    # a target no private stream can meet
    sc, params, ch, hard, scorer = make(0, scheme="sdma", R_th=50.0)
    f = scorer.feasibility(hard.initial())
    assert not f.feasible and f.violations["qos"] > 1
    assert scorer.held_out_shortfall(hard.initial()) > 1
    sc, params, ch, none, scorer = make(0, R_th=0.0)
    assert none.constraints(none.initial()) == {} and scorer.held_out_shortfall(none.initial()) == 0.0


# -- the solver never sees the held-out draws --------------------------------------------------------
def test_the_solver_problem_holds_no_held_out_data():
    sc, params, ch, prob, scorer = make(9, M=20, M_eval=30)
    assert "eval_seed" not in sc.seen(ch) and "eval_seed" in ch
    blobs = reachable_buffers(prob)
    held_out = scorer.H
    assert not any(np.ascontiguousarray(held_out[i]).tobytes() in b for b in blobs for i in range(3))
    assert not any(ch["eval_seed"].tobytes() in b for b in blobs)
    # positive controls: the solver's own draws and the estimate are found
    assert any(np.ascontiguousarray(prob.H[0]).tobytes() in b for b in blobs)
    assert any(np.ascontiguousarray(ch["H_hat"]).tobytes() in b for b in blobs)
    assert not np.allclose(held_out[: prob.H.shape[0]], prob.H)
    data = prob.saa_data()
    assert data.H is prob.H and data.M == 20 and data.layout == prob.layout and data.R_th == 0.25


# -- the genie bound ---------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["hrsma", "rsma", "sdma"])
def test_every_scheme_stays_below_the_genie_bound(scheme):
    from wbench.solvers.gradient.adam import Adam
    from tests.helpers import solve_with

    sc, params, ch, prob, scorer = make(11, scheme=scheme, snr_db=30.0, se2=0.5, M=15, M_eval=25)
    bound_in = genie_bound(prob.H, prob.power)
    bound_out = genie_bound(scorer.H, prob.power)
    sol, _ = solve_with(Adam(), prob, iters=150)
    points = [prob.initial(m, np.random.default_rng(0)) for m in prob.init_methods] + [sol.x]
    for x in points:
        assert prob.utility(x) <= bound_in
        assert scorer.utility(x) <= bound_out
    assert prob.utility(sol.x) > prob.utility(prob.initial())  # the optimised point is a real test


# -- parameters ----------------------------------------------------------------------------------------
def test_angles_and_azimuths_parse():
    assert parse_angle("pi/36") == pytest.approx(np.pi / 36)
    assert parse_angle("-3pi/8") == pytest.approx(-3 * np.pi / 8)
    assert parse_angle("3*pi/8") == pytest.approx(3 * np.pi / 8)
    assert parse_angle("5deg") == pytest.approx(np.pi / 36)
    assert parse_angle("0.25") == 0.25
    np.testing.assert_allclose(parse_azimuths("even", 2), [-np.pi / 4, np.pi / 4])
    np.testing.assert_allclose(parse_azimuths("paper", 9), np.arange(-4, 5) * np.pi / 8)
    np.testing.assert_allclose(parse_azimuths("-pi/6;pi/6", 2), [-np.pi / 6, np.pi / 6])
    with pytest.raises(ValueError, match="angle"):
        parse_angle("pie")
    with pytest.raises(ValueError, match="3 angles"):
        parse_azimuths("0;1;2", 2)
    from wbench.params import ParamError

    with pytest.raises(ParamError, match="G=4 groups"):
        Hrsma().resolve_params({"K": 3, "G": 4})


def test_svd_mrt_power_split():
    for scheme, shares in (("hrsma", (0.70, 0.25, 0.05)), ("rsma", (0.70, 0.0, 0.30)), ("sdma", (0.0, 0.0, 1.0))):
        sc, params, ch, prob, scorer = make(0, scheme=scheme)
        P = prob.initial("svd-mrt")["P"]
        lay, pw = prob.layout, np.sum(np.abs(P) ** 2, axis=0) / prob.power
        assert pw.sum() == pytest.approx(1.0)
        assert (pw[0] if lay.has_common else 0.0) == pytest.approx(shares[0])
        assert pw[lay.first_private:].sum() == pytest.approx(shares[2])
        np.testing.assert_allclose(pw[lay.first_private:], shares[2] / lay.K)
        # privates are MRT on the estimate
        for k in range(lay.K):
            h = ch["H_hat"][k]
            assert abs(np.vdot(h, P[:, lay.private(k)])) == pytest.approx(
                np.linalg.norm(h) * np.linalg.norm(P[:, lay.private(k)]), rel=1e-12)


# -- through the harness -------------------------------------------------------------------------------
def test_generic_solvers_run_through_the_harness(tmp_path):
    db = tmp_path / "r.db"
    assert compare(db, "--solvers", "adam[iters=40],metaopt-alg1[iters=20,hidden=32x32x32],genie-dpc",
                   "--set", "M=20", "--set", "M_eval=40", "--set", "snr_db=20", "--set", "se2=0.5",
                   "--set", "scheme=hrsma", "--instances", "2", scenario="hrsma") == 0
    rows = stored(db)
    assert len(rows) == 6
    by = {}
    for r in rows:
        by.setdefault(r["solver"], []).append(r)
    for name in ("adam", "metaopt-alg1"):
        assert all(r["status"] == "ok" and r["utility"] is not None and r["in_sample"] is not None
                   for r in by[name]), by[name]
    assert all(r["status"] == "ok" and r["utility"] is None and r["in_sample"] > 0 for r in by["genie-dpc"])
    for inst in (0, 1):
        bound = next(r["in_sample"] for r in by["genie-dpc"] if r["instance"] == inst)
        assert all(r["in_sample"] <= bound for n in ("adam", "metaopt-alg1") for r in by[n] if r["instance"] == inst)
    # the held-out QoS shortfall is recorded per run (recomputed here from the stored solution's scoring problem)
    # and shown as a leaderboard mean column; the bound has none
    import json

    from wbench.ranking import leaderboard
    from wbench.solution_store import decode_solution as decode

    sc = Hrsma()
    params = sc.resolve_params({"M": 20, "M_eval": 40, "snr_db": 20, "se2": 0.5, "scheme": "hrsma"})
    with __import__("wbench.store", fromlist=["Store"]).Store(db) as st:
        sols = st.solutions([r["run_key"] for r in rows])
    per_run = {}
    for r in by["adam"] + by["metaopt-alg1"]:
        m = json.loads(r["metrics"])
        x = decode(sols[r["run_key"]])
        _, scorer = sc.problems(params, sc.draw(params, realisation_rng(0, "hrsma", r["instance"])))
        assert m["held_out_qos_shortfall"] == pytest.approx(scorer.held_out_shortfall(x), abs=1e-12)
        per_run.setdefault(r["label"], []).append(m["held_out_qos_shortfall"])
    assert all(r["metrics"] is None for r in by["genie-dpc"])
    lb = leaderboard(rows).set_index("solver")
    for name, vals in per_run.items():
        assert lb.loc[name, "metric_held_out_qos_shortfall"] == pytest.approx(np.mean(vals))


def test_penalised_loss_is_the_generic_form():
    """The one-pass override equals ``Problem.penalised_loss_torch`` (loss plus the generic penalty), value and
    gradient, inside and outside the QoS region."""
    torch = pytest.importorskip("torch")
    from wbench.problem import Problem

    sc, params, ch, prob, scorer = make(12, M=25, R_th=0.4)
    rng = np.random.default_rng(3)
    for x in (prob.initial("svd-mrt"), prob.random_feasible(rng)):
        vals, grads = [], []
        for f in (prob.penalised_loss_torch, lambda xt, w: Problem.penalised_loss_torch(prob, xt, w)):
            xt = {"P": torch.tensor(x["P"], requires_grad=True)}
            v = f(xt, 37.0)
            v.backward()
            vals.append(float(v.detach()))
            grads.append(xt["P"].grad.numpy().copy())
        assert vals[0] == pytest.approx(vals[1], rel=1e-13)
        np.testing.assert_allclose(grads[0], grads[1], rtol=1e-11, atol=1e-13)


# -- the perfect-CSIT SDMA view --------------------------------------------------------------------------------
def test_sdma_with_perfect_csit_offers_the_miso_view_and_wmmse_matches_miso():
    """``scheme=sdma``, ``se2=0``, ``R_th=0``: the problem is the MU-MISO sum rate on ``H_hat``; WMMSE through
    the view equals WMMSE run on ``H_hat`` directly from the same start, and the scenario's own utility of the
    result equals the MISO sum rate."""
    from wbench.rates import weighted_sum_rate
    from wbench.solver import RunContext
    from wbench.solvers.wmmse.dpc_bound import whole_problem_view_reason
    from wbench.solvers.wmmse.wmmse import Wmmse, wmmse_stack

    _, _, _, prob, _ = make(Nt=4, K=3, G=1, M=20, M_eval=20, scheme="sdma", se2=0.0, R_th=0.0, snr_db=10.0)
    assert prob.has_precoding_view and whole_problem_view_reason(prob) is None
    np.testing.assert_array_equal(prob.H, np.broadcast_to(prob.H_hat, prob.H.shape))
    x0 = prob.initial("svd-mrt")
    view = prob.precoding_view(x0)
    assert view.simple and np.array_equal(view.H, prob.H_hat) and view.power == pytest.approx(prob.power)
    sol = Wmmse().solve(prob, {"starts": 1, "init": "svd-mrt"}, RunContext(np.random.default_rng(0)))
    V, _, _ = wmmse_stack(prob.H_hat[None], np.ones((1, 3)), np.array([prob.power]), np.array([prob.sigma2]),
                          np.asarray(x0["P"])[None], 100, 1e-4)
    np.testing.assert_allclose(sol.x["P"], V[0], atol=1e-10)
    miso = weighted_sum_rate(prob.H_hat.conj() @ V[0], np.ones(3), np.full(3, prob.sigma2))
    assert prob.utility(sol.x) == pytest.approx(miso, rel=1e-10)


@pytest.mark.parametrize("given,word", [({"scheme": "rsma", "se2": 0.0, "R_th": 0.0}, "scheme=rsma"),
                                        ({"scheme": "sdma", "se2": 0.2, "R_th": 0.0}, "se2"),
                                        ({"scheme": "sdma", "se2": 0.0, "R_th": 0.25}, "R_th")])
def test_no_view_otherwise_with_the_reason(given, word):
    _, _, _, prob, _ = make(Nt=4, K=3, G=1, M=5, M_eval=5, **given)
    assert not prob.has_precoding_view and word in prob.precoding_view_reason()
    with pytest.raises(NotImplementedError, match=word):
        prob.precoding_view(prob.initial())
