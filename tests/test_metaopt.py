"""``metaopt`` (seed 000, Algorithms 1 and 3) against oracles: closed forms, feasibility, monotone traces.

Oracles: with one user, the ``miso`` optimum is ``log2(1 + P ||h||^2)``; the toy RIS problem
(``tests/toy_plugin.py``) has closed-form optima for a unitary and for a diagonal (one BS antenna) RIS.
Scores are computed as the harness does: ``problem.utility`` and ``problem.feasibility`` of the returned
variables. The miso comparison with WMMSE is paper-scale and marked ``slow``.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from wbench.params import ParamError
from tests.helpers import miso_problem, solve_with, toy_problem
from wbench.solver import RunContext
from wbench.solvers.gradient.metaopt import MetaOpt, parse_activations, parse_hidden, parse_lr_by_var

SOLVER = MetaOpt()
#: Narrower networks for the oracle tests (the defaults are 400x400x400; one test runs them), to keep the
#: default test run short on two cores.
SMALL = {"hidden": "100x100x100"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def miso(nt: int, k: int, snr: float, i: int, seed: int = 7):
    return miso_problem(nt, k, snr, i, seed)


def toy(arch: str, nt: int, i: int, snr: float = 10.0):
    return toy_problem(arch, nt, i, 11, snr)


def solve(problem, seed=0, **options):
    return solve_with(SOLVER, problem, seed, **options)


@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0, 30.0])
def test_single_user_miso_reaches_the_closed_form_from_a_random_start(snr):
    prob = miso(4, 1, snr, int(snr))
    options = {} if snr == 20.0 else SMALL  # the defaults once, narrower networks elsewhere
    sol, _ = solve(prob, init="random", **options)
    expected = np.log2(1 + prob.power * np.sum(np.abs(prob.H) ** 2))
    start = prob.utility(prob.initial("random", np.random.default_rng(0)))
    assert start < expected * (1 - 1e-2)  # the start is not already optimal: the solver did the work
    assert prob.feasibility(sol.x).feasible
    assert prob.utility(sol.x) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("arch,nt", [("unitary", 2), ("diagonal", 1)])
@pytest.mark.parametrize("i", [0, 1])
def test_toy_ris_reaches_the_closed_form(arch, nt, i):
    prob = toy(arch, nt, i)
    sol, _ = solve(prob, seed=i, **SMALL)
    assert prob.feasibility(sol.x).feasible
    assert prob.utility(prob.initial()) < prob.closed_form() * (1 - 1e-3)
    assert prob.utility(sol.x) == pytest.approx(prob.closed_form(), rel=1e-4)


def test_best_so_far_trace_never_decreases_and_ends_at_the_solution():
    prob = miso(4, 4, 20.0, 0)
    sol, ctx = solve(prob, iters=150, **SMALL)
    its = [it for _, it, _ in ctx.checkpoints]
    assert its[0] == 0 and its[-1] == sol.iterations == 150
    assert its == sorted(set(its))  # one checkpoint per recorded iteration, in order
    utils = [prob.utility(x) for _, _, x in ctx.checkpoints]
    assert all(prob.feasibility(x).feasible for _, _, x in ctx.checkpoints)
    assert all(b >= a - 1e-12 * abs(a) for a, b in zip(utils, utils[1:])), utils
    assert utils[-1] > utils[0]  # it improved on MRT
    assert utils[-1] == prob.utility(sol.x)
    assert sol.info["best_loss"] == pytest.approx(-prob.utility(sol.x), rel=1e-12)


def test_same_seed_same_solution_and_other_seeds_differ():
    prob = miso(4, 4, 20.0, 1)
    a, _ = solve(prob, seed=3, iters=40)
    b, _ = solve(prob, seed=3, iters=40)
    c, _ = solve(prob, seed=4, iters=40)
    np.testing.assert_array_equal(a.x["V"], b.x["V"])
    assert not np.array_equal(a.x["V"], c.x["V"])


def test_penalty_only_result_reports_its_violation_and_final_projection_repairs_it():
    prob = toy("unitary", 2, 0, snr=20.0)
    sol, _ = solve(prob, project="p", iters=200, **SMALL)
    feas = prob.feasibility(sol.x)
    assert not feas.feasible
    assert feas.violations["Phi"] > feas.tolerances["Phi"]
    assert feas.violations["p"] <= feas.tolerances["p"]  # projected variable stays feasible
    assert sol.info["penalised"] == ["Phi"]
    # the penalised Phi pays off in utility beyond what any unitary Phi can give
    assert prob.utility(sol.x) > prob.closed_form()

    fixed, _ = solve(prob, project="p", iters=200, final_project=True, **SMALL)
    assert prob.feasibility(fixed.x).feasible
    assert prob.utility(fixed.x) <= prob.closed_form() * (1 + 1e-9)


def test_project_none_is_accepted_as_an_option_value():
    from wbench.selection import parse_item

    _, opts = parse_item("metaopt[project=none,hidden=20x20,activations=tanh-tanh,lr_by_var=V:1e-3]")
    resolved = SOLVER.resolve_options(opts)
    assert resolved["project"] is None
    prob = miso(2, 2, 10.0, 0)
    resolved["iters"] = 5
    sol, _ = solve(prob, **resolved)
    assert sol.info["projected"] == [] and sol.info["penalised"] == ["V"]


def test_seconds_budget_stops_the_loop_early():
    prob = miso(4, 4, 10.0, 0)
    ctx = RunContext(np.random.default_rng(0), budget_seconds=0.05)
    ctx.start()
    sol = SOLVER.solve(prob, {"iters": 100_000, **SMALL}, ctx)
    assert sol.iterations < 100_000 and sol.info["stopped"] == "time"
    assert prob.feasibility(sol.x).feasible


def test_option_parsers_and_errors():
    assert parse_hidden("400x400x400") == (400, 400, 400)
    assert parse_activations("sigmoid-tanh-tanh") == ("sigmoid", "tanh", "tanh")
    assert parse_lr_by_var("Phi:1e-4;P:1e-3") == {"Phi": 1e-4, "P": 1e-3}
    with pytest.raises(ParamError):
        SOLVER.resolve_options({"activations": "sigmoid-swish"})
    with pytest.raises(ParamError):
        SOLVER.resolve_options({"hidden": "400xx"})
    prob = miso(2, 2, 10.0, 0)
    with pytest.raises(ValueError, match="activations"):
        solve(prob, hidden="10x10", activations="tanh")
    with pytest.raises(ValueError, match="lr_by_var"):
        solve(prob, lr_by_var="Phi:1e-4")
    with pytest.raises(ValueError, match="project"):
        solve(prob, project="W")


def test_per_variable_learning_rate_is_used():
    prob = toy("unitary", 2, 0)
    sol, _ = solve(prob, lr_by_var="Phi:1e-4", iters=3)
    assert sol.info["lr"] == {"p": 1e-3, "Phi": 1e-4}
    frozen, _ = solve(prob, lr_by_var="Phi:0;p:0", iters=20, **SMALL)
    # with both rates zero the networks never move: every iterate is X1, so the best is X0 or X1
    assert frozen.info["best_iteration"] in (0, 1)


def test_modules_import_without_torch():
    code = ("import sys, wbench.solvers.gradient.metaopt, wbench.solvers.gradient.adam, wbench.solvers.common.gradient_loop; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


MRT_30DB = pytest.mark.xfail(
    strict=False, reason="from MRT metaopt stops at MRT's local optimum: ~94.7% of 10-start WMMSE at 30 dB")


@pytest.mark.slow
@pytest.mark.parametrize("snr", [10.0, 20.0, 30.0])
@pytest.mark.parametrize("init", ["rzf", "mrt"])
def test_miso_4x4_reaches_95_percent_of_multistart_wmmse(request, snr, init):
    """Seed-001 protocol for WMMSE (best of 10 starts, tol 1e-4, 100 iterations), 20 channels.

    From MRT (the default) metaopt converges to the local optimum of MRT's basin, the one single-start
    WMMSE from MRT finds too; at 30 dB that is about 95% of the multi-start WMMSE, so that case may fail
    (marked xfail, not hidden). From RZF it is well above 95% at every SNR.
    """
    from wbench.solvers.wmmse.wmmse import Wmmse

    if init == "mrt" and snr == 30.0:
        request.applymarker(MRT_30DB)
    ours, ref = [], []
    for i in range(20):
        prob = miso(4, 4, snr, i, seed=0)
        ref.append(prob.utility(Wmmse().solve(prob, {}, RunContext(np.random.default_rng(i))).x))
        sol, _ = solve(prob, seed=i, init=init)
        assert prob.feasibility(sol.x).feasible
        ours.append(prob.utility(sol.x))
    assert np.mean(ours) >= 0.95 * np.mean(ref), (np.mean(ours), np.mean(ref))
