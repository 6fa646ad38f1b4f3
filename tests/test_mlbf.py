"""MLBF (seed 001) on ``miso``: the WMMSE objective against the closed forms and the scenario's utility,
single-user capacity, the anytime trace, determinism, both variants, budgets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wbench.scenarios.miso import Miso
from wbench.solver import RunContext
from wbench.solvers.learned import mlbf
from wbench.solvers.wmmse.wmmse import Wmmse, _v_step

SOLVER = mlbf.MlbfWmmse()  # same code as mlbf; its default variant is the fast one
SMALL = {"outer": 6, "inner": 2, "hidden": 8, "starts": 2}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_problem(seed: int, **given):
    sc = Miso()
    params = sc.resolve_params(given)
    return sc.problem(params, sc.draw(params, np.random.default_rng(seed)))


def solve(prob, seed: int = 1, budget: float | None = None, **options):
    ctx = RunContext(np.random.default_rng(seed), budget_seconds=budget)
    return SOLVER.solve(prob, options, ctx), ctx


def tensors(prob, rng):
    H = torch.as_tensor(prob.H)
    alpha = torch.as_tensor(prob.weights)
    k, nt = prob.H.shape
    V = torch.as_tensor(prob.initial("random", rng)["V"])
    u = torch.as_tensor(rng.standard_normal(k) + 1j * rng.standard_normal(k))
    w = torch.as_tensor(rng.uniform(0.5, 3.0, k))
    return H, alpha, u, w, V


@pytest.mark.parametrize("seed,snr_db,weights", [(0, 10.0, "equal"), (1, 30.0, "1;2;0.5")])
def test_block_gradients_match_autograd(seed, snr_db, weights):
    prob = make_problem(seed, Nt=4, K=3, snr_db=snr_db, weights=weights)
    H, alpha, u, w, V = tensors(prob, np.random.default_rng(seed))
    mu = 0.37
    x = [t.clone().requires_grad_(True) for t in (u, w, V)]
    F = mlbf.objective(H, alpha, prob.sigma2, prob.power, mu, *x)
    gu, gw, gV = torch.autograd.grad(F, x)
    torch.testing.assert_close(mlbf.grad_u(H, alpha, prob.sigma2, u, w, V), gu)
    torch.testing.assert_close(mlbf.grad_w(H, alpha, prob.sigma2, u, w, V), gw)
    torch.testing.assert_close(mlbf.grad_V(H, alpha, mu, u, w, V), gV)


@pytest.mark.parametrize("seed,snr_db,weights", [(0, 0.0, "equal"), (2, 20.0, "1;2;0.5;1"), (3, 40.0, "equal")])
def test_objective_minimised_over_u_w_is_the_rate(seed, snr_db, weights):
    prob = make_problem(seed, Nt=4, K=4, snr_db=snr_db, weights=weights)
    rng = np.random.default_rng(seed)
    H, alpha, _, _, V = tensors(prob, rng)
    u, w = mlbf.closed_form_uw(H, alpha, prob.sigma2, V)
    # The closed forms (u_k = h_k^H v_k / T_k, w_k = 1/e_k) are where the block gradients vanish ...
    x = [u.clone().requires_grad_(True), w.clone().requires_grad_(True)]
    gu, gw = torch.autograd.grad(mlbf.objective(H, alpha, prob.sigma2, prob.power, 0.0, x[0], x[1], V), x)
    assert float(gu.abs().max()) < 1e-9 * float(w.max())
    assert float(gw.abs().max()) < 1e-9
    e = mlbf.mse(H, prob.sigma2, u, V)[0]
    torch.testing.assert_close(w, 1.0 / e)
    # ... and there F = sum_k alpha_k (1 - ln(1 + SINR_k)) = sum(alpha) - ln2 * WSR: the scenario's utility.
    F = float(mlbf.objective(H, alpha, prob.sigma2, prob.power, 0.0, u, w, V))
    wsr = prob.utility({"V": V.numpy()})
    assert F == pytest.approx(float(alpha.sum()) - math.log(2.0) * wsr, rel=1e-10, abs=1e-10)
    # F is convex in each block: any perturbation of the minimiser raises it.
    for _ in range(5):
        du = torch.as_tensor(rng.standard_normal(4) + 1j * rng.standard_normal(4)) * 0.1 * u.abs().max()
        dw = torch.as_tensor(rng.uniform(-0.1, 0.1, 4)) * w
        assert float(mlbf.objective(H, alpha, prob.sigma2, prob.power, 0.0, u + du, w, V)) > F
        assert float(mlbf.objective(H, alpha, prob.sigma2, prob.power, 0.0, u, w + dw, V)) > F


@pytest.mark.parametrize("seed,snr_db,shape", [(0, 10.0, (4, 4)), (1, 30.0, (4, 4)), (2, 20.0, (6, 3))])
def test_preconditioned_v_step_is_the_wmmse_update(seed, snr_db, shape):
    nt, k = shape
    prob = make_problem(seed, Nt=nt, K=k, snr_db=snr_db)
    H, alpha, _, _, V = tensors(prob, np.random.default_rng(seed))
    u, w = mlbf.closed_form_uw(H, alpha, prob.sigma2, V)
    mu, hinv = mlbf.v_block(prob.H, prob.weights, prob.power, u.numpy(), w.numpy())
    V1 = V - 0.5 * torch.as_tensor(hinv) @ mlbf.grad_V(H, alpha, mu, u, w, V)
    G = (prob.H.conj() @ V.numpy())[None]
    ref = _v_step(prob.H[None], prob.weights[None], np.array([prob.power]), np.array([prob.sigma2]), G)[0]
    np.testing.assert_allclose(V1.numpy(), ref, rtol=1e-7, atol=1e-9 * np.abs(ref).max())
    assert np.sum(np.abs(V1.numpy()) ** 2) <= prob.power * (1 + 1e-9)


@pytest.mark.parametrize(
    "snr_db,options",
    [(30.0, {}),
     # From a random start the WMMSE-preconditioned steps creep up to full power like WMMSE itself
     # (mu = 0 while the MMSE precoder fits in the ball), so only the lower SNRs get there in 30 steps.
     (0.0, {"init": "random", "starts": 1, "outer": 30, "hidden": 16}),
     (10.0, {"init": "random", "starts": 1, "outer": 30, "hidden": 16})],
)
def test_single_user_reaches_capacity(snr_db, options):
    prob = make_problem(5, Nt=4, K=1, snr_db=snr_db)
    sol, _ = solve(prob, **options)
    capacity = np.log2(1 + prob.power * np.sum(np.abs(prob.H) ** 2) / prob.sigma2)
    assert prob.feasibility(sol.x).feasible
    assert prob.utility(sol.x) == pytest.approx(capacity, rel=1e-4)


@pytest.mark.parametrize("variant", ["fast", "paper", "code"])
@pytest.mark.parametrize("snr_db", [10.0, 30.0])
def test_trace_is_monotone_and_answer_feasible(variant, snr_db):
    prob = make_problem(11, Nt=4, K=4, snr_db=snr_db)
    sol, ctx = solve(prob, 3, variant=variant, **SMALL)
    its = [it for _, it, _ in ctx.checkpoints]
    rates = np.array([prob.utility(x) for _, _, x in ctx.checkpoints])  # the harness's own evaluation
    assert its == sorted(its) and its[0] == 0 and its[-1] == sol.iterations == 2 * SMALL["outer"]
    assert np.all(np.diff(rates) >= -1e-12)
    assert all(prob.feasibility(x).feasible for _, _, x in ctx.checkpoints)
    assert prob.feasibility(sol.x).feasible
    assert prob.utility(sol.x) == pytest.approx(rates[-1], abs=1e-12)
    # the answer is the best iterate of every start and step (evaluated on the solver's own trace)
    assert prob.utility(sol.x) == pytest.approx(max(max(t) for t in sol.info["start_traces"]), rel=1e-12)
    assert len(sol.info["start_traces"]) == SMALL["starts"]


@pytest.mark.parametrize("variant", ["fast", "paper", "code"])
def test_same_seed_same_answer(variant):
    prob = make_problem(12, Nt=4, K=4, snr_db=20.0)
    opts = dict(SMALL, variant=variant, init="random")
    a, _ = solve(prob, 7, **opts)
    b, _ = solve(prob, 7, **opts)
    c, _ = solve(prob, 8, **opts)
    np.testing.assert_array_equal(a.x["V"], b.x["V"])
    assert a.info["start_traces"] == b.info["start_traces"]
    assert not np.array_equal(a.x["V"], c.x["V"])


def test_networks_learn_in_the_paper_variant():
    # Every network update changes the networks' proposals: with the paper loop the variables' trajectory
    # after an update differs from the one with no update (lr = 0 is not allowed, so compare lr values).
    prob = make_problem(13, Nt=4, K=4, snr_db=20.0)
    opts = dict(variant="paper", outer=6, inner=1, hidden=8, update_every=2)
    a, _ = solve(prob, 1, lr=1e-6, **opts)
    b, _ = solve(prob, 1, lr=1e-2, **opts)
    assert a.info["wsr_trace"][:3] == b.info["wsr_trace"][:3]  # identical until the first update
    assert a.info["wsr_trace"][4:] != b.info["wsr_trace"][4:]


def test_respects_the_budget():
    prob = make_problem(14, Nt=4, K=4, snr_db=20.0)
    sol, ctx = solve(prob, budget=0.0)
    assert sol.iterations == 0 and prob.feasibility(sol.x).feasible
    np.testing.assert_allclose(sol.x["V"], prob.initial("mrt")["V"])


def test_options_and_registration():
    from wbench.params import ParamError

    registered = []
    mlbf.wbench_register_solvers(registered.append)
    assert [s.name for s in registered] == ["mlbf", "mlbf-wmmse"] and registered[0].uses_torch
    # mlbf's defaults are the paper's; the wbench variant carries its own name
    assert mlbf.Mlbf().resolve_options({})["variant"] == "paper"
    assert SOLVER.resolve_options({})["variant"] == "fast"
    eff = mlbf.effective_options(SOLVER.resolve_options({"variant": "paper"}))
    assert (eff["outer"], eff["inner"], eff["update_every"], eff["hidden"], eff["lr"], eff["update"]) == (
        500, 10, 5, 200, 1e-4, "lstm")
    assert "hidden=500" in SOLVER.budget_label(SOLVER.resolve_options({"variant": "code"}))
    with pytest.raises(ParamError):
        SOLVER.resolve_options({"mu": "-1"})
    with pytest.raises(ParamError):
        SOLVER.resolve_options({"variant": "nope"})


@pytest.mark.slow
@pytest.mark.parametrize("snr_db", [10.0, 20.0, 30.0])
def test_defaults_reach_95_percent_of_wmmse(snr_db):
    ratios = []
    for seed in range(10):
        prob = make_problem(1000 + seed, Nt=4, K=4, snr_db=snr_db)
        sol, _ = solve(prob, seed)
        ref = Wmmse().solve(prob, {}, RunContext(np.random.default_rng(seed)))
        ratios.append(prob.utility(sol.x) / prob.utility(ref.x))
    assert np.mean(ratios) >= 0.95
