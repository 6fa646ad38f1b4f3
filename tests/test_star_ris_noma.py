"""``star-ris-noma`` (seed 003, SCENARIOS.md section 7): the channel against an element-by-element reference, the
MMSE-SIC rates against a received-signal simulation and the sum-capacity identity, the sets, the QoS and budget
constraints, torch == NumPy, FD gradients, and the ``ao-star`` baseline (monotone, feasible)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wbench.params import ParamError
from wbench.scenarios.star_ris_noma import StarRisNoma

SC = StarRisNoma()


def make(seed: int = 0, **given):
    params = SC.resolve_params(given)
    return SC.problem(params, SC.draw(params, np.random.default_rng(seed)))


def random_point(pr, seed: int = 1):
    rng = np.random.default_rng(seed)
    n, m = pr.F.shape[0], pr.F.shape[2]
    hi = pr.variables["delta"].constraint.hi
    theta = np.exp(2j * np.pi * rng.uniform(size=(2, n, m)))
    p = rng.uniform(0.1, 1.0, pr.K)
    return {"p": p / p.sum() * pr.p_max * 0.9, "delta": rng.uniform(0.2 * hi, hi, (2, n, m)),
            "alpha": rng.uniform(0.05, 0.95, (n, m)), "theta": theta}


def reference(pr, x, second_order=None):
    """Element by element: user channels, and the per-RIS maps of the amplifier noise to the BS."""
    so = pr.second_order if second_order is None else second_order
    n_ris, n_bs, m = pr.F.shape
    c = np.zeros((2, n_ris, m), complex)
    for s in range(2):
        split = x["alpha"] if s == 0 else 1 - x["alpha"]
        c[s] = np.sqrt(x["delta"][s] * split) * x["theta"][s]
    h = np.zeros((pr.K, n_bs), complex)
    for k in range(pr.K):
        n, s = pr.layout.assoc[k], pr.layout.side[k]
        for mm in range(m):
            out = c[s, n, mm] * pr.f[k, mm]  # what element mm of RIS n re-radiates
            h[k] += pr.F[n][:, mm] * out
            if so:
                for n2 in range(n + 1, n_ris):
                    for m2 in range(m):
                        h[k] += pr.F[n2][:, m2] * c[pr.second_side, n2, m2] * pr.G[n, n2][m2, mm] * out
    # noise of element (n, mm, side s) reaches the BS through column noise_map[n][:, mm] times c[s, n, mm]
    noise_map = []
    for n in range(n_ris):
        a = pr.F[n].copy()
        if so:
            for n2 in range(n + 1, n_ris):
                a = a + pr.F[n2] @ np.diag(c[pr.second_side, n2]) @ pr.G[n, n2]
        noise_map.append(a)
    return h, c, noise_map


def test_channel_matches_the_element_by_element_reference():
    pr = make(N=3, K=6, M=3)
    x = random_point(pr)
    h, _, _ = pr.channel_parts(np, x)
    np.testing.assert_allclose(h, reference(pr, x)[0], rtol=1e-10, atol=0)


def test_single_reflection_drops_exactly_the_second_order_term():
    pr_on, pr_off = make(N=3, K=6, M=3), make(N=3, K=6, M=3, second_order=False)
    x = random_point(pr_on)
    h_on, _, _ = pr_on.channel_parts(np, x)
    h_off, _, _ = pr_off.channel_parts(np, x)
    np.testing.assert_allclose(h_off, reference(pr_on, x, second_order=False)[0], rtol=1e-10)
    # the closest RIS (index N-1) has no second-order path: its users are unchanged; the others differ
    closest = [k for k in range(6) if pr_on.layout.assoc[k] == 2]
    others = [k for k in range(6) if pr_on.layout.assoc[k] < 2]
    np.testing.assert_allclose(h_on[closest], h_off[closest], rtol=1e-12)
    assert np.all(np.linalg.norm(h_on[others] - h_off[others], axis=1) > 1e-6 * np.linalg.norm(h_off[others], axis=1))
    # one RIS: the option changes nothing
    one_on, one_off = make(N=1, K=2), make(N=1, K=2, second_order=False)
    y = random_point(one_on)
    assert one_on.utility(y) == pytest.approx(one_off.utility(y), rel=1e-12)


def test_passive_is_the_unit_gain_special_case():
    pr = make(delta_max_db=0.0)
    assert pr.variables["delta"].constraint.hi == 1.0
    x = random_point(pr)
    x["delta"] = np.ones_like(x["delta"])
    h, _, c = pr.channel_parts(np, x)
    np.testing.assert_allclose(np.abs(c[0]) ** 2 + np.abs(c[1]) ** 2, 1.0, rtol=1e-12)  # energy conserved
    np.testing.assert_allclose(h, reference(pr, x)[0], rtol=1e-10)


def test_sum_rate_is_the_log_det_sum_capacity_without_amplifier_noise():
    pr = make(N=2, K=6, N_BS=3)
    x = random_point(pr)
    h = reference(pr, x)[0]
    S = sum(x["p"][k] * np.outer(h[k], h[k].conj()) for k in range(pr.K))
    expect = np.linalg.slogdet(np.eye(3) + S)[1] / math.log(2)
    assert pr.utility(x) == pytest.approx(expect, rel=1e-10)
    assert pr.rates(x).sum() == pytest.approx(expect, rel=1e-10)  # MMSE-SIC in any order reaches it


@pytest.mark.parametrize("noise", [None, "-75"])
def test_rates_equal_a_received_signal_simulation_with_mmse_sic(noise):
    """Symbols, amplifier noise of every element output and BS noise are drawn and propagated element by
    element; the BS decodes in the documented order (closest RIS first, then strongest ||h||^2) with MMSE
    receivers and perfect cancellation; the measured SINRs give the rates."""
    pr = make(seed=3, N=2, K=4, N_BS=2, M=3, ris_noise_dbm=noise, delta_max_db=10.0, P_max=1e-3)
    x = random_point(pr, seed=4)
    h, c, amap = reference(pr, x)
    rng = np.random.default_rng(7)
    T = 40000

    def cn(*shape):
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)

    s = cn(pr.K, T)
    y = np.zeros((h.shape[1], T), complex)
    for k in range(pr.K):
        y += np.sqrt(x["p"][k]) * np.outer(h[k], s[k])
    y += cn(h.shape[1], T)  # BS noise (normalised)
    for n, a in enumerate(amap):  # every element's amplifier noise on both outputs
        for side in range(2):
            z = np.sqrt(pr.ris_noise) * cn(c.shape[2], T)
            y += a @ (c[side, n][:, None] * z)
    # decoding order: closest RIS (the highest index) first, strongest first inside it
    gains = np.sum(np.abs(h) ** 2, axis=1)
    order = []
    for n in range(pr.F.shape[0] - 1, -1, -1):
        order += sorted([k for k in range(pr.K) if pr.layout.assoc[k] == n], key=lambda k: -gains[k])
    C = np.eye(h.shape[1], dtype=complex)
    for n, a in enumerate(amap):
        C += pr.ris_noise * a @ np.diag(np.abs(c[0, n]) ** 2 + np.abs(c[1, n]) ** 2) @ a.conj().T
    measured = np.zeros(pr.K)
    rest = y.copy()
    for i, k in enumerate(order):
        later = order[i + 1:]
        R = C + sum((x["p"][j] * np.outer(h[j], h[j].conj()) for j in later), np.zeros_like(C))
        w = np.linalg.solve(R, h[k])
        signal = x["p"][k] * np.abs(w.conj() @ h[k]) ** 2
        disturbance = w.conj() @ (rest - np.sqrt(x["p"][k]) * np.outer(h[k], s[k]))
        measured[k] = np.log2(1 + signal / np.mean(np.abs(disturbance) ** 2))
        rest = rest - np.sqrt(x["p"][k]) * np.outer(h[k], s[k])  # perfect SIC
    rates = pr.rates(x)
    # the SINR is a ratio of sample means over T draws: about 1 / sqrt(T) relative, i.e. 0.01 bit here
    np.testing.assert_allclose(measured, rates, atol=0.03)
    if noise is not None:  # the amplifier noise matters here: dropping it would miss by more
        assert np.max(np.abs(make(seed=3, N=2, K=4, N_BS=2, M=3, delta_max_db=10.0, P_max=1e-3).rates(x)
                             - rates)) > 0.1


def test_sets_qos_and_budget():
    pr = make(ris_power_budget="1e-3", ris_noise_dbm="-80")
    x = random_point(pr)
    bad = dict(x, alpha=x["alpha"] + 1.0)
    assert pr.feasibility(bad).violations["alpha"] > 0.5 and not pr.feasibility(bad).feasible
    over = dict(x, delta=x["delta"] * 1.5)
    assert pr.feasibility(over).violations["delta"] > 0
    starved = dict(x, p=np.r_[0.0, x["p"][1:]])
    viol = pr.feasibility(starved)
    assert viol.violations["qos"] == pytest.approx(pr.r_min, rel=1e-9)  # R = 0 for the silent user
    # the budget's left side, element by element (noise-normalised f times sigma2 is the received power)
    _, c, _ = reference(pr, x)
    out = np.zeros(pr.F.shape[0])
    for n in range(pr.F.shape[0]):
        for mm in range(pr.F.shape[2]):
            for side in range(2):
                inc = sum(x["p"][k] * abs(pr.f[k, mm]) ** 2 * pr.sigma2 for k in range(pr.K)
                          if pr.layout.assoc[k] == n and pr.layout.side[k] == side)
                out[n] += abs(c[side, n, mm]) ** 2 * (inc + pr.ris_noise * pr.sigma2)
    np.testing.assert_allclose(pr.constraints(x)["ris_power"], 1 - out / 1e-3, rtol=1e-10)


def test_torch_equals_numpy_and_fd_gradients():
    pr = make(N=2, K=4, M=2, ris_noise_dbm="-85", ris_power_budget="0.01", sic_order="distance")
    x = random_point(pr)
    xt = {k: torch.tensor(v, requires_grad=True) for k, v in x.items()}
    loss = pr.loss_torch(xt)
    assert float(loss.detach()) == pytest.approx(-pr.utility(x), rel=1e-12)
    cons_t = pr.constraints_torch(xt)
    for key, val in pr.constraints(x).items():
        np.testing.assert_allclose(cons_t[key].detach().numpy(), val, rtol=1e-10, atol=1e-12)
    # finite differences of the loss and of one QoS entry in every variable (random directions)
    rng = np.random.default_rng(5)
    for fn_t, fn_np in ((lambda z: pr.loss_torch(z), lambda z: -pr.utility(z)),
                        (lambda z: pr.constraints_torch(z)["qos"][1], lambda z: pr.constraints(z)["qos"][1])):
        grads = torch.autograd.grad(fn_t(xt), list(xt.values()))
        for (name, v), g in zip(x.items(), grads):
            d = rng.standard_normal(v.shape) + (1j * rng.standard_normal(v.shape) if np.iscomplexobj(v) else 0)
            d = d * (0.01 * np.abs(v).mean() / np.abs(d).mean())
            eps = 1e-4
            fd = (fn_np(dict(x, **{name: v + eps * d})) - fn_np(dict(x, **{name: v - eps * d}))) / (2 * eps)
            an = float(np.real(np.sum(np.conj(g.numpy()) * d))) if np.iscomplexobj(v) else float(np.sum(g.numpy() * d))
            assert an == pytest.approx(fd, rel=1e-4, abs=1e-8), name


def test_decoding_order_follows_the_documented_rule():
    pr = make(N=2, K=6, sic_order="gain")
    x = random_point(pr)
    h = reference(pr, x)[0]
    order = pr.decoding_order(h)
    assert [pr.layout.assoc[k] for k in order] == [1, 1, 1, 0, 0, 0]  # closest RIS first
    g = np.sum(np.abs(h) ** 2, axis=1)
    assert all(g[order[i]] >= g[order[i + 1]] for i in (0, 1, 3, 4))
    pd = make(N=2, K=6, sic_order="distance")
    od = pd.decoding_order(h)
    assert all(pd.d_user[od[i]] <= pd.d_user[od[i + 1]] for i in (0, 1, 3, 4))


def test_layout_and_bad_params():
    pr = make(N=2, K=8)
    assert pr.layout.assoc == (0, 0, 0, 0, 1, 1, 1, 1) and pr.layout.side == (0, 0, 1, 1, 0, 0, 1, 1)
    with pytest.raises(ParamError, match="multiple of N"):
        SC.resolve_params({"N": 3, "K": 4})
    with pytest.raises(ParamError, match="ris_power_budget"):
        SC.resolve_params({"ris_power_budget": "-1"})
    with pytest.raises(ParamError, match="ris_noise_dbm"):
        SC.resolve_params({"ris_noise_dbm": "loud"})


# -- ao-star --------------------------------------------------------------------------------------------


def run_ao(pr, **options):
    from wbench.solver import RunContext
    from wbench.solvers.alternating.ao_star import AoStar

    return AoStar().solve(pr, options, RunContext(np.random.default_rng(0)))


@pytest.mark.parametrize("given", [{"K": 6, "N": 2, "M": 2, "N_BS": 2},
                                   {"K": 4, "N": 2, "M": 2, "ris_noise_dbm": "-70", "ris_power_budget": "1e-4"}])
def test_ao_star_is_monotone_and_ends_feasible(given):
    pr = make(seed=2, **given)
    sol = run_ao(pr, max_outer=4, pg_iter=3)
    merits, rates, short = (np.array(sol.info[k]) for k in ("merit_trace", "rate_trace", "shortfall_trace"))
    assert np.all(np.diff(merits) >= -1e-9 * np.abs(merits[:-1]))
    # once the constraints hold, the merit is the sum rate and the sum rate never decreases
    first = int(np.argmax(short <= 0))
    assert short[first] <= 0
    assert np.all(np.diff(rates[first:]) >= -1e-9 * rates[first:-1])
    assert merits[-1] > merits[0]  # it did something
    assert pr.feasibility(sol.x).feasible
    assert pr.utility(sol.x) == pytest.approx(rates[-1], rel=1e-9)


def test_sca_power_step_repairs_qos_without_lowering_the_merit():
    from wbench.solvers.alternating.ao_star import merit, sca_power_step

    pr = make(seed=4, K=6, N=2, M=2, N_BS=2, R_min=2.0)
    x = pr.initial()
    x["p"] = np.r_[pr.p_max - 5e-3, np.full(5, 1e-3)]  # five users starved: QoS violated
    assert not pr.feasibility(x).feasible
    p_new = sca_power_step(pr, x, 10.0)
    y = dict(x, p=p_new)
    assert p_new.min() >= 0 and p_new.sum() <= pr.p_max * (1 + 1e-9)
    assert merit(pr, y, 10.0) > merit(pr, x, 10.0)
    assert np.min(pr.constraints(y)["qos"]) > -1e-3  # the convex surrogate implies the true QoS


def test_ao_star_random_phases_keeps_them():
    pr = make(seed=1)
    sol = run_ao(pr, max_outer=2, pg_iter=2, phases="random")
    theta = sol.x["theta"]
    rng = np.random.default_rng(0)
    pr.initial("uniform", rng)  # the start draws nothing from the generator ...
    np.testing.assert_allclose(theta, np.exp(2j * np.pi * rng.uniform(size=theta.shape)), atol=1e-12)


def test_generic_solvers_and_ao_star_run_through_compare(tmp_path):
    import wbench

    df = wbench.compare("star-ris-noma", ["adam[iters=20]", "metaopt[iters=5]", "ao-star[max_outer=2,pg_iter=2]"],
                        set={"N": 1, "K": 2, "M": 2, "N_BS": 2}, instances=1, db=tmp_path / "s.db", quiet=True,
                        jobs=1)
    assert set(df["solver"]) == {"adam", "metaopt", "ao-star"}
    assert (df["status"] == "ok").all()
    ao = df[df["solver"] == "ao-star"].iloc[0]
    assert bool(ao["feasible"])
    # every score is a sum rate the scenario can reach: positive and finite
    assert np.all(np.isfinite(df["utility"].astype(float))) and np.all(df["utility"].astype(float) > 0)


def test_action_mapping_always_lands_in_the_sets():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from wbench.scenarios.star_ris_noma import action_size, action_to_vars

    pr = make(N=2, K=4, M=2, ris_noise_dbm="-80")
    n = action_size(pr)
    assert n == 4 + 5 * 2 * 2

    @settings(max_examples=30, deadline=None)
    @given(st.lists(st.floats(-1e3, 1e3), min_size=n, max_size=n))
    def check(a):
        x = action_to_vars(pr, np.array(a))
        f = pr.feasibility(x)
        sets = {k: v for k, v in f.violations.items() if k in pr.variables}
        assert all(v <= f.tolerances[k] for k, v in sets.items()), sets
        assert x["p"].sum() == pytest.approx(pr.p_max, rel=1e-9)
        assert np.isfinite(pr.utility(x))

    check()
    a = np.random.default_rng(0).standard_normal(n)
    xt = action_to_vars(pr, torch.tensor(a))
    for k, v in action_to_vars(pr, a).items():
        np.testing.assert_allclose(xt[k].numpy(), v, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="K \\+ 5 N M"):
        action_to_vars(pr, a[:-1])
