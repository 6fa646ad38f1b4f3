"""Reduced WMMSE (Zhao, Lu, Shi, Luo 2023): its iterates are WMMSE's from the projected start (an oracle, iterate
by iterate), the same stationary values, monotone, feasible, single-user closed form, batched == unbatched."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.helpers import miso_problem
from wbench.problem import BlockPowerBall, Variable
from wbench.solver import RunContext
from wbench.solvers.wmmse.rwmmse import RWmmse, gram, range_start, rwmmse_stack, wbench_register_solvers
from wbench.solvers.wmmse.wmmse import Wmmse, wmmse_stack

RW = RWmmse()


def _stack(seed: int, n: int, k: int, nt: int, power: float = 10.0):
    rng = np.random.default_rng(seed)
    H = (rng.standard_normal((n, k, nt)) + 1j * rng.standard_normal((n, k, nt))) / np.sqrt(2)
    V = rng.standard_normal((n, nt, k)) + 1j * rng.standard_normal((n, nt, k))
    V *= np.sqrt(power / np.sum(np.abs(V) ** 2, axis=(1, 2), keepdims=True))
    alpha = rng.uniform(0.2, 2.0, (n, k))
    return H, alpha, np.full(n, power), rng.uniform(0.5, 2.0, n), V


@pytest.mark.parametrize("shape", [(16, 4), (4, 4), (3, 5), (64, 8)])
def test_iterates_equal_wmmse_iterates_from_the_projected_start(shape):
    nt, k = shape
    H, alpha, power, s2, V0 = _stack(1, 12, k, nt)
    X0 = range_start(H, V0, power)
    W0 = H.transpose(0, 2, 1) @ X0
    np.testing.assert_allclose(np.sum(np.abs(W0) ** 2, axis=(1, 2)), power, rtol=1e-12)
    if nt < k:  # the range is everything: the start is kept
        np.testing.assert_allclose(W0, V0, atol=1e-10)
    for n in (1, 2, 3, 6, 20):
        Vr, wr, _ = rwmmse_stack(H, alpha, power, s2, V0, n, 0.0)
        Vw, ww, _ = wmmse_stack(H, alpha, power, s2, W0, n, 0.0)
        scale = np.linalg.norm(Vw, axis=(1, 2))
        # Once a user is being switched off (its column -> 0, u_k -> 0) the two codes drop its round-off
        # column at slightly different points (their null-space thresholds are on A vs on D J D): the
        # column's entries, already < 1e-7, then differ; the WSR does not.
        assert np.all(np.linalg.norm(Vr - Vw, axis=(1, 2)) <= (1e-9 if n <= 3 else 1e-6) * scale), n
        np.testing.assert_allclose(wr, ww, rtol=1e-10)


def test_projection_is_orthogonal():
    H, _, power, _, V0 = _stack(2, 5, 3, 8)
    X0 = range_start(H, V0, power)
    # the residual of the (unscaled) least-squares projection is orthogonal to every h_k
    Xls = np.linalg.solve(gram(H), H.conj() @ V0)
    R = V0 - H.transpose(0, 2, 1) @ Xls
    assert np.abs(H.conj() @ R).max() <= 1e-10
    assert np.allclose(Xls / np.linalg.norm(H.transpose(0, 2, 1) @ Xls, axis=(1, 2))[:, None, None]
                       * np.sqrt(power)[:, None, None], X0)


@pytest.mark.parametrize("init", ["mrt", "zf", "rzf"])
@pytest.mark.parametrize("snr_db", [0.0, 20.0])
def test_same_stationary_values_as_wmmse(init, snr_db):
    # MRT, ZF and RZF lie in the range of H^T: the two methods start at the same point.
    for i in range(3):
        prob = miso_problem(16, 4, snr_db, i, 3)
        opts = {"init": init, "starts": 1, "max_iter": 400, "tol": 1e-9}
        a = RW.solve(prob, opts, RunContext(np.random.default_rng(i)))
        b = Wmmse().solve(prob, opts, RunContext(np.random.default_rng(i)))
        assert prob.utility(a.x) == pytest.approx(prob.utility(b.x), rel=1e-6)


@pytest.mark.parametrize("snr_db", [0.0, 30.0])
@pytest.mark.parametrize("shape", [(8, 4), (2, 5)])
def test_monotone_and_feasible(snr_db, shape):
    nt, k = shape
    prob = miso_problem(nt, k, snr_db, 1, 9)
    ctx = RunContext(np.random.default_rng(0))
    sol = RW.solve(prob, {"starts": 1, "tol": 0.0, "max_iter": 60}, ctx)
    rates = np.array([prob.utility(x) for _, _, x in ctx.checkpoints])
    assert len(rates) >= 8 and rates[-1] > rates[0]
    assert np.all(np.diff(rates) >= -1e-9)
    assert np.all(np.diff(sol.info["wsr_trace"]) >= -1e-9)
    for _, _, x in ctx.checkpoints:
        assert np.sum(np.abs(x["V"]) ** 2) <= prob.power * (1 + 1e-12)


@pytest.mark.parametrize("nt", [1, 8])
def test_single_user_reaches_capacity(nt):
    prob = miso_problem(nt, 1, 10.0, 0, 4)
    sol = RW.solve(prob, {"starts": 2}, RunContext(np.random.default_rng(0)))
    closed_form = np.log2(1 + prob.power * np.sum(np.abs(prob.H) ** 2) / prob.sigma2)
    assert prob.utility(sol.x) == pytest.approx(closed_form, rel=1e-9)


def test_batched_equals_unbatched_and_declines_blocks():
    probs = [miso_problem(8, 3, 10.0, i, 11) for i in range(4)]
    opts = {"starts": 3, "max_iter": 50}
    batched = RW.solve_batch(probs, opts, [RunContext(np.random.default_rng(i)) for i in range(4)])
    for i, (p, b) in enumerate(zip(probs, batched)):
        single = RW.solve(p, opts, RunContext(np.random.default_rng(i)))
        assert p.utility(b.x) == pytest.approx(p.utility(single.x), rel=1e-9)
    var = probs[0].variables["V"]
    blocks = dataclasses.replace(
        probs[0], variables={"V": Variable(var.shape, BlockPowerBall([5.0, 5.0], [4, 4]), role="precoder")})
    assert "per-block" in RW.declines(blocks, {})
    got = []
    wbench_register_solvers(got.append)
    assert [s.name for s in got] == ["r-wmmse"]


def test_on_a_bdris_view_it_matches_wmmse_from_mrt():
    from wbench.registry import get_registry

    sc = get_registry().scenario("bdris")
    params = sc.resolve_params({"architecture": "fully"})
    prob = sc.problem(params, sc.draw(params, np.random.default_rng(4)))
    opts = {"starts": 1, "init": "mrt", "max_iter": 300, "tol": 1e-9}
    a = RW.solve(prob, opts, RunContext(np.random.default_rng(0)))
    b = Wmmse().solve(prob, opts, RunContext(np.random.default_rng(0)))
    assert prob.utility(a.x) == pytest.approx(prob.utility(b.x), rel=1e-6)
    assert prob.feasibility(a.x).feasible
