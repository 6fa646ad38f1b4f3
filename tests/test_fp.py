"""Fractional programming (quadratic transform) on ``miso``: monotone, feasible, the single-user closed form,
batched == unbatched, and the WMMSE equivalence (Shen & Yu 2018, Part II, Section IV-C) as an oracle."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.helpers import miso_problem
from wbench.problem import BlockPowerBall, Variable
from wbench.solver import RunContext
from wbench.solvers.wmmse.fp import Fp, fp_stack, fp_surrogate, wbench_register_solvers
from wbench.solvers.wmmse.wmmse import Wmmse, wmmse_stack

FP = Fp()


def solve(prob, seed: int = 1, **options):
    ctx = RunContext(np.random.default_rng(seed))
    return FP.solve(prob, options, ctx), ctx


def _stack(seed: int, n: int, k: int, nt: int, power: float = 10.0):
    rng = np.random.default_rng(seed)
    H = (rng.standard_normal((n, k, nt)) + 1j * rng.standard_normal((n, k, nt))) / np.sqrt(2)
    V = rng.standard_normal((n, nt, k)) + 1j * rng.standard_normal((n, nt, k))
    V *= np.sqrt(power / np.sum(np.abs(V) ** 2, axis=(1, 2), keepdims=True))
    alpha = rng.uniform(0.2, 2.0, (n, k))
    return H, alpha, np.full(n, power), np.full(n, 1.0), V


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 30.0])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("shape", [(4, 4), (2, 5), (6, 3)])
def test_wsr_never_decreases_and_every_iterate_is_feasible(snr_db, seed, shape):
    nt, k = shape
    prob = miso_problem(nt, k, snr_db, seed, 7)
    sol, ctx = solve(prob, seed, starts=1, tol=0.0, max_iter=60)
    rates = np.array([prob.utility(x) for _, _, x in ctx.checkpoints])  # the scorer's own evaluation
    assert len(rates) >= 8 and rates[-1] > rates[0]
    assert np.all(np.diff(rates) >= -1e-9)
    assert np.all(np.diff(sol.info["wsr_trace"]) >= -1e-9)
    for _, _, x in ctx.checkpoints:
        assert np.sum(np.abs(x["V"]) ** 2) <= prob.power * (1 + 1e-12)


def test_the_fp_objective_is_a_minorant_tight_at_the_current_point():
    # f_q(V', gamma, y) <= ln2 WSR(V') for any V', with equality at V' = V (the gamma, y of V): the reason
    # the WSR cannot decrease.
    H, alpha, power, s2, V = _stack(3, 6, 3, 4)
    rng = np.random.default_rng(4)
    G = H.conj() @ V
    gamma, y, _, _ = fp_surrogate(H, alpha, s2, G)

    def fq(W):
        Gw = H.conj() @ W
        T = (np.abs(Gw) ** 2).sum(axis=-1) + s2[:, None]
        gkk = np.diagonal(Gw, axis1=1, axis2=2)
        lin = 2 * np.sqrt(alpha * (1 + gamma)) * (y.conj() * gkk).real - np.abs(y) ** 2 * T
        return (alpha * (np.log1p(gamma) - gamma) + lin).sum(axis=-1)

    def ln2_wsr(W):
        Gw = H.conj() @ W
        g2 = np.abs(Gw) ** 2
        sig = np.diagonal(g2, axis1=1, axis2=2)
        return (alpha * np.log1p(sig / (g2.sum(axis=-1) - sig + s2[:, None]))).sum(axis=-1)

    assert fq(V) == pytest.approx(ln2_wsr(V), rel=1e-12)
    for _ in range(20):
        W = V + rng.standard_normal(V.shape) + 1j * rng.standard_normal(V.shape)
        assert np.all(fq(W) <= ln2_wsr(W) + 1e-12)


@pytest.mark.parametrize("nt", [1, 4])
@pytest.mark.parametrize("snr_db", [0.0, 20.0])
def test_single_user_reaches_capacity(nt, snr_db):
    prob = miso_problem(nt, 1, snr_db, 3, 2)
    sol, _ = solve(prob, init="mrt", starts=1)
    closed_form = np.log2(1 + prob.power * np.sum(np.abs(prob.H) ** 2) / prob.sigma2)
    assert prob.utility(sol.x) == pytest.approx(closed_form, rel=1e-9)


@pytest.mark.parametrize("shape", [(4, 4), (3, 5)])
def test_iterates_equal_wmmse_iterates(shape):
    # Shen & Yu, Part II, Section IV-C: the FP surrogate's V sub-problem is WMMSE's, iterate by iterate.
    nt, k = shape
    H, alpha, power, s2, V0 = _stack(5, 16, k, nt)
    for n in (1, 2, 5):
        Vf, wf, _ = fp_stack(H, alpha, power, s2, V0, n, 0.0)
        Vw, ww, _ = wmmse_stack(H, alpha, power, s2, V0, n, 0.0)
        scale = np.linalg.norm(Vw, axis=(1, 2))
        assert np.all(np.linalg.norm(Vf - Vw, axis=(1, 2)) <= 1e-9 * scale)
        np.testing.assert_allclose(wf, ww, rtol=1e-10)


def test_batched_equals_unbatched():
    probs = [miso_problem(4, 3, 10.0, i, 11) for i in range(5)]
    opts = {"starts": 3, "max_iter": 50}
    batched = FP.solve_batch(probs, opts, [RunContext(np.random.default_rng(i)) for i in range(5)])
    for i, (p, b) in enumerate(zip(probs, batched)):
        single = FP.solve(p, opts, RunContext(np.random.default_rng(i)))
        assert p.utility(b.x) == pytest.approx(p.utility(single.x), rel=1e-9)
        assert b.info["best_start"] == single.info["best_start"]


def test_reaches_wmmse_on_average():
    probs = [miso_problem(4, 4, snr, i, 5) for i in range(8) for snr in (0.0, 20.0)]
    ctx = lambda i: RunContext(np.random.default_rng(i))  # noqa: E731  same starts for both
    fp = [p.utility(FP.solve(p, {"starts": 3}, ctx(i)).x) for i, p in enumerate(probs)]
    wm = [p.utility(Wmmse().solve(p, {"starts": 3}, ctx(i)).x) for i, p in enumerate(probs)]
    assert np.mean(fp) >= 0.99 * np.mean(wm)


def test_declines_per_block_budgets_and_registers():
    prob = miso_problem(4, 2, 10.0, 0, 0)
    var = prob.variables["V"]
    blocks = dataclasses.replace(
        prob, variables={"V": Variable(var.shape, BlockPowerBall([5.0, 5.0], [2, 2]), role="precoder")})
    assert "per-block" in FP.declines(blocks, {})
    assert FP.declines(prob, {}) is None
    with pytest.raises(ValueError, match="per-block"):
        fp_stack(*_stack(0, 1, 2, 4)[:4], _stack(0, 1, 2, 4)[4], 3, 0.0, budgets=np.ones((1, 2)),
                 block_index=np.array([0, 0, 1, 1]))
    got = []
    wbench_register_solvers(got.append)
    assert [s.name for s in got] == ["fp"] and "conventional" in got[0].tags


def test_on_a_bdris_view_it_matches_wmmse_from_the_same_starts():
    # A generic precoding view (effective channel h_k^H Phi G, Phi held at each start's random point).
    from wbench.registry import get_registry

    sc = get_registry().scenario("bdris")
    params = sc.resolve_params({"architecture": "diagonal"})
    prob = sc.problem(params, sc.draw(params, np.random.default_rng(3)))
    opts = {"starts": 3, "max_iter": 40}
    a = FP.solve(prob, opts, RunContext(np.random.default_rng(5)))
    b = Wmmse().solve(prob, opts, RunContext(np.random.default_rng(5)))
    np.testing.assert_allclose(a.info["start_wsr"], b.info["start_wsr"], rtol=1e-8)
    assert prob.feasibility(a.x).feasible
