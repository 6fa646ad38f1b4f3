"""``adam`` (projected Adam, the network-free ablation of ``metaopt``) against oracles.

Same oracles as ``tests/test_metaopt.py``: the single-user ``miso`` optimum ``log2(1 + P ||h||^2)`` and the
toy RIS closed forms, scored as the harness scores (utility and feasibility of the returned variables).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import miso_problem, solve_with, toy_problem
from wbench.solvers.gradient.adam import Adam

SOLVER = Adam()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def miso(nt: int, k: int, snr: float, i: int, seed: int = 5):
    return miso_problem(nt, k, snr, i, seed)


def toy(arch: str, nt: int, i: int, snr: float = 10.0):
    return toy_problem(arch, nt, i, 13, snr)


def solve(problem, seed=0, **options):
    return solve_with(SOLVER, problem, seed, **options)


@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0, 30.0])
def test_single_user_miso_reaches_the_closed_form_from_a_random_start(snr):
    prob = miso(4, 1, snr, int(snr))
    sol, _ = solve(prob, init="random")
    expected = np.log2(1 + prob.power * np.sum(np.abs(prob.H) ** 2))
    start = prob.utility(prob.initial("random", np.random.default_rng(0)))
    assert start < expected * (1 - 1e-2)
    assert prob.feasibility(sol.x).feasible
    assert prob.utility(sol.x) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("arch,nt", [("unitary", 2), ("diagonal", 1)])
@pytest.mark.parametrize("init", ["identity", "random"])
def test_toy_ris_reaches_the_closed_form(arch, nt, init):
    prob = toy(arch, nt, 0 if init == "identity" else 1)
    sol, _ = solve(prob, init=init)
    assert prob.feasibility(sol.x).feasible
    assert prob.utility(prob.initial(init, np.random.default_rng(0))) < prob.closed_form() * (1 - 1e-3)
    assert prob.utility(sol.x) == pytest.approx(prob.closed_form(), rel=1e-4)


def test_unitary_start_does_not_poison_adam_with_an_undefined_gradient():
    # The polar projection's derivative is undefined at an exactly unitary point (repeated singular
    # values): the first step must still be finite, and the loss must go down from there.
    prob = toy("unitary", 2, 2)
    sol, _ = solve(prob, iters=5)
    assert sol.info["stopped"] == "iters" and sol.iterations == 5
    assert sol.info["best_loss"] < sol.info["loss0"]


def test_best_so_far_trace_never_decreases():
    prob = miso(4, 4, 20.0, 0)
    sol, ctx = solve(prob, iters=120)
    utils = [prob.utility(x) for _, _, x in ctx.checkpoints]
    assert all(b >= a - 1e-12 * abs(a) for a, b in zip(utils, utils[1:])), utils
    assert utils[-1] == prob.utility(sol.x) > utils[0]


def test_same_seed_same_solution_and_other_seeds_differ():
    prob = miso(4, 4, 20.0, 1)
    a, _ = solve(prob, seed=3, init="random", iters=30)
    b, _ = solve(prob, seed=3, init="random", iters=30)
    c, _ = solve(prob, seed=4, init="random", iters=30)
    np.testing.assert_array_equal(a.x["V"], b.x["V"])
    assert not np.array_equal(a.x["V"], c.x["V"])


def test_penalty_only_result_reports_its_violation_and_final_projection_repairs_it():
    prob = toy("unitary", 2, 0, snr=20.0)
    sol, _ = solve(prob, project="p")
    feas = prob.feasibility(sol.x)
    assert not feas.feasible and feas.violations["Phi"] > feas.tolerances["Phi"]
    assert feas.violations["p"] <= feas.tolerances["p"]
    assert prob.utility(sol.x) > prob.closed_form()  # only an infeasible Phi can beat the optimum

    fixed, _ = solve(prob, project="p", final_project=True)
    assert prob.feasibility(fixed.x).feasible
    assert prob.utility(fixed.x) <= prob.closed_form() * (1 + 1e-9)


def test_a_larger_penalty_gives_a_smaller_violation():
    prob = toy("unitary", 2, 0, snr=20.0)
    small = prob.feasibility(solve(prob, project="p", penalty=1.0)[0].x).violations["Phi"]
    large = prob.feasibility(solve(prob, project="p", penalty=100.0)[0].x).violations["Phi"]
    assert large < small


def test_learning_rate_is_relative_to_the_initial_point():
    lo, hi = miso(4, 2, 0.0, 0), miso(4, 2, 30.0, 0)
    sol_lo, _ = solve(lo, iters=1)
    sol_hi, _ = solve(hi, iters=1)
    ratio = sol_hi.info["lr"]["V"] / sol_lo.info["lr"]["V"]
    assert ratio == pytest.approx(np.sqrt(hi.power / lo.power), rel=1e-9)
