"""The ``bdris`` model (seed 000, section VI) against independent constructions and closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from wbench.params import ParamError
from wbench.scenarios.bdris import Bdris, dbm_to_watt, path_loss


def make(seed=0, **given):
    sc = Bdris()
    params = sc.resolve_params(given)
    return sc.problem(params, sc.draw(params, np.random.default_rng(seed)))


def test_path_loss_constants_of_the_paper():
    # xi0 = -30 dB at 1 m, exponent 2: 50 m -> -30 - 20 log10(50) dB
    assert 10 * np.log10(path_loss(50.0)) == pytest.approx(-30 - 20 * np.log10(50))
    assert dbm_to_watt(-80) == pytest.approx(1e-11)
    prob = make()
    assert prob.gain == pytest.approx(path_loss(50) * path_loss(2.5) / 1e-11)


def test_sum_rate_equals_the_received_signal_model_in_physical_units():
    prob = make(seed=3, K=3, B=6, Nt=2, pt_dbm=20)
    x = prob.initial("random", np.random.default_rng(1))
    G = np.sqrt(path_loss(50)) * prob.G  # physical channels
    H = np.sqrt(path_loss(2.5)) * prob.Hr
    sigma2 = dbm_to_watt(-80)
    total = 0.0
    for k in range(3):
        rx = [H[k].conj() @ x["Phi"] @ G @ x["P"][:, j] for j in range(3)]
        interference = sum(abs(r) ** 2 for j, r in enumerate(rx) if j != k)
        total += np.log2(1 + abs(rx[k]) ** 2 / (interference + sigma2))
    assert prob.utility(x) == pytest.approx(total, rel=1e-10)


def test_group_size_one_is_the_diagonal_ris_and_group_size_b_is_fully_connected():
    rng = np.random.default_rng(0)
    diag, g1 = make(seed=5, architecture="diagonal", B=8), make(seed=5, architecture="group", group_size=1, B=8)
    phi = np.exp(2j * np.pi * rng.random(8))
    P = diag.initial("random", rng)["P"]
    assert g1.feasibility({"P": P, "Phi": np.diag(phi)}).feasible
    assert diag.utility({"P": P, "Phi": phi}) == pytest.approx(g1.utility({"P": P, "Phi": np.diag(phi)}), rel=1e-12)
    fully, g8 = make(seed=5, architecture="fully", B=8), make(seed=5, architecture="group", group_size=8, B=8)
    x = fully.initial("random", rng)
    assert g8.feasibility(x).feasible and fully.feasibility(x).feasible
    assert fully.utility(x) == pytest.approx(g8.utility(x), rel=1e-12)


def test_feasibility_rejects_a_scattering_matrix_off_the_unitary_group():
    prob = make(architecture="fully", B=6)
    x = prob.initial("random", np.random.default_rng(0))
    assert prob.feasibility(x).feasible
    bad = dict(x, Phi=x["Phi"] * (1 + 1e-4))  # ||Phi^H Phi - I||_F ~ 2e-4 sqrt(6) > 1e-6
    f = prob.feasibility(bad)
    assert not f.feasible and f.violations["Phi"] > f.tolerances["Phi"]
    sym = make(architecture="fully", B=6, symmetric=True)
    assert not sym.feasibility(x).feasible  # a generic unitary matrix is not reciprocal


def test_single_user_closed_forms_are_attained_by_constructed_optima():
    # fully connected: P ||h||^2 sigma_max(G)^2 (in noise-normalised units: times the gain)
    prob = make(seed=2, K=1, Nt=3, B=5, architecture="fully")
    u, s, vh = np.linalg.svd(prob.G)
    h = prob.Hr[0]
    def with_first_column(v):
        q, _ = np.linalg.qr(np.column_stack([v, np.random.default_rng(0).normal(size=(5, 4))]))
        return q * (v[0] / q[0, 0]) / abs(v[0] / q[0, 0])
    Phi = with_first_column(h / np.linalg.norm(h)) @ with_first_column(u[:, 0]).conj().T
    P = (vh[0].conj() * np.sqrt(prob.power))[:, None]
    x = {"P": P, "Phi": Phi}
    assert prob.feasibility(x).feasible
    closed = np.log2(1 + prob.gain * prob.power * np.sum(np.abs(h) ** 2) * s[0] ** 2)
    assert prob.utility(x) == pytest.approx(closed, rel=1e-10)
    # diagonal, one BS antenna: P (sum_b |h_b| |g_b|)^2
    d = make(seed=2, K=1, Nt=1, B=7, architecture="diagonal")
    phi = np.exp(1j * (np.angle(d.Hr[0]) - np.angle(d.G[:, 0])))
    xd = {"P": np.array([[np.sqrt(d.power)]], complex), "Phi": phi}
    closed_d = np.log2(1 + d.gain * d.power * np.sum(np.abs(d.Hr[0]) * np.abs(d.G[:, 0])) ** 2)
    assert d.utility(xd) == pytest.approx(closed_d, rel=1e-12)


def test_group_size_must_divide_b():
    with pytest.raises(ParamError, match="multiple of group_size"):
        Bdris().resolve_params({"architecture": "group", "B": 10, "group_size": 4})


def test_wmmse_optimises_the_precoder_on_the_effective_channel():
    """On bdris, WMMSE sees the MU-MISO problem of the effective channel with Phi held at its start:
    with one user it reaches the MRT capacity of that channel, log2(1 + ||a||^2 P)."""
    from wbench.solver import RunContext
    from wbench.solvers.wmmse.wmmse import Wmmse

    prob = make(seed=4, K=1, Nt=3, B=6, architecture="fully")
    sol = Wmmse().solve(prob, {"init": "mrt", "starts": 1}, RunContext(np.random.default_rng(0)))
    np.testing.assert_array_equal(sol.x["Phi"], np.eye(6))
    a = prob.effective_channel(np.eye(6))[0]
    assert prob.feasibility(sol.x).feasible
    assert prob.utility(sol.x) == pytest.approx(np.log2(1 + prob.power * np.sum(np.abs(a) ** 2)), rel=1e-9)
    multi = make(seed=4, K=3, Nt=4, B=8, architecture="group", group_size=4)
    sol = Wmmse().solve(multi, {"starts": 3}, RunContext(np.random.default_rng(1)))
    assert multi.feasibility(sol.x).feasible
    assert multi.utility(sol.x) == pytest.approx(max(sol.info["start_wsr"]), rel=1e-12)


def test_closed_form_row_matches_the_constructed_optima_and_ao_reaches_it(tmp_path, fresh_registry):
    """The `closed-form` bound row equals the constructed single-user optima, applies only where a closed
    form exists (skipped with a note for K > 1), and the conventional solver reaches it."""
    from tests.helpers import compare, stored
    from wbench import engine
    from wbench.selection import select

    prob = make(seed=2, K=1, Nt=3, B=5, architecture="fully")
    s = np.linalg.svd(prob.G, compute_uv=False)[0]
    assert prob.closed_form_optimum() == pytest.approx(
        np.log2(1 + prob.gain * prob.power * np.sum(np.abs(prob.Hr[0]) ** 2) * s**2), rel=1e-12)
    assert make(K=2).closed_form_optimum() is None
    assert make(K=1, Nt=2, architecture="diagonal").closed_form_optimum() is None
    db = tmp_path / "cf.db"
    assert compare(db, "--solvers", "closed-form,ao[tol=1e-10]", "--set", "K=1", "--set", "Nt=2", "--set", "B=6",
                   "--instances", "2", scenario="bdris") == 0
    rows = stored(db)
    bound = {(r["params"], r["instance"]): r["utility"] for r in rows if r["solver"] == "closed-form"}
    assert len(bound) == 2  # the default sweep: fully has one, diagonal with Nt=2 has none
    ao = [r for r in rows if r["solver"] == "ao" and (r["params"], r["instance"]) in bound]
    assert len(ao) == 2 and all(r["status"] == "ok" for r in ao)
    for r in ao:
        assert r["utility"] == pytest.approx(bound[(r["params"], r["instance"])], rel=1e-8)
    configs = engine.build_configs("bdris", {"K": "2"}, {}, 0)
    specs, _ = select(fresh_registry, "closed-form", "bdris")
    from wbench.store import Store
    with Store(tmp_path / "n.db") as st:
        plan = engine.plan(st, configs, specs, 1)
    assert plan.tasks == [] and all("closed-form skipped" in n for n in plan.notes)
