"""The shared ``starts=N`` option (:mod:`wbench.starts`): declared once, first start = the solver's own run,
random feasible starts from the run's seed, best kept by the problem's judgement, one time budget, one
best-so-far trace numbered across starts, reproducible; never worse than ``starts=1``."""

from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import bdris_problem, compare, miso_problem, stored, toy_problem
from wbench import starts
from wbench.params import Param, ParamError
from wbench.problem import Problem
from wbench.solver import RunContext, Solution, Solver
from wbench.solvers.gradient.adam import Adam
from wbench.solvers.alternating.ao import Ao
from wbench.solvers.manifold.riemannian import ManifoldSolver
from wbench.solvers.gradient.metaopt import MetaOpt, MetaOptAlg3
from wbench.solvers.learned.mlbf import Mlbf
from wbench.solvers.local.multistart import Multistart
from wbench.solvers.wmmse.wmmse import Wmmse


class Probe(Solver):
    """Returns its starting point after ``steps`` checkpoints; records what it was handed."""

    name = "probe"
    multi_start = True
    options = {"init": Param(None, "initial point", nullable=True), "steps": Param(3, "checkpoints", min=0),
               "sleep": Param(0.0, "seconds per call", min=0)}
    seen: list[dict[str, Any]] = []

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        opts = self.resolve_options(options)
        x = ctx.initial(problem, opts["init"])
        Probe.seen.append({"x": x, "rng": ctx.rng, "random_start": ctx.random_start,
                           "began_after_budget": ctx.expired()})
        time.sleep(opts["sleep"])
        for i in range(opts["steps"] + 1):
            ctx.checkpoint(x, i, force=True)
        return Solution(x=x, iterations=opts["steps"], info={"stalled": len(Probe.seen) == 2})


class ProbeChild(Probe):
    """Overrides solve and calls the parent's: the starts must not nest."""

    name = "probe-child"

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        return super().solve(problem, options, ctx)


def run(solver: Solver, problem: Problem, seed: int = 0, budget: float | None = None, **options):
    ctx = RunContext(np.random.default_rng(seed), budget)
    return solver.solve(problem, options, ctx), ctx


def not_worse(problem: Problem, a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> bool:
    """``a`` is judged at least as good as ``b``: feasible beats infeasible, then the utility."""
    fa, fb = problem.feasibility(a).feasible, problem.feasibility(b).feasible
    if fa != fb:
        return fa
    return problem.utility(a) >= problem.utility(b)


# -- declaration -------------------------------------------------------------------------------------
def test_the_option_is_declared_once_for_local_solvers_and_shown_in_the_budget():
    for cls in (Adam, MetaOpt, MetaOptAlg3, ManifoldSolver, Ao, Probe, ProbeChild):
        assert cls.options["starts"] is starts.STARTS, cls.name
        assert "starts=1" in cls().budget_label(cls().resolve_options({})).split(","), cls.name
        assert "starts=4" in cls().budget_label(cls().resolve_options({"starts": 4})), cls.name
    for cls in (Wmmse, Multistart, Mlbf):  # their own starts option and meaning
        assert cls.options["starts"] is not starts.STARTS
    with pytest.raises(ParamError):
        Adam().resolve_options({"starts": 0})


def test_first_start_is_the_solvers_own_run_and_the_others_are_random_feasible_points():
    prob = miso_problem(4, 3, 10.0, 0, 0)
    Probe.seen = []
    sol, ctx = run(Probe(), prob, seed=3, starts=4, init="mrt")
    first, *rest = Probe.seen
    assert np.array_equal(first["x"]["V"], prob.initial("mrt")["V"]) and not first["random_start"]
    assert len(rest) == 3 and all(s["random_start"] for s in rest)
    assert all(prob.feasibility(s["x"]).feasible for s in rest)
    points = [s["x"]["V"] for s in Probe.seen]
    assert all(not np.allclose(points[i], points[j]) for i in range(4) for j in range(i))
    # the first start gets the run's generator; the others children of it, which do not advance its stream
    assert Probe.seen[0]["rng"] is ctx.rng and len({id(s["rng"]) for s in Probe.seen}) == 4
    assert np.array_equal(ctx.rng.random(3), np.random.default_rng(3).random(3))
    utilities = [prob.utility(s["x"]) for s in Probe.seen]
    assert prob.utility(sol.x) == max(utilities)
    assert sol.info["starts"]["best"] == int(np.argmax(utilities))
    assert [s["utility"] for s in sol.info["starts"]["per_start"]] == utilities


def test_starts_do_not_nest_through_super_and_stalls_are_counted():
    prob = miso_problem(2, 2, 10.0, 1, 0)
    Probe.seen = []
    sol, _ = run(ProbeChild(), prob, starts=3)
    assert len(Probe.seen) == 3
    assert sol.info["stalled"] is True and sol.info["stalled_starts"] == 1  # the probe's second call stalls


def test_one_trace_numbered_across_starts_best_so_far_ending_with_the_answer():
    prob = miso_problem(4, 4, 20.0, 2, 0)
    Probe.seen = []
    sol, ctx = run(Probe(), prob, seed=1, starts=5, steps=4)
    its = [it for _, it, _ in ctx.checkpoints]
    assert its == sorted(set(its)) and its[0] == 0 and its[-1] == 5 * 4 == sol.iterations
    ts = [t for t, _, _ in ctx.checkpoints]
    assert ts == sorted(ts)
    u = [prob.utility(s["x"]) for s in Probe.seen]
    trace = [prob.utility(x) for _, _, x in ctx.checkpoints]
    assert np.all(np.diff(trace) >= 0) and trace[-1] == max(u)
    for (_, it, _), v in zip(ctx.checkpoints, trace):  # start k holds iterations 4k..4k+4
        assert v >= max([u[k] for k in range(5) if 4 * k + 4 < it], default=-np.inf)
        assert v <= max(u[k] for k in range(5) if 4 * k <= it)
    assert np.array_equal(ctx.checkpoints[-1][2]["V"], sol.x["V"])


def test_all_starts_share_the_runs_time_budget():
    prob = miso_problem(2, 2, 10.0, 0, 0)
    Probe.seen = []
    sol, ctx = run(Probe(), prob, budget=0.2, starts=1000, sleep=0.05)
    assert 2 <= sol.info["starts"]["run"] < 10  # 1000 starts of 0.05 s: only the budget stops them
    # no start begins once the budget is spent (judged on the run's own clock, not the machine's speed)
    assert len(Probe.seen) == sol.info["starts"]["run"]
    assert not any(s["began_after_budget"] for s in Probe.seen) and ctx.expired()


def test_budget_column_and_stored_rows_show_the_starts(tmp_path):
    db = tmp_path / "s.db"
    assert compare(db, "--solvers", "adam[iters=5,starts=2],adam[iters=5]", "--set", "Nt=2", "--set", "K=2",
                   "--instances", "2", "--jobs", "1") == 0
    budgets = {r["label"]: r["budget"] for r in stored(db)}
    assert budgets == {"adam[iters=5,starts=2]": "iters=5,starts=2", "adam[iters=5]": "iters=5,starts=1"}
    from rich.console import Console

    from wbench.ranking import leaderboard
    from wbench.render import print_table

    console = Console(record=True, width=400)
    print_table(leaderboard(stored(db)), console)
    text = console.export_text()
    assert "adam[iters=5,starts=2]" in text and "adam[iters=5]" in text  # not eaten as rich markup
    by = {(r["label"], r["instance"]): r for r in stored(db)}
    for i in range(2):
        assert by[("adam[iters=5,starts=2]", i)]["iterations"] == 10
        assert by[("adam[iters=5,starts=2]", i)]["utility"] >= by[("adam[iters=5]", i)]["utility"]


# -- the property: never worse than one start, and reproducible ----------------------------------------
SOLVERS = {
    "adam": (Adam(), {"iters": 25}),
    "metaopt": (MetaOpt(), {"iters": 15, "hidden": "16", "activations": "tanh"}),
    "manifold": (ManifoldSolver(), {"max_iter": 25}),
    "manifold-sd": (ManifoldSolver(), {"max_iter": 25, "method": "sd"}),
    "ao": (Ao(), {"max_outer": 3, "cg_iter": 5}),
}
SCENARIOS = {
    "miso": lambda i: miso_problem(3, 3, 20.0, i, 7),
    "bdris-diagonal": lambda i: bdris_problem(i, architecture="diagonal", B=4, Nt=2, K=2),
    "bdris-fully": lambda i: bdris_problem(i, architecture="fully", B=4, Nt=2, K=2),
    "toy-unitary": lambda i: toy_problem("unitary", 2, i, 5),
}


@settings(max_examples=14, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(solver=st.sampled_from(sorted(SOLVERS)), scenario=st.sampled_from(sorted(SCENARIOS)),
       instance=st.integers(0, 3), seed=st.integers(0, 2**16), n=st.integers(2, 4))
def test_more_starts_are_never_worse_than_one(solver, scenario, instance, seed, n):
    s, opts = SOLVERS[solver]
    prob = SCENARIOS[scenario](instance)
    if s.declines(prob, opts):  # ao runs on bdris only
        return
    one, _ = run(s, prob, seed, **opts)
    plain, _ = run(s, prob, seed, **{**opts, "starts": 1})
    many, _ = run(s, prob, seed, **{**opts, "starts": n})
    assert np.array_equal(one.x[next(iter(prob.variables))], plain.x[next(iter(prob.variables))])
    assert many.info["starts"]["run"] == n
    # the first start is exactly the one-start run, and the best start is returned
    assert many.info["starts"]["per_start"][0]["utility"] == prob.utility(one.x)
    assert not_worse(prob, many.x, one.x)
    again, _ = run(s, prob, seed, **{**opts, "starts": n})
    for k in prob.variables:
        assert np.array_equal(many.x[k], again.x[k])  # same seed, same answer
    assert many.info["starts"] == again.info["starts"]


def test_random_starts_depend_on_the_seed():
    prob = bdris_problem(2, architecture="diagonal", B=4, Nt=2, K=2)
    a, _ = run(ManifoldSolver(), prob, 11, max_iter=10, starts=3)
    b, _ = run(ManifoldSolver(), prob, 12, max_iter=10, starts=3)
    ua = [s["utility"] for s in a.info["starts"]["per_start"]]
    ub = [s["utility"] for s in b.info["starts"]["per_start"]]
    assert ua[0] == ub[0] and ua[1:] != ub[1:]


def test_the_headline_selection_states_the_starts_of_every_solver(fresh_registry):
    from wbench.selection import select

    specs, _ = select(fresh_registry, "meta,conventional", "bdris")
    assert {"adam", "metaopt", "metaopt-alg3", "manifold", "ao", "wmmse", "multistart"} <= {s.name for s in specs}
    for spec in specs:  # every meta and conventional solver here starts from points
        assert "starts" in spec.solver.options, spec.name
        assert any(part.startswith("starts=") for part in spec.budget.split(",")), spec.name
