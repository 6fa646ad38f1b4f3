"""``isac`` (seed 000, sec. V; SCENARIOS.md section 4): steering vectors, probing power, the objective and
``saa-wmmse``'s linearised probing term."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import j0

from wbench import rsma
from wbench.channels import onering
from wbench.channels.channelset import realisation_rng
from wbench.scenarios.hrsma import Hrsma
from wbench.scenarios.isac import (Isac, beampattern, probing_matrix, probing_power, steering_vectors,
                                   stream_shares)


def cn(rng, *shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)


def make(seed=0, **given):
    sc = Isac()
    params = sc.resolve_params(given)
    ch = sc.draw(params, realisation_rng(seed, "isac", 0))
    prob, scorer = sc.problems(params, ch)
    return sc, params, ch, prob, scorer


def test_narrow_one_ring_tends_to_the_outer_product_of_the_target_steering_vector():
    # the sign oracle: the correlation eq. (13) is built from the same a(theta) the targets are probed with
    nt, theta = 8, np.pi / 6
    a = steering_vectors(nt, theta, "uca")
    for delta, tol in ((1e-3, 1e-3), (1e-5, 1e-7)):
        R = onering.one_ring_correlation(onering.uca_positions(nt), theta, delta)
        assert np.max(np.abs(R - np.outer(a, a.conj()))) < tol
    # the mirrored vector (exp(+j ...)) does not match
    R = onering.one_ring_correlation(onering.uca_positions(nt), theta, 1e-5)
    assert np.max(np.abs(R - np.outer(a.conj(), a))) > 0.5


def test_a_beam_steered_at_a_target_probes_nt_times_the_power():
    # p = sqrt(P_t / Nt) a(theta_1): a_1^H p p^H a_1 = (P_t / Nt) |a^H a|^2 = Nt P_t (|a_i| = 1)
    nt, power = 12, 7.0
    for kind in ("uca", "ula"):
        steer = steering_vectors(nt, np.array([np.pi / 6]), kind)
        p = np.sqrt(power / nt) * steer[0][:, None]
        assert probing_power(p, probing_matrix(steer)) == pytest.approx(nt * power, rel=1e-12)
        # and no direction does better (Cauchy-Schwarz): the beampattern peaks at the target
        grid = np.linspace(-np.pi, np.pi, 3601)
        bp = beampattern(p, steering_vectors(nt, grid, kind)).sum(axis=1)
        assert bp.max() <= nt * power * (1 + 1e-12)
        assert abs(grid[np.argmax(bp)] - np.pi / 6) < 2e-3 or kind == "ula"  # the ULA also peaks at pi - theta


def test_the_ula_option_is_the_paper_literal_vector():
    a = steering_vectors(5, 0.3, "ula")
    assert np.allclose(a, np.exp(1j * 2 * np.pi * 0.5 * np.arange(5) * np.sin(0.3)))
    assert "paper-literal" in Isac.params["steering"].help
    with pytest.raises(ValueError, match="steering"):
        steering_vectors(5, 0.3, "upa")


def test_uca_beampattern_averages_to_the_bessel_form_of_the_power():
    # E_theta[a a^H]_ij = J0(2 pi |r_i - r_j| / lambda) on the UCA, so the beampattern's mean over the full
    # circle is tr(P^H J P); it reduces to tr(P P^H) when the elements decorrelate (J -> I)
    rng = np.random.default_rng(1)
    nt = 8
    P = cn(rng, nt, 5)
    pos = onering.uca_positions(nt)
    J = j0(2 * np.pi * np.linalg.norm(pos[:, None] - pos[None], axis=-1))
    grid = np.linspace(0, 2 * np.pi, 4096, endpoint=False)
    mean = beampattern(P, steering_vectors(nt, grid)).sum(axis=1).mean()
    assert mean == pytest.approx(float(np.real(np.trace(P.conj().T @ J @ P))), rel=1e-10)


def test_zero_radar_weight_is_the_hrsma_objective_without_qos():
    for scheme in ("hrsma", "sdma"):
        sc, params, ch, prob, scorer = make(3, scheme=scheme, lambda_r=0.0, M=20, M_eval=30)
        h = Hrsma()
        hp = h.resolve_params({k: params[k] for k in ("Nt", "K", "G", "azimuths", "Delta", "se2", "snr_db", "M",
                                                      "M_eval", "scheme")} | {"R_th": 0.0})
        hprob, hscorer = h.problems(hp, ch)  # same stored channel arrays
        rng = np.random.default_rng(4)
        x = prob.random_feasible(rng)
        assert prob.utility(x) == hprob.utility(x)
        assert scorer.utility(x) == hscorer.utility(x)
        assert scorer.extra_metrics(x)["esr"] == hscorer.utility(x)
        import torch

        xt = {"P": torch.as_tensor(x["P"])}
        assert float(prob.loss_torch(xt)) == pytest.approx(float(hprob.loss_torch(xt)), rel=1e-14)


def test_utility_is_esr_plus_weighted_probing_and_metrics_record_both():
    sc, params, ch, prob, scorer = make(2, lambda_r=0.01, M=20, M_eval=30)
    x = prob.initial("svd-mrt")
    P = x["P"]
    probing = sum(float(np.abs(a.conj() @ P @ P.conj().T @ a)) for a in prob.steer)
    m = scorer.extra_metrics(x)
    assert m["probing"] == pytest.approx(probing, rel=1e-12)
    assert scorer.utility(x) == pytest.approx(m["esr"] + 0.01 * probing, rel=1e-12)
    assert prob.utility(x) == pytest.approx(rsma.saa_asr(prob.H, P, prob.layout) + 0.01 * probing, rel=1e-12)
    assert m["share_common"] + m["share_group"] + m["share_private"] == pytest.approx(1.0)
    assert m["share_common"] <= m["share_top"] <= 1.0


def test_stream_shares_of_a_common_only_precoder():
    sc, params, ch, prob, scorer = make(0, M=5, M_eval=5)
    P = np.zeros((params["Nt"], prob.layout.n_streams), complex)
    P[:, 0] = prob.steer[0]
    s = stream_shares(P, prob.steer, prob.layout)
    assert s["common"] == 1.0 and s["top"] == 1.0 and s["private"] == 0.0


def test_loss_gradient_matches_complex_finite_differences():
    from wbench.solvers.common import autodiff

    sc, params, ch, prob, scorer = make(7, M=20, lambda_r=0.05)
    rng = np.random.default_rng(8)
    x = prob.initial("svd-mrt")
    loss, grad = autodiff.loss_and_grad(prob, x)
    assert loss == pytest.approx(-prob.utility(x), rel=1e-12)
    for _ in range(3):
        d = cn(rng, *x["P"].shape)
        eps = 1e-6
        fd = (-prob.utility({"P": x["P"] + eps * d}) + prob.utility({"P": x["P"] - eps * d})) / (2 * eps)
        assert float(np.real(np.vdot(grad["P"], d))) == pytest.approx(fd, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("scheme", ["hrsma", "rsma", "sdma"])
def test_hand_written_loss_and_gradient_equal_autograd(scheme):
    # the NumPy fast path multistart and manifold use must be the torch loss and its autograd gradient,
    # including the minima's ties (zero group commons: every member's group-common rate is 0)
    import torch

    sc, params, ch, prob, scorer = make(4, scheme=scheme, M=30, lambda_r=0.02)
    rng = np.random.default_rng(5)
    points = [prob.initial("svd-mrt")["P"], prob.random_feasible(rng)["P"]]
    tie = prob.random_feasible(rng)["P"]
    if scheme == "hrsma":
        tie[:, 1:1 + prob.layout.G] = 0.0
    for P in points + [tie]:
        loss, grad = prob.loss_and_grad_numpy({"P": P})
        Pt = torch.tensor(P, requires_grad=True)
        lt = prob.loss_torch({"P": Pt})
        (gt,) = torch.autograd.grad(lt, Pt)
        assert loss == pytest.approx(float(lt.detach()), rel=1e-13, abs=1e-13)
        assert np.allclose(grad["P"], gt.numpy(), rtol=1e-11, atol=1e-13)
    # without the radar term it is hrsma's (no QoS) hand-written form; with QoS hrsma falls back to autograd
    h = Hrsma()
    for R_th, expect in ((0.0, True), (0.25, False)):
        hp = h.resolve_params({k: params[k] for k in ("Nt", "K", "G", "azimuths", "Delta", "se2", "snr_db", "M",
                                                      "M_eval", "scheme")} | {"R_th": R_th})
        hprob, _ = h.problems(hp, ch)
        fast = hprob.loss_and_grad_numpy({"P": points[0]})
        assert (fast is not None) == expect
        if fast is not None:
            Pt = torch.tensor(points[0], requires_grad=True)
            (gt,) = torch.autograd.grad(hprob.loss_torch({"P": Pt}), Pt)
            assert np.allclose(fast[1]["P"], gt.numpy(), rtol=1e-11, atol=1e-13)


def test_bad_targets_and_steering_are_one_line_errors():
    from wbench.params import ParamError

    with pytest.raises(ParamError, match="targets|angle"):
        Isac().resolve_params({"targets": "north"})
    with pytest.raises(ParamError, match="steering"):
        Isac().resolve_params({"steering": "upa"})


# -- saa-wmmse with the probing term ------------------------------------------------------------------------
def test_radar_minorant_lower_bounds_the_probing_term_and_touches_it():
    from wbench.solvers.convex.saa_wmmse import radar_minorant, radar_term

    sc, params, ch, prob, scorer = make(1, M=5, lambda_r=0.3)
    data = prob.saa_data()
    rng = np.random.default_rng(2)
    Pc = cn(rng, *prob.initial("mrt")["P"].shape)
    assert radar_minorant(data, Pc, Pc) == pytest.approx(radar_term(data, Pc), rel=1e-12)
    for _ in range(20):
        P = cn(rng, *Pc.shape)
        gap = radar_term(data, P) - radar_minorant(data, Pc, P)
        assert gap == pytest.approx(0.3 * probing_power(P - Pc, data.probing), rel=1e-9)
        assert gap >= 0


@pytest.mark.parametrize("scheme", ["hrsma", "sdma"])
def test_saa_wmmse_with_probing_is_monotone_and_gains_probing(scheme):
    from wbench.solvers.convex.saa_wmmse import saa_wmmse

    sc, params, ch, prob, scorer = make(0, scheme=scheme, Nt=4, K=4, G=2, azimuths="even", M=10,
                                        lambda_r=0.05)
    x0 = prob.initial("svd-mrt")
    P, tr = saa_wmmse(prob.saa_data(), x0["P"], max_iter=8)
    assert tr.iterations >= 2
    merit = np.array(tr.merit)
    assert np.all(np.diff(merit) >= -1e-7 * (1 + np.abs(merit[:-1])))
    # the merit is the problem's own objective (in-sample ASR + lambda_r probing)
    assert merit[-1] == pytest.approx(prob.utility({"P": P}), rel=1e-9)
    assert merit[-1] > merit[0]


# -- the isac figure kinds (plugin hook) --------------------------------------------------------------------
@pytest.fixture(scope="module")
def isac_db(tmp_path_factory):
    from tests.helpers import compare

    db = tmp_path_factory.mktemp("isac") / "r.db"
    assert compare(db, "--solvers", "adam[iters=15]", "--set", "Nt=4", "--set", "K=4", "--set", "G=2",
                   "--set", "azimuths=even", "--set", "M=8", "--set", "M_eval=10", "--sweep", "scheme=hrsma,sdma",
                   "--sweep", "lambda_r=0,0.01", "--instances", "2", scenario="isac") == 0
    return db


def test_tradeoff_data_are_the_means_and_intervals_of_the_recorded_metrics(isac_db):
    import json

    from tests.helpers import stored
    from wbench.scenarios.isac_figures import tradeoff_data

    rows = stored(isac_db)
    df = tradeoff_data(rows, isac_db)
    assert len(df) == 4 and set(df["scheme"]) == {"hrsma", "sdma"} and set(df["n"]) == {2}
    for _, r in df.iterrows():
        ms = [json.loads(x["metrics"]) for x in rows if json.loads(x["params"])["scheme"] == r["scheme"]
              and json.loads(x["params"])["lambda_r"] == r["lambda_r"]]
        assert r["esr"] == pytest.approx(np.mean([m["esr"] for m in ms]))
        assert r["probing"] == pytest.approx(np.mean([m["probing"] for m in ms]))
        assert r["esr_lo"] <= r["esr"] <= r["esr_hi"] and r["probing_lo"] <= r["probing"] <= r["probing_hi"]


def test_beampattern_data_from_stored_solutions(isac_db):
    import json

    from tests.helpers import stored
    from wbench.scenarios.isac_figures import beampattern_data

    rows = stored(isac_db)
    df = beampattern_data(rows, isac_db, solver="adam")
    assert set(df["scheme"]) == {"hrsma", "sdma"} and set(df["lambda_r"]) == {0.01}
    metrics = {r["run_key"]: json.loads(r["metrics"]) for r in rows}
    for key, g in df.groupby("run_key"):
        curves = g[g["value"].notna()].pivot(index="theta", columns="group", values="value")
        parts = [c for c in ("common", "group commons", "privates") if c in curves]
        assert np.allclose(curves[parts].sum(axis=1), curves["total"])
        # the total at the marked targets is the recorded probing power (targets +-pi/6 lie on the grid)
        targets = g.loc[g["group"] == "target", "theta"].to_numpy()
        at = [curves["total"].iloc[np.argmin(np.abs(curves.index - t))] for t in targets]
        assert sum(at) == pytest.approx(metrics[key]["probing"], rel=1e-9)
        assert set(g.loc[g["group"] == "user group", "theta"].round(6)) == {round(-np.pi / 4, 6), round(np.pi / 4, 6)}
    one = beampattern_data(rows, isac_db, solver="adam", run=df["run_key"].iloc[0][:12])
    assert one["run_key"].nunique() == 1


def test_plot_draws_the_plugin_kinds_and_refuses_foreign_options(isac_db, tmp_path):
    from wbench.cli import main

    for kind, extra in (("tradeoff", []), ("beampattern", ["--solver", "adam"])):
        out = tmp_path / f"{kind}.png"
        assert main(["plot", kind, "--db", str(isac_db), "--out", str(out), *extra]) == 0
        assert out.stat().st_size > 1000
    assert main(["plot", "tradeoff", "--db", str(isac_db), "--solver", "adam"]) == 2  # not its option
    assert main(["plot", "beampattern", "--db", str(isac_db), "--x", "K"]) == 2
    assert main(["plot", "nosuchkind", "--db", str(isac_db)]) == 2


@pytest.mark.slow
def test_the_report_includes_the_plugin_kinds(isac_db, tmp_path):
    from wbench.cli import main

    assert main(["report", "--db", str(isac_db), "--out", str(tmp_path / "rep")]) == 0
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "isac-tradeoff.png" in page and "isac-beampattern.png" in page
    assert (tmp_path / "rep" / "isac-beampattern.csv").stat().st_size > 0


def test_genie_bound_covers_the_isac_objective():
    from wbench.solvers.wmmse.genie_dpc import GenieDpc
    from tests.helpers import solve_with

    sc, params, ch, prob, scorer = make(5, Nt=4, K=2, G=2, azimuths="even", M=6, lambda_r=0.05)
    sol, _ = solve_with(GenieDpc(), prob)
    rng = np.random.default_rng(0)
    lam_max = float(np.linalg.eigvalsh(prob.A)[-1])
    # the beam along A's top eigenvector reaches the probing bound, so no looser constant would be tight
    v = np.linalg.eigh(prob.A)[1][:, -1]
    P = np.zeros((4, prob.layout.n_streams), complex)
    P[:, 0] = np.sqrt(prob.power) * v
    assert prob.probing({"P": P}) == pytest.approx(lam_max * prob.power, rel=1e-10)
    for x in [{"P": P}] + [prob.random_feasible(rng) for _ in range(5)]:
        assert prob.utility(x) <= sol.value


def test_figure_kinds_come_from_the_plugin_hook_and_clashes_are_refused():
    import types

    from wbench.figures.plugin import FigureKind
    from wbench.hookspecs import hookimpl
    from wbench.registry import PluginError, Registry

    reg = Registry()
    reg.load_builtins(["wbench.scenarios.isac"])
    assert {"tradeoff", "beampattern"} <= set(reg.figures)
    assert reg.figures["beampattern"].options == ("solver", "run") and reg.figures["tradeoff"].applies("isac")
    for i, name in enumerate(("tradeoff", "sweep")):  # an existing plugin kind, a built-in kind
        mod = types.ModuleType(f"third_party_figures_{i}")
        mod.wbench_register_figures = hookimpl(
            lambda register, name=name: register(FigureKind(name, ("isac",), lambda rows, db: None, lambda df: None)))
        with pytest.raises(PluginError, match="clashes"):
            reg.add_module(mod, "test", "0")
    with pytest.raises(ValueError, match="options"):
        FigureKind("x", ("isac",), lambda rows, db: None, lambda df: None, options=("colour",))


def test_conic_and_cvxpy_backends_agree_with_the_probing_term():
    """The linearised probing term enters both assemblies of the QCQP (the hand-written conic form and cvxpy's
    Parameters): the same optimum of the same surrogate plus the same linear term."""
    from wbench.solvers.convex.saa_wmmse import SaaQcqp, surrogate

    sc, params, ch, prob, scorer = make(0, scheme="hrsma", Nt=4, K=4, G=2, azimuths="even", M=10, lambda_r=0.05)
    data = prob.saa_data()
    P0 = prob.initial("svd-mrt")["P"]
    sur = surrogate(data, P0)
    grad = data.radar_weight * data.probing @ P0
    args = (data.layout, data.Nt, data.power, data.R_th)
    Pc = SaaQcqp(*args, radar=True).solve(sur, grad).P
    Pv = SaaQcqp(*args, radar=True, backend="cvxpy").solve(sur, grad).P
    Pn = SaaQcqp(*args).solve(sur).P  # without the term: a different optimum, so the term is not ignored

    def value(P):
        lin = 2.0 * float(np.real(np.vdot(grad, P)))  # bit/s/Hz, as radar_grad's docstring states
        return sur.value(P, data.layout, data.R_th, 100.0) + lin * np.log(2.0)
    assert value(Pc) == pytest.approx(value(Pv), rel=1e-6, abs=1e-6)
    assert value(Pc) > value(Pn) + 1e-6
