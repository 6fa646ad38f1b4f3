"""The ``ao`` solver (alternating WMMSE / Riemannian CG for ``bdris``): closed forms,
architecture equivalences, warm start from the diagonal RIS, gradients of every Phi chart, feasibility,
determinism, traces, budgets, registration and light import."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import bdris_problem, miso_problem
from wbench.channels.rayleigh import cn
from wbench.params import ParamError
from wbench.registry import Registry
from wbench.solver import RunContext
from wbench.solvers.alternating import ao as alternating
from wbench.solvers.alternating.ao import Ao, PhiChart

AO = Ao()
TIGHT = {"tol": 1e-12, "max_outer": 300}  # run to convergence for the closed-form checks


make = bdris_problem


def solve(prob, seed: int = 0, budget: float | None = None, **options):
    ctx = RunContext(np.random.default_rng(seed), budget)
    return AO.solve(prob, options, ctx), ctx


# -- gradients of every Phi chart (autograd through U U^T included) -----------------------------------
CHARTS = [("diagonal", False, 1), ("fully", False, 1), ("fully", True, 1), ("group", False, 2),
          ("group", True, 2)]


@pytest.mark.parametrize("arch,sym,g", CHARTS)
def test_riemannian_gradient_of_the_phi_step_matches_finite_differences(arch, sym, g):
    import pymanopt

    prob = make(4, Nt=2, K=2, B=4, architecture=arch, symmetric=sym, group_size=g)
    rng = np.random.default_rng(0)
    x = prob.initial("random", rng)
    chart = PhiChart(prob.variables["Phi"])
    objective = alternating._PhiObjective(prob, chart)
    objective.start(x["P"])
    M = chart.manifold()
    decorate = pymanopt.function.numpy(M)
    mp = pymanopt.Problem(M, decorate(lambda p: objective.cost(p)),
                          euclidean_gradient=decorate(lambda p: objective.gradient(p)))
    point = chart.to_point(x["Phi"])
    assert np.linalg.norm(chart.to_phi(point) - x["Phi"]) <= 1e-12  # the chart inverts to_point
    assert mp.cost(point) == pytest.approx(-prob.utility(x), rel=1e-12)
    grad = mp.riemannian_gradient(point)
    for _ in range(3):
        amb = cn(rng, point.shape)
        xi = M.projection(point, amb)
        xi = xi / M.norm(point, xi)
        t = 1e-6
        slope = (mp.cost(M.retraction(point, t * xi)) - mp.cost(M.retraction(point, -t * xi))) / (2 * t)
        ip = M.inner_product(point, grad, xi)
        assert abs(slope - ip) <= 1e-6 * max(1.0, abs(ip)), (slope, ip)


# -- single-user closed forms (Nerini, Shen, Clerckx) -----------------------------------------------
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("seed,nt,b", [(0, 3, 6), (1, 2, 5), (2, 3, 8)])
@pytest.mark.parametrize("arch", ["fully", "group"])
def test_single_user_fully_connected_reaches_the_closed_form(seed, nt, b, symmetric, arch):
    # group with group_size = B is the fully-connected BD-RIS on U(B)^1: both runs end at the same
    # (global) optimum from the same start, whatever round-off does to their paths
    prob = make(seed, K=1, Nt=nt, B=b, architecture=arch, symmetric=symmetric, group_size=b)
    sol, _ = solve(prob, **TIGHT)
    smax = np.linalg.svd(prob.G, compute_uv=False)[0]
    closed = np.log2(1 + prob.gain * prob.power * np.sum(np.abs(prob.Hr[0]) ** 2) * smax**2)
    assert prob.feasibility(sol.x).feasible
    assert prob.utility(sol.x) == pytest.approx(closed, rel=1e-9)
    if symmetric:
        assert np.array_equal(sol.x["Phi"], sol.x["Phi"].T)


@pytest.mark.parametrize("seed,b", [(0, 6), (1, 9), (2, 16)])
def test_single_user_single_antenna_diagonal_ris_reaches_the_closed_form(seed, b):
    prob = make(seed, K=1, Nt=1, B=b, architecture="diagonal")
    sol, _ = solve(prob, **TIGHT)
    closed = np.log2(1 + prob.gain * prob.power * np.sum(np.abs(prob.Hr[0]) * np.abs(prob.G[:, 0])) ** 2)
    assert prob.feasibility(sol.x).feasible
    assert prob.utility(sol.x) == pytest.approx(closed, rel=1e-9)


# -- architecture equivalences ----------------------------------------------------------------------
# U(B)^1 with (1, B, B) points and U(B) with (B, B) points are the same manifold, cost and algorithm; the
# arithmetic differs in round-off only (batched or plain products; torch's (1, B, B) @ (1, B, B) and
# block_diag for U U^T when symmetric: loss and gradient differ by ~1e-15 at the same point). Riemannian CG
# amplifies such differences by about 1e5 per outer step of 20 CG iterations (Hestenes-Stiefel's beta
# and the line search's first trial step depend on them), so after a few outer steps the two runs take
# different paths: the runs are compared step by step at machine precision, and at their ends only by
# what the algorithm guarantees.
def _pair(seed: int, sym: bool, **kw):
    kw = dict(Nt=2, K=2, B=6, symmetric=sym, **kw)
    return make(seed, architecture="fully", **kw), make(seed, architecture="group", group_size=kw["B"], **kw)


@pytest.mark.parametrize("sym", [False, True])
def test_group_size_b_chart_is_the_fully_connected_chart(sym):
    import pymanopt

    full, grp = _pair(4, sym)
    x = full.initial("random", np.random.default_rng(0))
    probs = []
    for prob in (full, grp):
        chart = PhiChart(prob.variables["Phi"])
        objective = alternating._PhiObjective(prob, chart)
        objective.start(x["P"])
        M = chart.manifold()
        decorate = pymanopt.function.numpy(M)
        probs.append((chart, M, pymanopt.Problem(M, decorate(lambda p, o=objective: o.cost(p)),
                                                 euclidean_gradient=decorate(lambda p, o=objective: o.gradient(p)))))
    (cf, Mf, pf), (cg, Mg, pg) = probs
    point = cf.to_point(x["Phi"])
    assert np.array_equal(cg.to_point(x["Phi"]), point[None])  # the same Takagi factor, the same point
    assert pg.cost(point[None]) == pytest.approx(pf.cost(point), rel=1e-13)
    gf, gg = pf.riemannian_gradient(point), pg.riemannian_gradient(point[None])
    assert np.abs(gg[0] - gf).max() <= 1e-13 * np.abs(gf).max()
    step = -0.1 * gf / Mf.norm(point, gf)
    assert np.abs(Mg.retraction(point[None], step[None])[0] - Mf.retraction(point, step)).max() <= 1e-14
    assert Mg.inner_product(point[None], gg, gg) == pytest.approx(Mf.inner_product(point, gf, gf), rel=1e-13)


@pytest.mark.parametrize("sym", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_group_size_b_outer_step_is_the_fully_connected_step(seed, sym):
    """One outer step (a WMMSE sweep, then one CG step: steepest descent with backtracking) from the same
    points, taken along a fully-connected run: the same step at machine precision."""
    full, grp = _pair(seed, sym)
    run, ctx = solve(full, 1, init="random", max_outer=25)
    points = [x for _, _, x in ctx.checkpoints][::4]
    assert len(points) >= 4
    opts = AO.resolve_options({"max_outer": 1, "cg_iter": 1, "tol": 0.0})
    for x in points:
        a = alternating._alternate(full, x, opts, RunContext(np.random.default_rng(0)), 0, None)
        b = alternating._alternate(grp, x, opts, RunContext(np.random.default_rng(0)), 0, None)
        assert a.steps == b.steps == 1
        assert np.abs(a.x["Phi"] - b.x["Phi"]).max() <= 1e-12
        assert np.abs(a.x["P"] - b.x["P"]).max() <= 1e-12 * np.sqrt(full.power)
        assert a.utility == pytest.approx(b.utility, rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_group_size_b_run_ends_where_the_algorithm_guarantees(seed):
    """25 outer steps with the defaults: both runs start at the same point, agree after the first outer step
    to the round-off growth of 20 CG steps (measured ~1e-11 relative; 1e-8 allowed), never lose utility
    afterwards, so each ends at least where the other was after one outer step, and both end feasible."""
    for sym in (False, True):
        full, grp = _pair(seed, sym)
        a, _ = solve(full, 1, init="random", max_outer=25)
        b, _ = solve(grp, 1, init="random", max_outer=25)
        ta, tb = a.info["rate_trace"], b.info["rate_trace"]
        assert full.feasibility(a.x).feasible and grp.feasibility(b.x).feasible
        assert ta[0] == pytest.approx(tb[0], rel=1e-13)
        assert ta[1] == pytest.approx(tb[1], rel=1e-8)
        for t in (ta, tb):
            assert np.all(np.diff(t) >= -1e-9 * np.abs(t[:-1]))
        ua, ub = full.utility(a.x), grp.utility(b.x)
        assert min(ua, ub) >= max(ta[1], tb[1]) - 1e-9 * abs(ta[1])
        assert min(ua, ub) > ta[0] + 1.0  # both climbed well above the common start


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_group_size_one_is_the_diagonal_run(seed):
    # The complex circle and U(1)^B have the same metric, Riemannian gradient and retraction; they differ
    # only in the vector transport, which CG uses from its second step on. With one (steepest-descent) CG
    # step per Phi step the two runs are the same algorithm, so they agree to round-off (1e-9 leaves
    # 5 orders for its growth over ~100 outer steps).
    kw = dict(Nt=2, K=2, B=6)
    diag, grp = make(seed, architecture="diagonal", **kw), make(seed, architecture="group", group_size=1, **kw)
    a, _ = solve(diag, 1, cg_iter=1)
    b, _ = solve(grp, 1, cg_iter=1)
    assert diag.feasibility(a.x).feasible and grp.feasibility(b.x).feasible
    assert np.abs(np.diag(a.x["Phi"]) - b.x["Phi"]).max() <= 1e-9
    assert np.abs(a.x["P"] - b.x["P"]).max() <= 1e-9 * np.sqrt(diag.power)
    assert diag.utility(a.x) == pytest.approx(grp.utility(b.x), rel=1e-10)
    assert a.info["outer_steps"] == b.info["outer_steps"] > 3


# -- warm start from the diagonal RIS ---------------------------------------------------------------
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), nt=st.integers(1, 3), k=st.integers(1, 3), b=st.integers(2, 6),
       symmetric=st.booleans(), init=st.sampled_from(["mrt", "random"]))
def test_bd_ris_warm_started_from_the_ris_never_scores_below_it(seed, nt, k, b, symmetric, init):
    opts = dict(warm="diagonal", init=init, max_outer=30, cg_iter=10)
    full = make(seed, Nt=nt, K=k, B=b, architecture="fully", symmetric=symmetric)
    diag = make(seed, Nt=nt, K=k, B=b, architecture="diagonal")
    s_full, _ = solve(full, seed, **opts)
    s_diag, _ = solve(diag, seed, **opts)
    assert full.feasibility(s_full.x).feasible and diag.feasibility(s_diag.x).feasible
    assert full.utility(s_full.x) >= diag.utility(s_diag.x) - 1e-9
    # the first phase is exactly the diagonal run (same options, same draws from the seed)
    assert s_full.info["warm"]["utility"] == pytest.approx(diag.utility(s_diag.x), rel=1e-12)
    # ... and the BD-RIS phase starts at its solution, diag(phi) with its precoder
    assert s_full.info["rate_trace"][0] == pytest.approx(s_full.info["warm"]["utility"], rel=1e-12)


@pytest.mark.parametrize("arch,sym", [("fully", False), ("fully", True), ("group", False)])
def test_warm_start_is_the_diagonal_ris_on_the_same_channel_embedded_feasibly(arch, sym):
    full = make(3, Nt=2, K=2, B=6, architecture=arch, symmetric=sym, group_size=3)
    warm = full.warm_start()
    ref = make(3, Nt=2, K=2, B=6, architecture="diagonal")
    x = ref.initial("random", np.random.default_rng(0))
    assert warm.name == "diagonal" and ref.warm_start() is None
    assert warm.problem.utility(x) == ref.utility(x)
    y = warm.embed(x)
    assert full.utility(y) == pytest.approx(ref.utility(x), rel=1e-12)
    assert full.feasibility(y).feasible  # diag(phi) is unitary, block-unitary and symmetric
    assert warm.problem.variables["Phi"].shape == (6,) and full.variables["Phi"].shape == (6, 6)


# -- feasibility, determinism, traces, budget -------------------------------------------------------
@pytest.mark.parametrize("arch,sym,g", CHARTS)
def test_results_are_feasible_and_improve_on_the_start(arch, sym, g):
    prob = make(5, Nt=3, K=3, B=6, architecture=arch, symmetric=sym, group_size=g)
    sol, _ = solve(prob, 2, max_outer=40)
    assert prob.feasibility(sol.x).feasible
    assert prob.utility(sol.x) > prob.utility(prob.initial("mrt")) + 1.0
    if sym:
        assert np.array_equal(sol.x["Phi"], sol.x["Phi"].T)


def test_same_seed_same_solution_and_the_random_start_comes_from_the_rng():
    prob = make(6, Nt=2, K=2, B=6, architecture="fully")
    a, ca = solve(prob, 7, init="random", max_outer=20)
    b, cb = solve(prob, 7, init="random", max_outer=20)
    c, _ = solve(prob, 8, init="random", max_outer=20)
    assert np.array_equal(a.x["P"], b.x["P"]) and np.array_equal(a.x["Phi"], b.x["Phi"])
    assert a.info == b.info
    assert [it for _, it, _ in ca.checkpoints] == [it for _, it, _ in cb.checkpoints]
    assert not np.array_equal(a.x["Phi"], c.x["Phi"])
    assert a.info["rate_trace"][0] != c.info["rate_trace"][0]


def test_trace_is_best_so_far_by_outer_step_and_ends_with_the_solution():
    prob = make(7, Nt=3, K=3, B=6, architecture="group", group_size=3)
    sol, ctx = solve(prob, 0, warm="diagonal", max_outer=25)
    its = [it for _, it, _ in ctx.checkpoints]
    rates = [prob.utility(x) for _, _, x in ctx.checkpoints]
    assert its == sorted(its) and its[0] == 0 and len(its) >= 10
    assert np.all(np.diff(rates) >= -1e-9) and rates[-1] > rates[0]
    assert all(prob.feasibility(x).feasible for _, _, x in ctx.checkpoints)  # diag(phi) points included
    assert np.array_equal(ctx.checkpoints[-1][2]["Phi"], sol.x["Phi"])
    assert its[-1] == sol.iterations == sol.info["warm"]["outer_steps"] + 1 + sol.info["outer_steps"]
    trace = sol.info["rate_trace"]  # per outer step, non-decreasing: both half-steps are ascent steps
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[:-1]))


def test_stops_on_the_relative_change_or_max_outer():
    prob = make(8, Nt=2, K=2, B=4, architecture="fully")
    loose, _ = solve(prob, tol=1e-2)
    capped, _ = solve(prob, tol=0.0, max_outer=3)
    assert loose.info["stopping"].startswith("relative change")
    t = loose.info["rate_trace"]
    assert abs(t[-1] - t[-2]) <= 1e-2 * abs(t[-2])
    assert all(abs(b - a) > 1e-2 * abs(a) for a, b in zip(t[:-2], t[1:-1]))
    assert capped.info["outer_steps"] == 3 and capped.info["stopping"].startswith("max_outer")


def test_respects_the_budget_and_returns_a_feasible_point():
    prob = make(9, Nt=4, K=4, B=32, architecture="fully")
    sol, ctx = solve(prob, budget=0.3, tol=0.0, max_outer=10_000)
    assert sol.info["stopping"] == "budget spent" and sol.info["outer_steps"] < 10_000
    assert prob.feasibility(sol.x).feasible


def test_options_are_validated():
    prob = make(0, B=4)
    with pytest.raises(ParamError):
        solve(prob, init="zf")
    with pytest.raises(ParamError):
        solve(prob, warm="fully")
    with pytest.raises(ParamError):
        solve(prob, wmmse_iter=0)


# -- registration, light import ---------------------------------------------------------------------
def test_registered_through_the_hook_and_applies_by_role():
    reg = Registry()
    reg.load_builtins()
    assert any(p.name == "wbench.solvers.alternating.ao" for p in reg.plugins)
    s = reg.solvers["ao"]
    assert isinstance(s, Ao) and s.tags == {"conventional"} and s.uses_torch
    for arch in ("diagonal", "fully", "group"):
        assert s.supports_problem(make(0, B=4, group_size=2, architecture=arch))
    # generic by role: a problem without a scattering matrix (miso) is declined with the reason
    reason = s.declines(miso_problem(2, 2, 10.0, 0, 0), {})
    assert reason is not None and "scattering" in reason


def test_importing_does_not_load_torch_or_pymanopt():
    code = ("import sys, wbench.solvers.alternating.ao; "
            "sys.exit(1 if {'torch', 'pymanopt'} & set(sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.slow
def test_paper_scale_bd_ris_beats_the_ris_on_every_channel(tmp_path, fresh_registry):
    """Seed 000, Fig. 9 configuration (K = 10, B = 200, Nt = 15, 30 dBm): the fully-connected BD-RIS,
    warm-started from the RIS solution, scores above the diagonal RIS on the same channels (the paper's
    claim; it can only fail by more than the warm start guarantees, i.e. if the BD-RIS phase adds nothing)."""
    from tests.helpers import compare, stored

    db = tmp_path / "paper.db"
    assert compare(db, "--solvers", "ao[warm=diagonal]", "--set", "K=10", "--set", "B=200", "--set", "Nt=15",
                   "--sweep", "architecture=diagonal,fully", "--instances", "2", scenario="bdris") == 0
    rows = stored(db)
    by = {(r["instance"], json.loads(r["params"])["architecture"]): r for r in rows}
    assert len(by) == 4 and all(r["status"] == "ok" for r in rows)
    for i in range(2):
        assert by[(i, "fully")]["utility"] > by[(i, "diagonal")]["utility"] + 1.0
