"""``hybrid`` (seed 002, SCENARIOS.md section 5): the Saleh-Valenzuela channel, the scenario, its solvers.

Oracles: moments of the channel law (``E ||h||^2 = Nt``, Laplacian ray angles: standard deviation and mean
absolute deviation), the unit-norm array response, the rate formula against a received-signal simulation, the
two-phase-shifter construction (the hybrid realises any digital precoder when ``N_RF >= 2K``), the closed-form
element update against a dense grid, monotone approximation errors, seen versus scored channels.
"""

from __future__ import annotations

import numpy as np
import pytest

from wbench.channels.channelset import FileChannels, realisation_rng
from wbench.channels.saleh_valenzuela import saleh_valenzuela, sv_angles, ula_response
from wbench.params import ParamError
from wbench.rates import weighted_sum_rate
from wbench.scenarios.hybrid import Hybrid, HybridProblem, sum_rate, write_channel_set
from wbench.solver import RunContext
from wbench.solvers.gradient.ggml import Ggml, meta_loss, robust_channel
from wbench.solvers.hybrid.altmin import MmAltMin, MoAltMin
from wbench.solvers.hybrid.common import digital_precoder, two_phase_shifters
from wbench.solvers.hybrid.element_altmax import ElementAltMax, element_update, water_filling
from wbench.solvers.hybrid.reference import FdWmmse, FdWmmse2ps


def ci_halfwidth(samples: np.ndarray, z: float = 4.0) -> float:
    """``z`` standard errors of the sample mean (z = 4: a false alarm about once in 16000 runs)."""
    return z * float(np.std(samples, ddof=1)) / np.sqrt(samples.size)


# -- the channel -------------------------------------------------------------------------------------------
def test_sv_channel_has_mean_power_nt():
    rng = np.random.default_rng(1)
    nt = 8
    H = saleh_valenzuela(rng, 4000, nt)
    power = np.sum(np.abs(H) ** 2, axis=1)
    assert abs(power.mean() - nt) <= ci_halfwidth(power)


def test_sv_channel_scales_with_clusters_and_rays():
    rng = np.random.default_rng(2)
    H = saleh_valenzuela(rng, 3000, 5, clusters=1, rays=2, spread_deg=40.0)
    power = np.sum(np.abs(H) ** 2, axis=1)
    assert abs(power.mean() - 5) <= ci_halfwidth(power)


def test_array_response_has_unit_norm_and_ula_phases():
    phi = np.array([-1.2, 0.0, 0.3, 2.5])
    a = ula_response(phi, 16)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-14)
    # consecutive elements differ by the phase pi sin(phi)
    np.testing.assert_allclose(a[:, 1:] / a[:, :-1], np.exp(1j * np.pi * np.sin(phi))[:, None] * np.ones(15),
                               atol=1e-12)


def test_ray_angles_are_laplacian_with_the_given_spread():
    rng = np.random.default_rng(3)
    spread = np.deg2rad(10.0)
    ang = sv_angles(rng, 200, 3, 30, spread)
    means = ang.mean(axis=2)  # cluster means uniform on [0, 2 pi), plus a small sample error
    assert np.all((means > -0.2) & (means < 2 * np.pi + 0.2))
    assert abs(np.mean(means) - np.pi) <= ci_halfwidth(means.ravel())
    dev = (ang - ang.mean(axis=2, keepdims=True)) * np.sqrt(30 / 29)  # unbiased per cluster
    dev = dev.ravel()
    assert abs(np.std(dev) - spread) <= ci_halfwidth(dev ** 2) / (2 * spread) + 0.02 * spread
    # Laplace: E|x| = b = sigma / sqrt(2) (a Gaussian of the same sigma has sigma sqrt(2/pi) = 0.80 sigma)
    mad = np.abs(dev)
    assert abs(mad.mean() - spread / np.sqrt(2)) <= ci_halfwidth(mad) + 0.02 * spread


def test_sv_rejects_bad_arguments():
    with pytest.raises(ValueError, match="spread"):
        saleh_valenzuela(np.random.default_rng(0), 2, 4, spread_deg=-1.0)
    with pytest.raises(ValueError, match="at least 1"):
        saleh_valenzuela(np.random.default_rng(0), 2, 4, clusters=0)


# -- the scenario ------------------------------------------------------------------------------------------
def problems(i: int = 0, seed: int = 0, **given) -> tuple[HybridProblem, HybridProblem | None]:
    sc = Hybrid()
    params = sc.resolve_params(given)
    return sc.problems(params, sc.draw(params, realisation_rng(seed, "hybrid", i)))


def test_bad_parameters_are_refused():
    with pytest.raises(ParamError, match="N_RF"):
        Hybrid().resolve_params({"K": 4, "N_RF": 3})
    with pytest.raises(ParamError, match="exceeds"):
        Hybrid().resolve_params({"Nt": 4, "N_RF": 5, "K": 2})


def test_sum_rate_equals_a_received_signal_simulation():
    """Monte-Carlo SINR from simulated symbols and noise: signal and interference-plus-noise powers."""
    seen, _ = problems(Nt=8, N_RF=3, K=3, snr_db=5.0)
    x = seen.initial("random", np.random.default_rng(4))
    F = x["F_RF"] @ x["F_BB"]
    rng = np.random.default_rng(5)
    n = 200_000
    s = (rng.standard_normal((3, n)) + 1j * rng.standard_normal((3, n))) / np.sqrt(2)
    noise = (rng.standard_normal((3, n)) + 1j * rng.standard_normal((3, n))) / np.sqrt(2)
    y_sig = (seen.H.conj() @ F).diagonal()[:, None] * s  # h_k^H f_k s_k
    y = seen.H.conj() @ F @ s + noise
    sig = np.mean(np.abs(y_sig) ** 2, axis=1)
    rest = np.mean(np.abs(y - y_sig) ** 2, axis=1)
    mc = float(np.sum(np.log2(1 + sig / rest)))
    assert mc == pytest.approx(seen.utility(x), rel=0.02)


def test_sum_rate_of_the_product_is_the_miso_rate_of_the_digital_precoder():
    seen, _ = problems(Nt=6, N_RF=4, K=2)
    rng = np.random.default_rng(6)
    x = seen.initial("random", rng)
    F = x["F_RF"] @ x["F_BB"]
    assert seen.utility(x) == pytest.approx(weighted_sum_rate(seen.H.conj() @ F, 1.0, 1.0), rel=1e-14)


@pytest.mark.parametrize("method", ["random-zf", "phase-zf", "random"])
def test_initial_points_are_feasible_at_full_power(method):
    seen, _ = problems(Nt=12, N_RF=5, K=3)
    x = seen.initial(method, np.random.default_rng(7))
    assert seen.feasibility(x).feasible
    np.testing.assert_allclose(np.abs(x["F_RF"]), 1.0, atol=1e-14)
    assert np.sum(np.abs(x["F_RF"] @ x["F_BB"]) ** 2) == pytest.approx(seen.power, rel=1e-12)
    if method != "random":  # ZF digital: no inter-user interference
        G = seen.H.conj() @ x["F_RF"] @ x["F_BB"]
        off = G - np.diag(np.diag(G))
        assert np.max(np.abs(off)) <= 1e-9 * np.max(np.abs(G))


def test_projection_restores_the_power_and_the_modulus():
    seen, _ = problems(Nt=8, N_RF=4, K=2)
    rng = np.random.default_rng(8)
    x = {"F_RF": 3 * (rng.standard_normal((8, 4)) + 1j * rng.standard_normal((8, 4))),
         "F_BB": 5 * (rng.standard_normal((4, 2)) + 1j * rng.standard_normal((4, 2)))}
    assert not seen.feasibility(x).feasible
    y = seen.project(x)
    assert seen.feasibility(y).feasible
    assert np.sum(np.abs(y["F_RF"] @ y["F_BB"]) ** 2) == pytest.approx(seen.power, rel=1e-12)


def test_perfect_csi_sees_the_true_channel():
    sc = Hybrid()
    params = sc.resolve_params({"Nt": 8, "N_RF": 2, "K": 2, "csi_error": 0.0})
    ch = sc.draw(params, realisation_rng(0, "hybrid", 0))
    seen, scored = sc.problems(params, ch)
    assert scored is None  # scored on the solver's own problem ...
    np.testing.assert_array_equal(seen.H, ch["H"])  # ... which is the true channel


def test_imperfect_csi_hides_the_true_channel_and_has_the_stated_error_variance():
    sc = Hybrid()
    params = sc.resolve_params({"Nt": 16, "N_RF": 2, "K": 2, "csi_error": 0.1})
    ratios = []
    for i in range(300):
        ch = sc.draw(params, realisation_rng(0, "hybrid", i))
        seen = sc.problem(params, sc.seen(ch))
        assert not np.shares_memory(seen.H, ch["H"]) and not np.array_equal(seen.H, ch["H"])
        np.testing.assert_array_equal(seen.H, ch["H_hat"])
        err = np.sum(np.abs(ch["H_hat"] - ch["H"]) ** 2, axis=1)
        ratios.extend(err / np.sum(np.abs(ch["H"]) ** 2, axis=1))  # E = delta (||e||^2 = delta ||h||^2 on average)
    ratios = np.asarray(ratios)
    assert abs(ratios.mean() - 0.1) <= ci_halfwidth(ratios)
    assert "H" not in sc.seen(ch)


def test_true_channel_is_the_same_for_every_csi_error():
    sc = Hybrid()
    a = sc.draw(sc.resolve_params({"csi_error": 0.0}), realisation_rng(0, "hybrid", 3))
    b = sc.draw(sc.resolve_params({"csi_error": 0.3}), realisation_rng(0, "hybrid", 3))
    np.testing.assert_array_equal(a["H"], b["H"])


def test_external_channel_set_round_trip(tmp_path):
    rng = np.random.default_rng(9)
    H = rng.standard_normal((3, 2, 8)) + 1j * rng.standard_normal((3, 2, 8))
    write_channel_set(tmp_path / "ext.npz", H)
    sc = Hybrid()
    params = sc.resolve_params({"Nt": 8, "N_RF": 2, "K": 2})
    src = FileChannels(tmp_path / "ext.npz", sc, params)
    ch, _ = src.get(1)
    seen, scored = sc.problems(params, ch)
    np.testing.assert_array_equal(seen.H, H[1])
    assert scored is None
    write_channel_set(tmp_path / "est.npz", H, 2 * H)
    params = sc.resolve_params({"Nt": 8, "N_RF": 2, "K": 2, "csi_error": 0.1})
    seen, scored = sc.problems(params, FileChannels(tmp_path / "est.npz", sc, params).get(1)[0])
    np.testing.assert_array_equal(seen.H, 2 * H[1])
    np.testing.assert_array_equal(scored.H, H[1])


def test_single_user_closed_form_is_reached_by_two_phase_shifters():
    """K = 1, N_RF = 2: MRT at full power is optimal and realisable; the closed form is its rate."""
    seen, _ = problems(Nt=8, N_RF=2, K=1)
    h = seen.H[0]
    f = np.sqrt(seen.power) * h / np.linalg.norm(h)
    assert sum_rate(seen.H, f[:, None]) == pytest.approx(seen.closed_form_optimum(), rel=1e-12)


def test_torch_loss_matches_the_utility_and_its_finite_differences():
    torch = pytest.importorskip("torch")
    seen, _ = problems(Nt=6, N_RF=3, K=2)
    x = seen.initial("random", np.random.default_rng(10))
    t = {k: torch.tensor(v, requires_grad=True) for k, v in x.items()}
    loss = seen.loss_torch(t)
    assert float(loss.detach()) == pytest.approx(-seen.utility(x), rel=1e-12)
    loss.backward()
    rng = np.random.default_rng(11)
    for name in ("F_RF", "F_BB"):
        d = rng.standard_normal(x[name].shape) + 1j * rng.standard_normal(x[name].shape)
        h = 1e-6
        up = seen.utility({**x, name: x[name] + h * d})
        down = seen.utility({**x, name: x[name] - h * d})
        fd = -(up - down) / (2 * h)
        g = t[name].grad.numpy()  # dL/dRe + i dL/dIm: directional derivative Re <g, d>
        assert float(np.real(np.vdot(g, d))) == pytest.approx(fd, rel=1e-5, abs=1e-8)


# -- the solvers -------------------------------------------------------------------------------------------


def ctx(seed: int = 0) -> RunContext:
    return RunContext(np.random.default_rng(seed))


def assert_full_power_hybrid(problem: HybridProblem, x: dict) -> None:
    assert problem.feasibility(x).feasible
    np.testing.assert_allclose(np.abs(x["F_RF"]), 1.0, atol=1e-12)
    assert np.sum(np.abs(x["F_RF"] @ x["F_BB"]) ** 2) == pytest.approx(problem.power, rel=1e-9)


def test_element_update_equals_a_dense_grid_search():
    rng = np.random.default_rng(12)
    theta = np.linspace(0, 2 * np.pi, 400_001)
    grid = np.exp(1j * theta)
    for _ in range(20):
        eB, eD = (rng.standard_normal(2) + 1j * rng.standard_normal(2)) * rng.uniform(0.1, 2)
        zB = 2 * abs(eB) + rng.uniform(0, 3)  # the numerator and the denominator stay positive
        zD = 2 * abs(eD) + rng.uniform(0, 3)

        def ratio(x):
            return (zB + 2 * np.real(np.conj(x) * eB)) / (1 + zD + 2 * np.real(np.conj(x) * eD))

        best = ratio(element_update(zB, eB, zD, eD))
        assert best >= ratio(grid).max() - 1e-9
        assert best <= ratio(grid).max() + 1e-7  # the grid is fine enough to come this close


def test_water_filling_meets_the_power_and_the_kkt_conditions():
    q = np.array([0.5, 1.0, 4.0, 40.0])
    p = water_filling(q, 3.0, 1.0)
    assert np.sum(q * p) == pytest.approx(3.0, rel=1e-12)
    on = p > 0
    nu = q[on] * (p[on] + 1.0)  # p_k = nu / q_k - sigma2 on the active users
    np.testing.assert_allclose(nu, nu[0], rtol=1e-12)
    assert np.all(nu[0] / q[~on] <= 1.0)  # and nu / q_k <= sigma2 on the others
    assert not on[-1]


def test_element_altmax_decreases_f_in_every_element_sweep():
    seen, _ = problems(Nt=16, N_RF=5, K=3)
    sol = ElementAltMax().solve(seen, {}, ctx())
    for trace in sol.info["f_trace"]:
        assert np.all(np.diff(trace) <= 1e-12 * trace[0])
        assert len(trace) >= 2
    assert_full_power_hybrid(seen, sol.x)


def test_element_altmax_with_n_rf_equal_k_is_feasible_and_beats_its_start():
    seen, _ = problems(Nt=16, N_RF=3, K=3)
    sol = ElementAltMax().solve(seen, {}, ctx(1))
    assert_full_power_hybrid(seen, sol.x)
    assert seen.utility(sol.x) > seen.utility(seen.initial("random-zf", np.random.default_rng(1)))


@pytest.mark.parametrize("solver", [MoAltMin(), MmAltMin()], ids=["mo", "mm"])
@pytest.mark.parametrize("digital", ["ls", "zf", "wmmse"])
def test_altmin_error_never_increases_and_the_output_is_feasible(solver, digital):
    seen, _ = problems(Nt=12, N_RF=3, K=2)
    opts = {"digital": digital, "target_starts": 2, "max_outer": 30 if solver.name == "mo-altmin" else 300}
    sol = solver.solve(seen, opts, ctx(2))
    r = np.asarray(sol.info["residual"])
    assert np.all(np.diff(r) <= 1e-10 * r[0]) and r[-1] < r[0]
    assert_full_power_hybrid(seen, sol.x)


def test_whitened_digital_keeps_the_power_exact_and_wmmse_beats_zf():
    seen, _ = problems(Nt=10, N_RF=4, K=3, snr_db=0.0)
    F_RF = seen.initial("random-zf", np.random.default_rng(3))["F_RF"]
    rates = {}
    for m in ("zf", "wmmse"):
        F_BB = digital_precoder(seen.H, F_RF, seen.power, m)
        x = {"F_RF": F_RF, "F_BB": F_BB}
        assert_full_power_hybrid(seen, x)
        rates[m] = seen.utility(x)
    assert rates["wmmse"] >= rates["zf"] - 1e-9  # WMMSE from the ZF point never goes below it


def test_two_phase_shifters_realise_any_digital_precoder():
    rng = np.random.default_rng(13)
    F = rng.standard_normal((8, 3)) + 1j * rng.standard_normal((8, 3))
    F_RF, F_BB = two_phase_shifters(F, 7)
    np.testing.assert_allclose(np.abs(F_RF), 1.0, atol=1e-14)
    assert np.max(np.abs(F_RF @ F_BB - F)) <= 1e-10 * np.max(np.abs(F))
    with pytest.raises(ValueError, match="N_RF >= 2K"):
        two_phase_shifters(F, 5)


def test_with_n_rf_at_least_2k_the_hybrid_reaches_the_fully_digital_wmmse():
    seen, _ = problems(Nt=8, N_RF=4, K=2)
    ref = FdWmmse().solve(seen, {"starts": 3}, ctx(4))
    sol = FdWmmse2ps().solve(seen, {"starts": 3}, ctx(4))
    assert ref.x is None and ref.value is not None
    assert_full_power_hybrid(seen, sol.x)
    assert seen.utility(sol.x) == pytest.approx(ref.value, rel=1e-10)
    assert FdWmmse2ps().declines(problems(Nt=8, N_RF=3, K=2)[0], {}) is not None


def test_a_design_on_the_true_channel_scores_higher_than_one_on_the_estimate():
    """Imperfect CSI: handed the true channel instead of the estimate, a solver scores higher on average."""
    sc = Hybrid()
    params = sc.resolve_params({"Nt": 8, "N_RF": 4, "K": 2, "csi_error": 0.5, "snr_db": 20.0})
    gain = []
    for i in range(12):
        ch = sc.draw(params, realisation_rng(0, "hybrid", i))
        seen, scored = sc.problems(params, ch)
        opts = {"starts": 1, "max_iter": 200, "tol": 1e-4}
        on_estimate = FdWmmse2ps().solve(seen, opts, ctx(i)).x
        on_truth = FdWmmse2ps().solve(scored, opts, ctx(i)).x
        gain.append(scored.utility(on_truth) - scored.utility(on_estimate))
    gain = np.asarray(gain)
    assert gain.mean() > ci_halfwidth(gain, z=2.0)


def test_generic_solvers_run_on_hybrid_unchanged(tmp_path):
    """Through the API at a tiny size: the generic solvers give feasible rows, the reference row is unranked."""
    import wbench

    solvers = ["adam[iters=40]", "metaopt[iters=20,hidden=16,activations=tanh]",
               "multistart[starts=1,max_iter=20]", "random-zf", "fd-wmmse[starts=2]"]
    df = wbench.compare("hybrid", solvers, set={"Nt": 4, "N_RF": 2, "K": 2}, instances=2, db=tmp_path / "h.db",
                        quiet=True)
    rows = df[df["solver"] != "fd-wmmse"]
    assert set(rows["solver"]) == {"adam", "metaopt", "multistart", "random-zf"}
    assert (rows["status"] == "ok").all() and rows["feasible"].astype(bool).all()
    ref = df[df["solver"] == "fd-wmmse"]
    assert len(ref) == 2 and (ref["status"] == "ok").all() and ref["utility"].notna().all()
    lb = wbench.leaderboard(db=tmp_path / "h.db", scenario="hybrid")
    is_ref = lb["solver"].str.startswith("fd-wmmse")
    assert is_ref.sum() == 1 and lb.loc[is_ref, "rank"].isna().all()
    assert lb.loc[~is_ref, "rank"].notna().all()
    from wbench.render import to_markdown

    line = next(row for row in to_markdown(lb).splitlines() if "fd-wmmse" in row)
    assert line.split("|")[1].strip() == "ref"  # labelled a reference, not a bound


# -- GGML --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("grad_input", ["fresh", "accumulated"])
def test_ggml_returns_a_full_power_hybrid_better_than_its_start(grad_input):
    seen, _ = problems(Nt=8, N_RF=2, K=2)
    sol = Ggml().solve(seen, {"epochs": 60, "hidden": 32, "grad_input": grad_input}, ctx(5))
    assert_full_power_hybrid(seen, sol.x)
    trace = sol.info["rate_trace"]
    assert len(trace) == 60 and seen.utility(sol.x) == pytest.approx(max(trace), rel=1e-9)  # best iterate
    assert seen.utility(sol.x) > seen.utility(seen.initial("random-zf", np.random.default_rng(5)))


def test_ggml_loss_is_minus_mean_rate_plus_the_variance_penalty():
    torch = pytest.importorskip("torch")
    r = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    assert float(meta_loss(r, 0.2)) == pytest.approx(-7 / 3 + 0.2 * np.var([1, 2, 4], ddof=1), rel=1e-14)
    assert float(meta_loss(r[:1], 0.2)) == -1.0


def test_robust_channel_shrinks_by_the_error_norm_quantile():
    """eps_k is the 95% quantile of ||e_k||: about 95% of simulated error norms lie below it."""
    rng = np.random.default_rng(14)
    nt, delta = 16, 0.1
    H_hat = rng.standard_normal((1, nt)) + 1j * rng.standard_normal((1, nt))
    Ht = robust_channel(H_hat, delta)
    norm = np.linalg.norm(H_hat)
    eps = norm - np.linalg.norm(Ht)
    assert 0 < eps < norm
    np.testing.assert_allclose(Ht / np.linalg.norm(Ht), H_hat / norm, atol=1e-14)  # same direction
    e = np.sqrt(delta * norm ** 2 / nt / 2) * (rng.standard_normal((40000, nt)) + 1j * rng.standard_normal((40000, nt)))
    below = np.mean(np.linalg.norm(e, axis=1) <= eps)
    assert abs(below - 0.95) <= 4 * np.sqrt(0.95 * 0.05 / 40000)
