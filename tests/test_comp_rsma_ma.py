"""``comp-rsma-ma`` (seed 004, SCENARIOS.md §6): oracles of the rate model, the sets and the constraints, and
the solvers that run on it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import wbench
from wbench.channels.channelset import realisation_rng
from wbench.params import ParamError
from wbench.registry import get_registry
from wbench.solver import RunContext
from wbench.solvers.common import autodiff
from wbench.solvers.local.multistart import _Formulation

TINY = {"N": 2, "I": 2, "K": 2, "L": 3, "Q": 3}


def make(index: int = 0, **over):
    sc = get_registry().scenario("comp-rsma-ma")
    p = sc.resolve_params(over)
    return sc, p, sc.problem(p, sc.draw(p, realisation_rng(7, sc.name, index)))


def random_point(prob, seed=0):
    rng = np.random.default_rng(seed)
    x = prob.initial("random", rng)
    if "c" in x:
        x["c"] = rng.uniform(0, 0.5, x["c"].shape)
    return x


# -- the rate model ------------------------------------------------------------------------------------

def test_received_signal_monte_carlo_equals_the_coherent_sinrs():
    """Simulate y_k = sum_n h_nk^H x_n + n_k (eqs. (6)-(7)) BS by BS with Gaussian symbols; the SINR of decoding
    a stream by its correlation with y (common first, then the private after removing the common) is the
    coherent formula. The printed eq. (10) is not."""
    _, _, prob = make(1, K=3, pt_dbm=30.0)
    _, _, paper = make(1, K=3, pt_dbm=30.0, sinr="paper")
    x = random_point(prob, 3)
    A = prob.channel_rows(x["r"])  # (K, N I)
    P = x["P"]
    n_bs, i = 2, 4
    rng = np.random.default_rng(0)
    m = 200_000
    s = (rng.standard_normal((P.shape[1], m)) + 1j * rng.standard_normal((P.shape[1], m))) / np.sqrt(2)
    noise = (rng.standard_normal((3, m)) + 1j * rng.standard_normal((3, m))) / np.sqrt(2)
    y = noise.copy()
    for n in range(n_bs):  # x_n = P_n s, received through h_{n,k}
        rows = slice(n * i, (n + 1) * i)
        y += A[:, rows] @ (P[rows] @ s)

    def fraction(y_k, s_j):  # |E y s*|^2 / E|y|^2 = SINR / (1 + SINR) for a stream decoded by correlation
        return np.abs(np.mean(y_k * s_j.conj())) ** 2 / np.mean(np.abs(y_k) ** 2)

    r_c, r_p = prob.rate_parts(x)
    pr_c, pr_p = paper.rate_parts(x)
    worst_paper = 0.0
    for k in range(3):
        f_c = fraction(y[k], s[0])
        after_sic = y[k] - (A[k] @ P[:, 0]) * s[0]
        f_p = fraction(after_sic, s[1 + k])
        sinr_c, sinr_p = 2 ** r_c[k] - 1, 2 ** r_p[k] - 1
        assert f_c == pytest.approx(sinr_c / (1 + sinr_c), abs=0.01)
        assert f_p == pytest.approx(sinr_p / (1 + sinr_p), abs=0.01)
        ps, pc = 2 ** pr_p[k] - 1, 2 ** pr_c[k] - 1
        worst_paper = max(worst_paper, abs(f_p - ps / (1 + ps)), abs(f_c - pc / (1 + pc)))
    assert worst_paper > 0.03  # the printed SINRs are another model (a finding, SCENARIOS.md §6)


@pytest.mark.parametrize("sinr", ["coherent", "paper"])
def test_zero_common_power_is_exactly_sdma(sinr):
    _, _, rs = make(2, sinr=sinr)
    _, _, sd = make(2, sinr=sinr, scheme="sdma")
    x = random_point(rs, 1)
    x["P"][:, 0] = 0.0
    r_c, r_p = rs.rate_parts(x)
    assert np.all(r_c == 0.0)
    xs = {"P": x["P"][:, 1:], "r": x["r"]}
    _, r_p_sdma = sd.rate_parts(xs)
    np.testing.assert_allclose(r_p, r_p_sdma, rtol=1e-13)  # the same formula up to BLAS rounding
    x["c"] = np.zeros(4)
    assert rs.utility(x) == pytest.approx(sd.utility(xs), rel=1e-13)
    # the warm-start embedding of sdma in rsma is this point
    emb = rs.variant(movable=False).embed_sdma({"P": xs["P"]})
    np.testing.assert_array_equal(emb["P"], x["P"])


def test_region_zero_and_reference_point_equal_fpa():
    _, _, ma = make(3)
    _, _, fpa = make(3, antennas="fpa")
    _, _, zero = make(3, region=0.0)
    assert "r" in ma.variables and "r" not in fpa.variables and "r" not in zero.variables
    x = random_point(ma, 2)
    x_fixed = {k: v for k, v in x.items() if k != "r"}
    x["r"] = np.zeros((4, 2))
    assert ma.utility(x) == pytest.approx(fpa.utility(x_fixed), rel=1e-13)
    assert zero.utility(x_fixed) == fpa.utility(x_fixed)
    for k, v in ma.constraints(x).items():
        np.testing.assert_allclose(v, fpa.constraints(x_fixed)[k], rtol=1e-12, atol=1e-12)
    # the fpa warm stage of the ma problem keeps the utility through its embedding
    warm = ma.warm_start()
    assert warm.name == "fpa"
    assert ma.utility(warm.embed(x_fixed)) == pytest.approx(warm.problem.utility(x_fixed), rel=1e-13)


def test_movable_antennas_change_the_channel():
    _, _, ma = make(4)
    x = random_point(ma, 4)
    u0 = ma.utility(x)
    x["r"] = np.full((4, 2), 0.7)
    assert abs(ma.utility(x) - u0) > 1e-6


# -- sets and constraints ------------------------------------------------------------------------------

def test_block_power_projection_per_bs():
    _, _, prob = make(0)
    P = np.zeros((8, 5), complex)
    rng = np.random.default_rng(0)
    P[:4] = 5.0 * (rng.standard_normal((4, 5)) + 1j * rng.standard_normal((4, 5)))  # BS 1: over budget
    P[4:] = 0.01 * rng.standard_normal((4, 5))  # BS 2: within budget
    budget = prob.power
    proj = prob.project({"P": P, "c": np.array([-1.0, 0.2, 0.3, 0.1]), "r": np.full((4, 2), 5.0)})
    Q = proj["P"]
    assert np.sum(np.abs(Q[:4]) ** 2) == pytest.approx(budget, rel=1e-12)
    np.testing.assert_array_equal(Q[4:], P[4:])
    # block-wise scaling is the Euclidean projection: no feasible point is closer
    for _ in range(50):
        z = prob.initial("random", rng)["P"] * rng.uniform(0, 1)
        assert np.linalg.norm(P - z) >= np.linalg.norm(P - Q) - 1e-12
    np.testing.assert_array_equal(proj["c"], [0.0, 0.2, 0.3, 0.1])
    assert np.all(proj["r"] == 1.0)
    assert prob.variables["P"].constraint.violation(Q) <= 1e-12


def test_qos_violation_is_infeasible_not_an_error():
    _, _, prob = make(0, R_th=50.0)
    x = prob.initial("mrt")
    feas = prob.feasibility(x)
    assert not feas.feasible and feas.violations["qos"] > 1.0
    x["c"] = np.full(4, 100.0)  # a split above R_c violates the common-rate constraint
    assert prob.feasibility(x).violations["common"] > 1.0


def test_initial_points():
    _, _, prob = make(0)
    for method in prob.init_methods:
        x = prob.initial(method, np.random.default_rng(1))
        powers = prob.variables["P"].constraint.block_powers(x["P"])
        np.testing.assert_allclose(powers, prob.power, rtol=1e-12)  # every BS at full power
        assert np.all(x["c"] == 0.0)
        if method != "random":
            assert np.all(x["r"] == 0.0)


@pytest.mark.parametrize("sinr", ["coherent", "paper"])
def test_gradients_match_finite_differences(sinr):
    """torch autograd of the loss and of every constraint against central differences of the NumPy model,
    in the real and imaginary parts of P and in the positions r."""
    _, _, prob = make(5, sinr=sinr, **TINY)
    x = random_point(prob, 5)
    x["r"] = np.random.default_rng(1).uniform(-0.9, 0.9, (2, 2))

    def numpy_values(z):
        cons = prob.constraints(z)
        return np.concatenate([[-prob.utility(z)], cons["qos"], cons["common"]])

    xt = autodiff.to_torch(prob, x, requires_grad=True)
    cons_t = prob.constraints_torch(xt)
    outs = torch.cat([prob.loss_torch(xt).reshape(1), cons_t["qos"], cons_t["common"]])
    np.testing.assert_allclose(outs.detach().numpy(), numpy_values(x), rtol=1e-12, atol=1e-12)
    h = 1e-6
    for row in range(outs.numel()):
        gP, gr = torch.autograd.grad(outs[row], [xt["P"], xt["r"]], retain_graph=True)
        for idx in [(0, 0), (1, 1), (3, 2), (2, 0)]:
            for unit, part in ((1.0, gP.real), (1j, gP.imag)):
                zp, zm = dict(x), dict(x)
                zp["P"], zm["P"] = x["P"].copy(), x["P"].copy()
                zp["P"][idx] += unit * h
                zm["P"][idx] -= unit * h
                fd = (numpy_values(zp)[row] - numpy_values(zm)[row]) / (2 * h)
                assert float(part[idx]) == pytest.approx(fd, rel=1e-5, abs=1e-7)
        for idx in np.ndindex(2, 2):
            zp, zm = dict(x), dict(x)
            zp["r"], zm["r"] = x["r"].copy(), x["r"].copy()
            zp["r"][idx] += h
            zm["r"][idx] -= h
            fd = (numpy_values(zp)[row] - numpy_values(zm)[row]) / (2 * h)
            assert float(gr[idx]) == pytest.approx(fd, rel=1e-5, abs=1e-7)


def test_bad_parameters_are_one_line_errors():
    sc = get_registry().scenario("comp-rsma-ma")
    with pytest.raises(ParamError, match="R_th"):
        sc.resolve_params({"R_th": -1})
    with pytest.raises(ParamError, match="scheme"):
        sc.resolve_params({"scheme": "noma"})
    with pytest.raises(ParamError, match="region"):
        sc.resolve_params({"region": -0.5})


# -- solvers -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["rsma", "sdma"])
def test_multistart_is_feasible_on_a_tiny_instance(scheme):
    reg = get_registry()
    _, _, prob = make(6, scheme=scheme, R_th=0.3, **TINY)
    ms = reg.solver("multistart")
    assert ms.declines(prob, {}) is None
    # the QoS and common-rate rows get their exact Jacobian from constraints_torch (not finite differences)
    assert _Formulation(prob).torch_constraints
    sol = ms.solve(prob, {"starts": 2, "max_iter": 200}, RunContext(np.random.default_rng(0)))
    feas = prob.feasibility(sol.x)
    assert feas.feasible, feas.violations
    start = prob.initial("paper", np.random.default_rng(0))
    assert prob.utility(sol.x) >= prob.utility(start)
    if scheme == "rsma":  # at an optimum the split uses the whole common rate
        r_c, _ = prob.rate_parts(sol.x)
        assert sol.x["c"].sum() == pytest.approx(r_c.min(), abs=2e-3)


def test_compare_gives_ok_or_infeasible(tmp_path):
    df = wbench.compare("comp-rsma-ma", ["adam[iters=30]", "multistart[starts=1,max_iter=40]"],
                        set={**TINY, "R_th": 0.3}, instances=1, db=tmp_path / "c.db", jobs=1, quiet=True)
    assert len(df) == 2
    assert set(df["status"]) <= {"ok", "infeasible"}, df[["solver", "status", "error"]]


@pytest.mark.parametrize("over,stage", [({}, "fpa"), ({"antennas": "fpa"}, "sdma")])
def test_warm_start_stages_never_end_below_the_simpler_problem(over, stage):
    """``ma`` from the ``fpa`` solution and ``rsma`` from the ``sdma`` one (the core's warm-start stage):
    the staged run ends at least at the simpler stage's utility on the same channel."""
    _, _, prob = make(8, R_th=0.0, **TINY, **over)
    sol = get_registry().solver("adam").solve(prob, {"warm": stage, "warm_iters": 40, "iters": 40},
                                              RunContext(np.random.default_rng(0)))
    assert sol.info["warm"]["stage"] == stage
    assert prob.utility(sol.x) >= sol.info["warm"]["utility"] - 1e-9
