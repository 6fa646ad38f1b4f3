"""``metaopt-alg3`` (seed 000, Algorithm 3 on the (BD-)RIS) and the warm-start stage of the gradient loop.

Oracles: the warm stage is exactly a standalone run on the diagonal RIS (same seed, same options); a
BD-RIS warm-started from the RIS never scores below it (the embedded diagonal solution is feasible for
the BD-RIS and the loop keeps the best iterate, also through the final projection); a penalty-only
``Phi`` is scored as returned (infeasible, its violation in the leaderboard), a projected one is unitary.
Networks are narrowed (``SMALL``) to keep the default run short; the solver's own defaults run once.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wbench.solvers.gradient.adam import Adam
from wbench.solvers.gradient.metaopt import MetaOpt, MetaOptAlg3
from tests.helpers import bdris_problem, miso_problem, solve_with

ALG3 = MetaOptAlg3()
SMALL = {"hidden": "64x64x64x64", "iters": 60, "warm_iters": 40}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make(seed: int, **given):
    return bdris_problem(seed, **{"Nt": 3, "K": 3, "B": 6, **given})


solve = solve_with


def test_the_warm_stage_is_a_standalone_run_on_the_diagonal_ris():
    full = make(1, architecture="fully")
    sol, ctx = solve(ALG3, full, **SMALL)
    alone, _ = solve(ALG3, full.warm_start().problem, **dict(SMALL, iters=SMALL["warm_iters"]))
    assert sol.info["warm"]["utility"] == pytest.approx(full.warm_start().problem.utility(alone.x), rel=1e-12)
    assert sol.iterations == SMALL["warm_iters"] + SMALL["iters"]
    # one trace on the BD-RIS, numbered across both stages, best-so-far by meta-loss
    its = [it for _, it, _ in ctx.checkpoints]
    assert its == sorted(set(its)) and its[-1] == sol.iterations
    assert all(x["Phi"].shape == (6, 6) for _, _, x in ctx.checkpoints)
    at_switch = [x for _, it, x in ctx.checkpoints if it <= SMALL["warm_iters"]][-1]
    assert full.utility(at_switch) == pytest.approx(sol.info["warm"]["utility"], rel=1e-9)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), arch=st.sampled_from(["fully", "group"]), symmetric=st.booleans(),
       final_project=st.booleans())
def test_bd_ris_warm_started_from_the_ris_never_scores_below_it(seed, arch, symmetric, final_project):
    full = make(seed, architecture=arch, group_size=3, symmetric=symmetric)
    sol, _ = solve(ALG3, full, seed=seed, final_project=final_project, **SMALL)
    if final_project:
        assert full.feasibility(sol.x).feasible
    assert full.utility(sol.x) >= sol.info["warm"]["utility"] - 1e-9


def test_penalty_only_phi_is_reported_and_the_final_projection_says_so(tmp_path, fresh_registry):
    from tests.helpers import compare, stored
    from wbench.ranking import leaderboard
    from wbench.render import to_markdown

    db = tmp_path / "a3.db"
    opts = "hidden=32x32x32x32,iters=30,warm_iters=10"
    assert compare(db, "--solvers", f"metaopt-alg3[{opts}],metaopt-alg3[{opts},final_project=false]",
                   "--set", "B=6", "--instances", "2", scenario="bdris") == 0
    lb = leaderboard(stored(db))
    rows = {(r["architecture"], r["budget"]): r for _, r in lb.iterrows()}
    penalised = [r for (arch, b), r in rows.items() if arch == "fully" and "final_project=False" in str(b)]
    projected = [r for (arch, b), r in rows.items() if arch == "fully" and "final_project=True" in str(b)]
    assert len(penalised) == len(projected) == 1
    assert penalised[0]["feasible_rate"] == 0 and penalised[0]["max_violation"] > 1e-6
    assert projected[0]["feasible_rate"] == 1 and projected[0]["max_violation"] <= 1e-6
    # a diagonal RIS's phases are exact (the paper's omega): feasible even without the final projection
    assert all(r["feasible_rate"] == 1 for (arch, _), r in rows.items() if arch == "diagonal")
    md = to_markdown(lb)
    assert "max viol" in md and f"{penalised[0]['max_violation']:.1e}" in md
    assert "final_project=True" in md and "final_project=False" in md


def test_the_defaults_are_the_papers_architecture_and_learn_one_network_per_variable():
    """Section VI-B: four hidden layers (sigmoid, tanh, tanh, none), rates 1e-3 (P) and 1e-4 (Phi), MRT."""
    o = ALG3.resolve_options({})
    assert (o["hidden"], o["activations"]) == ("400x400x400x400", "sigmoid-tanh-tanh-linear")
    # by role: the precoder is projected, the scattering matrix penalised (bdris names them P and Phi)
    assert (o["init"], o["project"], o["warm"]) == ("mrt", "precoder", "diagonal")
    full = make(2, architecture="fully")
    sol, _ = solve(ALG3, full, iters=3, warm_iters=2)
    assert sol.info["lr"] == {"P": 1e-3, "Phi": 1e-4}
    assert sol.info["penalised"] == ["Phi"] and sol.info["warm"]["iterations"] == 2
    assert full.feasibility(sol.x).feasible  # final_project=True by default
    assert MetaOpt().resolve_options({})["warm"] == "none"  # the generic solver is not staged by default


def test_warm_option_errors_and_problems_without_a_stage():
    full = make(3, architecture="fully")
    with pytest.raises(ValueError, match="'diagonal', not 'other'"):
        solve(ALG3, full, warm="other", **SMALL)
    prob = miso_problem(2, 2, 10.0, 0, 1)
    sol, _ = solve(Adam(), prob, warm="diagonal", iters=5)
    assert "not applicable" in sol.info["warm"] and sol.iterations == 5
    # adam shares the stage: its warm stage is the standalone diagonal run too
    a, _ = solve(Adam(), full, warm="diagonal", iters=5, warm_iters=7)
    b, _ = solve(Adam(), full.warm_start().problem, iters=7, final_project=True)
    assert a.info["warm"]["utility"] == pytest.approx(full.warm_start().problem.utility(b.x), rel=1e-12)
