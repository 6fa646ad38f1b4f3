"""The recovering Riemannian CG/SD (:mod:`wbench.solvers.common.riemannian_descent`): no silent early stop.

Oracles: the headline channel on which pymanopt's CG stopped after 3 iterations (identified by its
fingerprint) against the trust-region method; the smallest eigenvalue of a Hermitian matrix (the minimum
of the Rayleigh quotient on the sphere); line searches forced to fail (a stalled run must say so, through
the solver, the harness row and the leaderboard); and line searches that fail now and then (the run must
recover and still converge).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.helpers import bdris_problem, compare, stored
from wbench.channels.channelset import GeneratedChannels
from wbench.ranking import leaderboard
from wbench.render import display_rows
from wbench.scenarios.bdris import Bdris
from wbench.solver import RunContext
from wbench.solvers.common import riemannian_descent as riemannian
from wbench.solvers.alternating.ao import Ao
from wbench.solvers.manifold.riemannian import ManifoldSolver
from wbench.solvers.common.manifolds import Sphere

#: Realisation 0 of `wbench compare --scenario bdris --set architecture=diagonal` (seed 0).
HEADLINE_DIAGONAL_0 = "c4b6012b9f3f6a1b"


def headline_diagonal(i: int):
    sc = Bdris()
    params = sc.resolve_params({"architecture": "diagonal"})
    ch, fp = GeneratedChannels(sc, params, 0).get(i)
    return sc.problem(params, ch), fp


def rayleigh(n: int, seed: int):
    """``f(x) = Re x^H A x`` on the unit sphere of ``C^n``: its minimum is ``lambda_min(A)``."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    a = z @ z.conj().T + np.diag(np.linspace(0.0, 5.0, n))
    x0 = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    return a, x0 / np.linalg.norm(x0), float(np.linalg.eigvalsh(a)[0])


def run_rayleigh(a, x0, **kw):
    return riemannian.minimise(Sphere((a.shape[0],), 1.0), lambda x: float(np.real(np.vdot(x, a @ x))),
                               lambda x: 2.0 * a @ x, x0, **kw)


def backtracking(manifold, cost):
    """A plain Armijo backtracking search (a delegate for the searches that fail on purpose)."""
    def search(x, d, f, df, a):
        for _ in range(60):
            x_new = manifold.retraction(x, a * d)
            f_new = cost(x_new)
            if f_new <= f + 1e-4 * a * df:
                return a, x_new, f_new
            a *= 0.5
        return None
    return search


# -- the regression test of the stall ------------------------------------------------------------------
def test_default_cg_reaches_trust_regions_on_the_headline_channel_where_pymanopt_cg_stalled():
    prob, fp = headline_diagonal(0)
    assert fp == HEADLINE_DIAGONAL_0  # the channel of the report (pymanopt CG: 3 iterations, 8.67 bit/s/Hz)
    solver = ManifoldSolver()
    cg = solver.solve(prob, {}, RunContext(np.random.default_rng(0)))
    tr = solver.solve(prob, {"method": "tr"}, RunContext(np.random.default_rng(0)))
    u_cg, u_tr = prob.utility(cg.x), prob.utility(tr.x)
    assert u_tr > 20.0  # the trust-region run is a real reference (24.9 bit/s/Hz when recorded)
    assert u_cg >= 0.99 * u_tr
    assert cg.iterations > 100 and not cg.info["stalled"]


@pytest.mark.parametrize("n,seed", [(3, 0), (8, 1), (20, 2)])
@pytest.mark.parametrize("method", ["cg", "sd"])
def test_reaches_the_smallest_eigenvalue_and_stops_as_stationary(n, seed, method):
    a, x0, lam = rayleigh(n, seed)
    out = run_rayleigh(a, x0, method=method, max_iter=20000, min_gradient_norm=1e-9)
    assert out.cost == pytest.approx(lam, abs=1e-9 * (1 + abs(lam)))
    assert out.stopping in (riemannian.GRADIENT, riemannian.ROUNDOFF) and not out.stalled
    assert out.gradient_norm <= out.gradient_tolerance


def test_gradient_tolerance_option_ends_the_run_there():
    a, x0, _ = rayleigh(10, 3)
    out = run_rayleigh(a, x0, min_gradient_norm=1e-2)
    assert out.stopping == riemannian.GRADIENT and out.gradient_norm <= 1e-2 and not out.stalled
    tight = run_rayleigh(a, x0, min_gradient_norm=1e-8)
    assert tight.iterations > out.iterations


def test_a_line_search_that_always_fails_is_reported_as_stalled():
    a, x0, lam = rayleigh(6, 4)
    out = run_rayleigh(a, x0, line_search=lambda *args: None)
    assert out.stalled and out.stopping == riemannian.LINE_SEARCH
    assert out.iterations == 0 and out.gradient_norm > out.gradient_tolerance
    assert out.cost > lam + 1e-3  # it really is far from the minimum


def test_failed_searches_along_conjugate_directions_restart_from_steepest_descent():
    a, x0, lam = rayleigh(12, 5)
    sphere = Sphere((12,), 1.0)
    cost = lambda x: float(np.real(np.vdot(x, a @ x)))  # noqa: E731
    inner = backtracking(sphere, cost)
    calls = {"n": 0, "failed": 0}

    def flaky(x, d, f, df, a0):
        calls["n"] += 1
        g = 2.0 * a @ x
        g = g - np.real(np.vdot(x, g)) * x
        steepest = np.allclose(d, -g, rtol=1e-12, atol=1e-14)
        if not steepest and calls["n"] % 3 == 0:  # every third conjugate-direction search fails
            calls["failed"] += 1
            return None
        return inner(x, d, f, df, a0)

    out = riemannian.minimise(sphere, cost, lambda x: 2.0 * a @ x, x0, line_search=flaky, max_iter=5000,
                              min_gradient_norm=1e-8)
    assert calls["failed"] > 0 and out.restarts >= calls["failed"]  # each failure was retried along -g
    assert out.cost == pytest.approx(lam, abs=1e-8 * (1 + abs(lam))) and not out.stalled


def test_time_budget_is_not_a_stall():
    a, x0, _ = rayleigh(30, 6)
    evaluations = {"n": 0}

    def expired():
        evaluations["n"] += 1
        return evaluations["n"] > 25

    out = run_rayleigh(a, x0, expired=expired, min_gradient_norm=0.0)
    assert out.stopping == riemannian.TIME and not out.stalled and math.isfinite(out.cost)
    assert out.cost <= float(np.real(np.vdot(x0, a @ x0)))


# -- a stall reaches the solution, the store and the leaderboard -----------------------------------------
def test_manifold_and_ao_report_a_forced_stall(monkeypatch):
    # Armijo with a sufficient-decrease constant of 1e6 can never be met: every line search fails.
    monkeypatch.setattr(riemannian, "SUFFICIENT_DECREASE", 1e6)
    prob, _ = headline_diagonal(0)
    small = bdris_problem(1, architecture="diagonal", B=4, Nt=2, K=2)
    for solver, p, opts in ((ManifoldSolver(), prob, {}), (ManifoldSolver(), prob, {"method": "sd"}),
                            (Ao(), small, {})):
        sol = solver.solve(p, opts, RunContext(np.random.default_rng(0)))
        assert sol.info["stalled"] is True, solver.name
    sol = ManifoldSolver().solve(prob, {}, RunContext(np.random.default_rng(0)))
    assert sol.info["stopping"] == riemannian.LINE_SEARCH
    assert sol.info["gradient_norm"] > sol.info["gradient_tolerance"]
    monkeypatch.undo()
    sol = ManifoldSolver().solve(prob, {"max_iter": 50}, RunContext(np.random.default_rng(0)))
    assert sol.info["stalled"] is False and sol.info["stopping"] == riemannian.MAX_ITER


def test_stalled_runs_are_stored_and_counted_in_the_leaderboard(tmp_path, monkeypatch):
    monkeypatch.setattr(riemannian, "SUFFICIENT_DECREASE", 1e6)
    db = tmp_path / "r.db"
    args = ("--set", "architecture=diagonal", "--set", "B=4", "--set", "Nt=2", "--set", "K=2",
            "--instances", "2", "--jobs", "1")
    assert compare(db, "--solvers", "manifold[max_iter=20],mrt", *args, scenario="bdris") == 0
    rows = stored(db)
    assert {r["label"]: r["stalled"] for r in rows if r["instance"] == 0} == {"manifold[max_iter=20]": 1,
                                                                              "mrt": None}
    assert all(r["status"] == "ok" for r in rows)  # a stall is not a failure: the answer is scored
    lb = leaderboard(rows).set_index("solver")
    assert lb.loc["manifold[max_iter=20]", "stalled"] == 2 and lb.loc["mrt", "stalled"] == 0
    header, cells = display_rows(leaderboard(rows))
    col = header.index("stalled")
    assert sorted(c[col] for c in cells) == ["-", "2"]
