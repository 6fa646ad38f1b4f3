"""WMMSE through the generalised linear-precoding view: per-block power budgets (one per BS), a subset of
streams with the others held fixed, and the MRT/ZF/RZF baselines on the view.

Oracles: one block is the single-budget step (and the existing WMMSE); the per-block V step is the
minimiser of its convex QCQP (against SciPy's SLSQP, independent of the code); a channel where every user
hears one BS only splits into independent single-budget problems; the weighted sum rate never decreases and
every iterate meets every budget; a single user served by several BSs reaches the Cauchy-Schwarz optimum.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.optimize import minimize

from tests.helpers import miso_problem, solve_with
from tests.toy_sets_plugin import toy_sets_problem
from wbench.problem import BlockPowerBall, PrecodingView, Variable, linear_precoder
from wbench.rates import weighted_sum_rate
from wbench.scenarios.miso import MisoProblem
from wbench.solvers.wmmse import wmmse as W
from wbench.solvers.baselines.linear import InitialPointBaseline
from wbench.solvers.wmmse.wmmse import Wmmse


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One BLAS thread: OpenBLAS threads spin-wait on these tiny matrices when cores are shared (SciPy ships
    its own OpenBLAS, loaded with ``scipy.optimize``, imported above)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _cn(rng, shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)


def _stack(seed, n, k, nt, power):
    rng = np.random.default_rng(seed)
    H = _cn(rng, (n, k, nt))
    V = _cn(rng, (n, nt, k))
    V *= np.sqrt(power / np.sum(np.abs(V) ** 2, axis=(1, 2), keepdims=True))
    return H, V, np.ones((n, k)), np.ones(n)


def _block_powers(V, block_index, blocks):
    rows = np.sum(np.abs(V) ** 2, axis=-1)
    return np.stack([rows[:, block_index == b].sum(axis=1) for b in range(blocks)], axis=1)


def with_blocks(prob: MisoProblem, budgets, sizes) -> MisoProblem:
    """The same miso problem with per-block budgets on the precoder's rows (a CoMP-like transmitter)."""
    var = prob.variables["V"]
    return dataclasses.replace(prob, variables={"V": Variable(var.shape, BlockPowerBall(budgets, sizes),
                                                                role="precoder")})


# -- one block is the single-budget step ----------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4, 4), (2, 5), (5, 3)])
@pytest.mark.parametrize("power", [1.0, 1000.0])
def test_one_block_step_equals_the_single_budget_step(shape, power):
    k, nt = shape
    H, V, alpha, s2 = _stack(1, 5, k, nt, power)
    G = H.conj() @ V
    single = W._v_step(H, alpha, np.full(5, power), s2, G)
    blocks, _ = W._v_step_blocks(H, alpha, s2, G, V, np.full((5, 1), power), np.zeros(nt, int), np.zeros((5, 1)))
    np.testing.assert_allclose(blocks, single, rtol=0, atol=1e-10 * np.abs(single).max())


@pytest.mark.parametrize("seed", [0, 1])
def test_one_block_budget_reproduces_the_existing_wmmse(seed):
    prob = miso_problem(4, 4, 20.0, seed, 3)
    blk = with_blocks(prob, (prob.power,), (4,))
    assert blk.precoding_view(blk.initial()).blocks == (4,)  # the per-block path is the one taken
    a, _ = solve_with(Wmmse(), prob, seed, starts=3, max_iter=30, tol=0.0)
    b, _ = solve_with(Wmmse(), blk, seed, starts=3, max_iter=30, tol=0.0)
    np.testing.assert_allclose(b.info["wsr_trace"][:10], a.info["wsr_trace"][:10], rtol=1e-8)
    np.testing.assert_allclose(b.info["start_wsr"], a.info["start_wsr"], rtol=1e-7)
    assert prob.utility(b.x) == pytest.approx(prob.utility(a.x), rel=1e-7)


# -- the per-block V step solves its QCQP ----------------------------------------------------------------
def _slsqp_qcqp(A, B, budgets, block_index):
    """``min tr(V^H A V) - 2 Re tr(B^H V)`` s.t. ``||V_b||^2 <= P_b`` by SciPy's SLSQP (best of 3 starts)."""
    nt, k = B.shape

    def unpack(z):
        return (z[: nt * k] + 1j * z[nt * k:]).reshape(nt, k)

    def f(z):
        V = unpack(z)
        G = 2 * (A @ V - B)  # d/dRe + i d/dIm (A Hermitian)
        value = float(np.real(np.sum(V.conj() * (A @ V))) - 2 * np.real(np.sum(B.conj() * V)))
        return value, np.concatenate([G.real.ravel(), G.imag.ravel()])

    def con(b):
        mask = np.repeat((block_index == b)[:, None], k, axis=1).ravel()

        def fun(z):
            return budgets[b] - np.sum(z[: nt * k][mask] ** 2) - np.sum(z[nt * k:][mask] ** 2)

        def jac(z):
            return -2 * np.concatenate([z[: nt * k] * mask, z[nt * k:] * mask])

        return {"type": "ineq", "fun": fun, "jac": jac}

    cons = [con(b) for b in range(len(budgets))]
    best = None
    for start in range(3):
        z0 = np.random.default_rng(start).standard_normal(2 * nt * k) * 0.1
        res = minimize(f, z0, jac=True, method="SLSQP", constraints=cons, options={"ftol": 1e-15, "maxiter": 3000})
        best = res.fun if best is None else min(best, res.fun)
    return best


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape,sizes", [((4, 4), (2, 2)), ((2, 6), (2, 2, 2)), ((1, 4), (3, 1))])
def test_block_step_is_the_minimiser_of_its_qcqp(seed, shape, sizes):
    k, nt = shape
    H, V, alpha, s2 = _stack(10 + seed, 1, k, nt, 10.0)
    budgets = np.array([[1.0, 4.0, 2.0][: len(sizes)]]) * 3
    bi = np.repeat(np.arange(len(sizes)), sizes)
    V = V * 0.2  # a feasible current point
    A, B = W._quadratic(H, alpha, s2, H.conj() @ V)
    Vn, mu = W._v_blocks(A, B, budgets, bi, V, np.zeros((1, len(sizes))))
    powers = _block_powers(Vn, bi, len(sizes))
    assert np.all(powers <= budgets * (1 + 1e-9))
    reference = _slsqp_qcqp(A[0], B[0], budgets[0], bi)
    assert W._wmse(A, B, Vn)[0] <= reference + 1e-9 * abs(reference)
    assert np.all(mu >= 0)


def test_separable_channel_splits_into_independent_single_budget_problems():
    """Users 0, 1 hear only BS 0 (antennas 0-2), users 2, 3 only BS 1 (antennas 3-5): the per-block WMMSE
    is then two independent single-budget WMMSEs, iterate by iterate."""
    rng = np.random.default_rng(3)
    H = np.zeros((1, 4, 6), complex)
    H[0, :2, :3], H[0, 2:, 3:] = _cn(rng, (2, 3)), _cn(rng, (2, 3))
    V0 = np.zeros((1, 6, 4), complex)
    V0[0, :3, :2], V0[0, 3:, 2:] = _cn(rng, (3, 2)), _cn(rng, (3, 2))
    budgets = np.array([[20.0, 5.0]])
    V0[0, :3] *= np.sqrt(budgets[0, 0] / np.sum(np.abs(V0[0, :3]) ** 2))
    V0[0, 3:] *= np.sqrt(budgets[0, 1] / np.sum(np.abs(V0[0, 3:]) ** 2))
    bi = np.repeat([0, 1], 3)
    trace = []
    Vb, wsr, _ = W.wmmse_stack(H, np.ones((1, 4)), np.array([25.0]), np.ones(1), V0, 15, 0.0,
                               on_sweep=lambda t, V, w, r: trace.append(V.copy()), budgets=budgets, block_index=bi)
    parts = []
    for users, ants, b in (([0, 1], slice(0, 3), 0), ([2, 3], slice(3, 6), 1)):
        sub_trace = []
        W.wmmse_stack(H[:, users][:, :, ants], np.ones((1, 2)), budgets[:, b], np.ones(1),
                      V0[:, ants][:, :, users], 15, 0.0, on_sweep=lambda t, V, w, r: sub_trace.append(V.copy()))
        parts.append((users, ants, sub_trace))
    for t in range(len(trace)):
        for users, ants, sub_trace in parts:
            np.testing.assert_allclose(trace[t][0][ants][:, users], sub_trace[t][0], atol=1e-9)
    assert np.abs(trace[-1][0][:3, 2:]).max() < 1e-9 and np.abs(trace[-1][0][3:, :2]).max() < 1e-9


# -- monotone and feasible --------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("snr_db", [0.0, 20.0, 40.0])
@pytest.mark.parametrize("shape,sizes", [((4, 8), (4, 4)), ((4, 4), (2, 2)), ((6, 6), (2, 2, 2))])
def test_wsr_never_decreases_and_every_iterate_meets_every_budget(seed, snr_db, shape, sizes):
    k, nt = shape
    prob = with_blocks(miso_problem(nt, k, snr_db, seed, 7), tuple(10 ** (snr_db / 10) * np.array(
        [1.0, 0.3, 0.6][: len(sizes)])), sizes)
    sol, ctx = solve_with(Wmmse(), prob, seed, starts=1, tol=0.0, max_iter=40)
    trace = np.array(sol.info["wsr_trace"])
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))
    assert trace[-1] > trace[0]
    for _, _, x in ctx.checkpoints:
        feas = prob.feasibility(x)
        assert feas.feasible, feas.violations
    np.testing.assert_allclose(trace[-1], prob.utility(sol.x), rtol=1e-12)


def test_single_user_served_by_several_bss_reaches_the_optimum():
    """One user, N BSs: the optimum puts every BS at full power, co-phased (toy ``case=block``). Fewer
    users than antennas make the V step's matrix singular: the dual alone stalls there below the optimum."""
    for seed in range(3):
        prob = toy_sets_problem(seed, case="block", N=3, I=2)
        sol, _ = solve_with(Wmmse(), prob, seed)
        assert prob.utility(sol.x) == pytest.approx(prob.closed_form_optimum(), rel=1e-9)
        np.testing.assert_allclose(prob.variables["v"].constraint.block_powers(sol.x["v"]), prob.budgets, rtol=1e-9)


# -- streams held fixed -------------------------------------------------------------------------------------
@dataclasses.dataclass
class CommonPlusPrivates(MisoProblem):
    """Column 0 of the precoder is a stream nobody decodes here (held fixed: interference to everyone), columns
    1..K the users' private streams; utility = sum rate of the privates (written out independently)."""

    def utility(self, x):
        G = self.H.conj() @ np.asarray(x["V"])  # (K, K + 1)
        g2 = np.abs(G) ** 2
        k = np.arange(G.shape[0])
        signal = g2[k, k + 1]
        return float(np.sum(np.log2(1 + signal / (g2.sum(axis=1) - signal + self.sigma2))))

    def precoding_view(self, x):
        return PrecodingView.build(self, x, self.H, self.weights, self.sigma2,
                                   streams=tuple(range(1, self.H.shape[0] + 1)))


def test_wmmse_on_a_subset_of_streams_holds_the_others_and_their_power():
    base = miso_problem(4, 3, 20.0, 0, 5)
    prob = CommonPlusPrivates(variables={"V": Variable((4, 4), base.variables["V"].constraint, role="precoder")},
                              scenario="test", params={}, init_methods=("random",), H=base.H,
                              weights=base.weights, power=base.power)
    x0 = prob.initial("random", np.random.default_rng(1))
    common_power = np.sum(np.abs(x0["V"][:, 0]) ** 2)
    view = prob.precoding_view(x0)
    assert view.power == pytest.approx(base.power - common_power)
    assert view.wsr(view.start(x0)) == pytest.approx(prob.utility(x0), rel=1e-12)
    sol, ctx = solve_with(Wmmse(), prob, 1, starts=1, tol=0.0, max_iter=30)
    np.testing.assert_array_equal(sol.x["V"][:, 0], x0["V"][:, 0])
    rates = [prob.utility(x) for _, _, x in ctx.checkpoints]
    assert np.all(np.diff(rates) >= -1e-9) and rates[-1] > rates[0] + 0.5
    assert prob.feasibility(sol.x).feasible


# -- baselines on the view ------------------------------------------------------------------------------------
def test_zf_on_per_block_budgets_zero_forces_and_fills_the_tightest_block():
    prob = with_blocks(miso_problem(6, 4, 10.0, 2, 0), (4.0, 9.0), (3, 3))
    assert "zf" in prob.init_methods  # miso offers its own; the view's must agree where budgets are one
    view = prob.precoding_view(prob.initial())
    V = linear_precoder(view, "zf")
    G = prob.H.conj() @ V
    off = G - np.diag(np.diag(G))
    assert np.abs(off).max() <= 1e-10 * np.abs(np.diag(G)).max()
    ratios = prob.variables["V"].constraint.block_powers(V) / np.array([4.0, 9.0])
    assert ratios.max() == pytest.approx(1.0, rel=1e-12) and ratios.min() < 1.0
    # on a problem without its own initialisers the baseline comes from the view (other variables held)
    from tests.helpers import bdris_problem

    bd = bdris_problem(0, Nt=4, K=3, B=4)
    assert "zf" not in bd.init_methods
    sol, _ = solve_with(InitialPointBaseline("zf", ""), bd, 0)
    A = bd.effective_channel(sol.x["Phi"])
    gains = A @ sol.x["P"]
    assert np.abs(gains - np.diag(np.diag(gains))).max() <= 1e-9 * np.abs(np.diag(gains)).max()
    assert bd.feasibility(sol.x).feasible
    assert weighted_sum_rate(gains, 1.0, 1.0) == pytest.approx(bd.utility(sol.x), rel=1e-12)
