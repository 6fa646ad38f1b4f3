"""Every generic solver on every new constraint kind (``tests/toy_sets_plugin.py``): it reaches the known
optimum at a feasible point, or declines with a reason (``spg``: ``plugins/wbench-spg/tests``).

* per-block power budgets (``case=block``): optimum ``log2(1 + (sum_b sqrt(P_b) ||h_b||)^2)``;
* a scenario QoS constraint (``case=qos``): water-filling with a floor; penalty solvers end the binding
  constraint violated by ``lambda / (2 w)`` (quadratic penalty of weight ``w``, ``lambda`` its multiplier),
  within the toy's tolerance of 1e-3, and constraint-aware ``multistart`` satisfies it;
* the hybrid precoder's power ``||F_RF F_BB||^2 <= P`` (``case=product``): optimum ``log2(1 + P ||h||^2)``.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import compare, solve_with, stored
from tests.toy_sets_plugin import toy_sets_problem
from wbench.solvers.gradient.adam import Adam
from wbench.solvers.manifold.riemannian import ManifoldSolver
from wbench.solvers.gradient.metaopt import MetaOpt
from wbench.solvers.local.multistart import Multistart
from wbench.solvers.wmmse.wmmse import Wmmse


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """One torch and one BLAS thread (tiny matrices; OpenBLAS threads spin-wait on shared cores)."""
    import scipy.optimize  # noqa: F401  (SciPy's own OpenBLAS, loaded before limiting)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


# solver, options, case -> None (runs: rel. tolerance on the optimum) or a word of the decline reason
EXPECTED = {
    ("adam", "block"): 1e-9, ("adam", "product"): 1e-9,
    ("metaopt", "block"): 1e-9, ("metaopt", "product"): 1e-9,
    ("multistart", "block"): 1e-9, ("multistart", "product"): 1e-9, ("multistart", "qos"): 1e-4,
    ("manifold", "block"): 1e-9, ("manifold", "qos"): "scenario constraints",
    ("manifold", "product"): "couples variables",
    ("wmmse", "block"): 1e-9, ("wmmse", "qos"): "linear-precoding view", ("wmmse", "product"): "view",
}
SOLVERS = {"adam": Adam(), "metaopt": MetaOpt(), "multistart": Multistart(), "manifold": ManifoldSolver(),
           "wmmse": Wmmse()}


@pytest.mark.parametrize("key", sorted(EXPECTED), ids=lambda k: f"{k[0]}-{k[1]}")
@pytest.mark.parametrize("seed", [0, 1])
def test_each_solver_reaches_the_optimum_or_declines(key, seed):
    name, case = key
    solver, expected = SOLVERS[name], EXPECTED[key]
    prob = toy_sets_problem(seed, case=case)
    reason = solver.declines(prob, {})
    if isinstance(expected, str):
        assert reason is not None and expected in reason
        assert not solver.supports_problem(prob)
        return
    assert reason is None
    opt = prob.closed_form_optimum()
    start = prob.initial("random", np.random.default_rng(seed))
    assert prob.utility(start) < opt * (1 - 1e-3)  # there is something to do
    sol, _ = solve_with(solver, prob, seed)
    assert prob.feasibility(sol.x).feasible, prob.feasibility(sol.x).violations
    assert prob.utility(sol.x) == pytest.approx(opt, rel=expected)


def test_block_optimum_puts_every_block_on_its_sphere():
    prob = toy_sets_problem(2, case="block", N=3, I=2)
    sol, _ = solve_with(Multistart(), prob, 0)
    powers = prob.variables["v"].constraint.block_powers(sol.x["v"])
    np.testing.assert_allclose(powers, prob.budgets, rtol=1e-6)
    assert prob.utility(sol.x) == pytest.approx(prob.closed_form_optimum(), rel=1e-9)


@pytest.mark.parametrize("weight", [100.0, 300.0, 1000.0])
def test_penalty_solver_violates_a_binding_qos_constraint_by_lambda_over_two_w(weight):
    """Quadratic-penalty theory: at the minimiser of ``-U + w relu(-c)^2`` the shortfall is ``lambda / 2w``;
    the weight comes from the solver option ``constraint_penalty``. Whether that is feasible is the
    problem's tolerance (1e-3 here): not at w = 100 or 300, yes at the problem's default w = 1000."""
    prob = toy_sets_problem(0, case="qos")
    lam, opt = prob.qos_multiplier(), prob.closed_form_optimum()
    assert lam > 0.1  # the floor binds
    sol, _ = solve_with(Adam(), prob, 0, iters=1000, constraint_penalty=weight)
    shortfall = prob.feasibility(sol.x).violations["qos"]
    assert shortfall == pytest.approx(lam / (2 * weight), rel=0.02)
    # above the constrained optimum by what the shortfall buys (lambda per bit of shortfall)
    assert prob.utility(sol.x) - opt == pytest.approx(lam * shortfall, rel=0.02)
    assert prob.feasibility(sol.x).feasible == (lam / (2 * weight) < prob.constraint_tol)


def test_metaopt_meets_the_qos_constraint_within_tolerance():
    prob = toy_sets_problem(1, case="qos")
    sol, _ = solve_with(MetaOpt(), prob, 1)
    assert prob.feasibility(sol.x).feasible
    assert prob.utility(sol.x) == pytest.approx(prob.closed_form_optimum(), rel=5e-4)


def test_the_unconstrained_optimum_violates_the_qos_floor():
    """The oracle is not vacuous: without the constraint the weak channel gets less than its floor."""
    from tests.toy_sets_plugin import waterfill_with_floor

    prob = toy_sets_problem(0, case="qos")
    free = waterfill_with_floor(prob.g, np.zeros(prob.g.size), prob.power)
    assert prob.constraints({"a": np.sqrt(free)})["qos"][0] < -0.1
    assert np.sum(np.log2(1 + prob.g * free)) > prob.closed_form_optimum()


def test_harness_runs_and_skips_with_the_reasons(tmp_path, fresh_registry, capsys):
    from tests import toy_sets_plugin

    fresh_registry.add_module(toy_sets_plugin, "tests", "0")
    db = tmp_path / "t.db"
    assert compare(db, "--solvers", "adam,manifold,multistart", "--instances", "1", "--set", "case=product",
                   scenario="toy-sets") == 0
    err = capsys.readouterr().err
    assert "manifold skipped: joint constraint" in err
    rows = stored(db)
    assert {r["label"] for r in rows} == {"adam", "multistart"}
    assert all(r["status"] == "ok" for r in rows)
