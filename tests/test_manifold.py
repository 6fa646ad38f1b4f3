"""The ``manifold`` solver: closed forms, the UnitaryGroup fix, gradient/Hessian checks on every manifold
factor, bounds on miso, declining unsupported problems, budgets, traces and determinism."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

from wbench import engine
from wbench.channels.rayleigh import cn
from wbench.params import Param, ParamError
from wbench.problem import (
    BlockPowerBall, BlockUnitary, Box, PowerBall, Problem, Simplex, Unconstrained, Unitary, UnitModulus, Variable,
)
from wbench.scenario import Scenario
from wbench.hookspecs import hookimpl
from wbench.scenarios.miso import Miso
from wbench.selection import select
from wbench.solver import RunContext
from wbench.solvers.common import manifolds
from wbench.solvers.wmmse.dpc_bound import DpcBound
from wbench.solvers.manifold.riemannian import ManifoldSolver, _Objective, make_pymanopt_problem
from wbench.store import Store
from tests import toy_plugin
from tests.helpers import compare

SOLVER = ManifoldSolver()


def toy(seed: int, **given) -> Problem:
    sc = toy_plugin.ToyRis()
    params = sc.resolve_params(given)
    return sc.problem(params, sc.draw(params, np.random.default_rng(seed)))


def miso(seed: int, **given) -> Problem:
    sc = Miso()
    params = sc.resolve_params(given)
    return sc.problem(params, sc.draw(params, np.random.default_rng(seed)))


def solve(prob: Problem, seed: int = 0, budget: float | None = None, **options):
    ctx = RunContext(np.random.default_rng(seed), budget)
    return SOLVER.solve(prob, options, ctx), ctx


# -- a problem with every mapped set, for the derivative checks ---------------------------------
class AllSets(Problem):
    """``L = -log(1 + |z|^2 + |z w|^2)``, ``z, w`` linear in every variable: smooth, curved, coupled."""

    def __init__(self, seed: int) -> None:
        variables = {
            "p": Variable((3, 2), PowerBall(2.0)),
            "phi": Variable((2, 3), UnitModulus()),  # 2-D: the circle factor is flattened
            "U": Variable((3, 3), Unitary()),
            "Bk": Variable((4, 4), BlockUnitary(2)),
            "r": Variable((3,), PowerBall(0.5), complex=False),
            "bp": Variable((4, 2), BlockPowerBall((1.0, 3.0), (1, 3))),  # two spheres on blocks of rows
            "br": Variable((2, 3), BlockPowerBall((0.5, 2.0), (2, 1), axis=1), complex=False),
            "fl": Variable((2,), Unconstrained()),  # the whole space
        }
        super().__init__(variables, "all-sets", {}, ("random",))
        rng = np.random.default_rng(seed)
        self.c = {k: cn(rng, v.shape) if v.complex else rng.standard_normal(v.shape)
                  for k, v in variables.items()}
        self.d = {k: cn(rng, v.shape) if v.complex else rng.standard_normal(v.shape)
                  for k, v in variables.items()}

    def _zw(self, x, vdot):
        z = sum(vdot(self.c[k], x[k]) for k in self.variables)
        w = sum(vdot(self.d[k], x[k]) for k in self.variables)
        return z, w

    def utility(self, x):
        z, w = self._zw(x, lambda a, b: np.vdot(a, b))
        return float(np.log(1 + abs(z) ** 2 + abs(z * w) ** 2))

    def loss_torch(self, x):
        import torch

        def vdot(a, b):
            return (torch.as_tensor(a, dtype=b.dtype).conj() * b).sum()

        z, w = self._zw(x, vdot)
        return -torch.log(1 + z.abs() ** 2 + (z * w).abs() ** 2)


def _setup(prob: Problem, seed: int = 0):
    pmap = manifolds.ProductMap(prob)
    objective = _Objective(prob, pmap, RunContext(np.random.default_rng(seed)))
    mp = make_pymanopt_problem(prob, objective, pmap, hessian=True)
    point = pmap.to_points(prob.initial("random", np.random.default_rng(seed)))
    return pmap, mp, point


def _direction(pmap, mp, point, rng, only: int | None):
    """A random tangent vector (ambient Gaussian, projected), optionally on one factor only."""
    amb = []
    for i, p in enumerate(point):
        v = rng.standard_normal(p.shape) + (1j * rng.standard_normal(p.shape) if np.iscomplexobj(p) else 0)
        amb.append(v if only in (None, i) else np.zeros_like(v))
    xi = mp.manifold.projection(point, amb)
    return xi / mp.manifold.norm(point, xi)


FACTORS = ["p", "phi", "U", "Bk", "r", "bp", "br", "fl", None]  # one check per manifold type, then all


@pytest.mark.parametrize("factor", FACTORS)
def test_riemannian_gradient_and_hessian_match_finite_differences(factor):
    prob = AllSets(3)
    pmap, mp, point = _setup(prob)
    M = mp.manifold
    only = None if factor is None else list(prob.variables).index(factor)
    f = mp.cost
    for trial in range(3):
        rng = np.random.default_rng(100 + trial)  # not the seed of the point: parallel draws
        xi = _direction(pmap, mp, point, rng, only)
        grad = mp.riemannian_gradient(point)
        # the Riemannian gradient is a tangent vector
        assert M.norm(point, grad - M.to_tangent_space(point, grad)) <= 1e-12 * M.norm(point, grad)
        t = 1e-5
        fp, fm = f(M.retraction(point, t * xi)), f(M.retraction(point, -t * xi))
        slope = (fp - fm) / (2 * t)
        ip = M.inner_product(point, grad, xi)
        assert isinstance(ip, float)  # a real metric (the shipped UnitaryGroup returns a complex number)
        assert abs(slope - ip) <= 1e-7 * max(1.0, abs(ip)), (slope, ip)
        # Second order along the (second-order) retractions: <Hess xi, xi>.
        t = 1e-4
        f0 = f(point)
        curv = (f(M.retraction(point, t * xi)) - 2 * f0 + f(M.retraction(point, -t * xi))) / t**2
        hq = M.inner_product(point, mp.riemannian_hessian(point, xi), xi)
        assert abs(curv - hq) <= 1e-4 * max(1.0, abs(hq)), (curv, hq)


def test_euclidean_gradient_convention_is_the_real_metric_one():
    # d/dt L(x + t v) = Re <egrad, v>: torch's dL/dRe + i dL/dIm, no factor 2 (nor 1/2).
    prob = AllSets(5)
    pmap, mp, point = _setup(prob)
    rng = np.random.default_rng(1)
    egrad = mp.euclidean_gradient(point)
    v = [rng.standard_normal(p.shape) + (1j * rng.standard_normal(p.shape) if np.iscomplexobj(p) else 0)
         for p in point]
    t = 1e-6
    fp = mp.cost([p + t * d for p, d in zip(point, v)])
    fm = mp.cost([p - t * d for p, d in zip(point, v)])
    slope = (fp - fm) / (2 * t)
    ip = sum(float(np.real(np.vdot(g, d))) for g, d in zip(egrad, v))
    assert slope == pytest.approx(ip, rel=1e-7)


# -- the UnitaryGroup fix --------------------------------------------------------------------------
def _random_unitary(rng, n):
    q, _ = np.linalg.qr(cn(rng, (n, n)))
    return q


@pytest.mark.parametrize("n", [2, 4])
def test_fixed_unitary_group_projects_onto_skew_hermitian_and_shipped_one_does_not(n):
    from pymanopt.manifolds import UnitaryGroup as Shipped

    rng = np.random.default_rng(n)
    X, G, H = _random_unitary(rng, n), cn(rng, (n, n)), cn(rng, (n, n))
    A = cn(rng, (n, n))
    omega = 0.5 * (A - A.conj().T)  # a tangent vector X omega, in the Lie-algebra coordinates
    for cls, fixed in ((manifolds.UnitaryGroup, True), (Shipped, False)):
        M = cls(n)
        om, eta = M.projection(X, G), M.projection(X, H)
        skewh_residual = np.linalg.norm(om + om.conj().T)  # X^H xi must be skew-Hermitian
        ip = M.inner_product(X, om, eta)
        keeps_tangent = np.linalg.norm(M.projection(X, X @ omega) - omega)  # a projection fixes tangents
        if fixed:
            assert skewh_residual <= 1e-12 and keeps_tangent <= 1e-12
            assert np.isrealobj(ip) and ip == pytest.approx(np.real(np.vdot(om, eta)), rel=1e-12)
            # orthogonal in Re tr(A^H B): the residual G - X om is normal to the tangent space
            assert abs(np.real(np.vdot(X @ eta, G - X @ om))) <= 1e-12
        else:
            assert skewh_residual > 0.1 and keeps_tangent > 0.1
            assert abs(np.imag(ip)) > 1e-3


def test_shipped_unitary_group_stalls_where_the_fixed_one_reaches_the_closed_form(monkeypatch):
    from pymanopt.manifolds import UnitaryGroup as Shipped

    probs = [toy(seed, Nt=2, B=4) for seed in range(3)]
    fixed = [p.utility(solve(p)[0].x) / p.closed_form() for p in probs]
    manifolds._classes()

    class ShippedPolar(Shipped):
        def __init__(self, n, *, k=1):
            super().__init__(n, k=k, retraction="polar")

    monkeypatch.setattr(manifolds, "_UNITARY", ShippedPolar)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it casts its complex inner products to float
        shipped = [p.utility(solve(p)[0].x) / p.closed_form() for p in probs]
    assert min(fixed) >= 1 - 1e-9
    assert max(shipped) < 1 - 1e-3


# -- closed forms ----------------------------------------------------------------------------------
@pytest.mark.parametrize("nt,b", [(2, 4), (3, 5), (2, 6), (3, 6)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unitary_toy_reaches_the_closed_form(nt, b, seed):
    prob = toy(seed, Nt=nt, B=b, architecture="unitary")
    sol, _ = solve(prob, seed)
    assert prob.feasibility(sol.x).feasible
    assert prob.utility(sol.x) == pytest.approx(prob.closed_form(), rel=1e-8)


@pytest.mark.parametrize("method", ["sd", "tr"])
def test_other_methods_reach_the_unitary_closed_form(method):
    prob = toy(4, Nt=3, B=5)
    sol, _ = solve(prob, method=method)
    assert prob.utility(sol.x) == pytest.approx(prob.closed_form(), rel=1e-8)


@pytest.mark.parametrize("b", [3, 6])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_diagonal_toy_reaches_the_closed_form(b, seed):
    prob = toy(seed, Nt=1, B=b, architecture="diagonal")
    sol, _ = solve(prob, seed)
    assert prob.feasibility(sol.x).feasible
    assert prob.utility(sol.x) == pytest.approx(prob.closed_form(), rel=1e-4)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0, 30.0])
def test_single_user_miso_reaches_capacity(snr_db):
    prob = miso(11, Nt=4, K=1, snr_db=snr_db)
    sol, _ = solve(prob, init="random")
    capacity = np.log2(1 + prob.power * np.sum(np.abs(prob.H) ** 2) / prob.sigma2)
    assert prob.feasibility(sol.x).feasible
    assert prob.utility(sol.x) == pytest.approx(capacity, rel=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multi_user_miso_between_linear_baselines_and_dpc(seed):
    prob = miso(seed, Nt=4, K=4, snr_db=20.0)
    sol, _ = solve(prob, seed)
    u = prob.utility(sol.x)
    baselines = max(prob.utility(prob.initial(m)) for m in ("mrt", "zf", "rzf"))
    bound = DpcBound().solve(prob, {}, RunContext(np.random.default_rng(0))).value
    assert prob.feasibility(sol.x).feasible
    assert baselines <= u <= bound + 1e-9


def test_block_unitary_variable_is_optimised_block_by_block():
    # |h^H Phi g|^2 over block-diagonal unitary Phi: each block aligns its part, optimum (sum_i |h_i||g_i|)^2.
    rng = np.random.default_rng(7)
    h, g = cn(rng, (6,)), cn(rng, (6,))

    class Blocks(Problem):
        def __init__(self):
            super().__init__({"Phi": Variable((6, 6), BlockUnitary(3))}, "blocks", {}, ("random",))

        def utility(self, x):
            return float(abs(h.conj() @ x["Phi"] @ g) ** 2)

        def loss_torch(self, x):
            import torch

            return -(torch.as_tensor(h).conj() @ x["Phi"] @ torch.as_tensor(g)).abs() ** 2

    prob = Blocks()
    sol, _ = solve(prob)
    best = sum(np.linalg.norm(h[i:i + 3]) * np.linalg.norm(g[i:i + 3]) for i in (0, 3)) ** 2
    assert prob.feasibility(sol.x).feasible
    assert np.all(sol.x["Phi"][:3, 3:] == 0) and np.all(sol.x["Phi"][3:, :3] == 0)
    assert prob.utility(sol.x) == pytest.approx(best, rel=1e-8)


# -- declining -------------------------------------------------------------------------------------
class Declined(Problem):
    def __init__(self, var: Variable, with_constraints: bool = False):
        super().__init__({"x": var}, "declined", {}, ("mrt", "random"))
        self.with_constraints = with_constraints

    def utility(self, x):
        return float(np.sum(np.abs(x["x"])))

    def constraints(self, x):
        return {"qos": np.array([1.0])} if self.with_constraints else {}

    def _initial(self, method, rng):
        return self.random_feasible(rng)


@pytest.mark.parametrize("problem", [
    Declined(Variable((3,), Box(0.0, 1.0), complex=False)),
    Declined(Variable((3,), Simplex(), complex=False)),
    Declined(Variable((3, 3), Unitary(symmetric=True))),
    Declined(Variable((4, 4), BlockUnitary(2, symmetric=True))),
    Declined(Variable((4, 4), BlockUnitary(3))),
    Declined(Variable((3,), PowerBall(1.0, full=False))),
    Declined(Variable((3,), UnitModulus(), complex=False)),
    Declined(Variable((3,), PowerBall(1.0)), with_constraints=True),
], ids=["box", "simplex", "symmetric-unitary", "symmetric-blocks", "bad-blocks", "ball-not-full",
        "real-circle", "scenario-constraints"])
def test_declines_unsupported_problems(problem):
    assert not SOLVER.supports_problem(problem)
    assert manifolds.unsupported_reason(problem)
    with pytest.raises(ValueError, match="no manifold formulation"):
        manifolds.ProductMap(problem)


def test_accepts_what_it_maps():
    assert SOLVER.supports_problem(Declined(Variable((3,), PowerBall(1.0))))
    assert SOLVER.supports_problem(AllSets(0))
    assert SOLVER.supports_problem(miso(0)) and SOLVER.supports_problem(toy(0, architecture="diagonal"))


class BoxScenario(Scenario):
    name = "box-toy"
    description = "a box-constrained toy (tests only)"
    params = {"n": Param(3, "size", min=1)}
    default_sweep = {}
    default_instances = 2

    def draw(self, params, rng):
        return {"a": rng.standard_normal(params["n"])}

    def problem(self, params, channel):
        return Declined(Variable((params["n"],), Box(0.0, 1.0), complex=False))


@hookimpl
def wbench_register_scenarios(register):
    register(BoxScenario())


def test_harness_skips_with_a_note(tmp_path, fresh_registry, capsys):
    fresh_registry.add_module(sys.modules[__name__], "tests", "0")
    specs, _ = select(fresh_registry, "manifold,mrt", "box-toy")
    configs = engine.build_configs("box-toy", {}, {}, 0)
    with Store(tmp_path / "p.db") as store:
        plan = engine.plan(store, configs, specs, 2)
    assert any(n.startswith("manifold skipped") for n in plan.notes)
    assert {t.solver for t in plan.tasks} == {"mrt"}
    assert compare(tmp_path / "c.db", "--solvers", "manifold,mrt", scenario="box-toy") == 0
    assert "manifold skipped" in capsys.readouterr().err


# -- options, budgets, traces, determinism --------------------------------------------------------
def test_same_seed_same_solution_and_starts_use_the_rng():
    prob = miso(3, Nt=4, K=4, snr_db=20.0)
    a, _ = solve(prob, 5, starts=3)
    b, _ = solve(prob, 5, starts=3)
    c, _ = solve(prob, 6, starts=3)
    assert np.array_equal(a.x["V"], b.x["V"]) and a.info == b.info
    ua = [s["utility"] for s in a.info["starts"]["per_start"]]
    uc = [s["utility"] for s in c.info["starts"]["per_start"]]
    assert len(ua) == 3
    assert ua[0] == uc[0]  # first start: init (mrt), whatever the seed
    assert ua[1:] != uc[1:]  # the random starts come from the run's generator
    assert prob.utility(a.x) == pytest.approx(max(ua), rel=1e-12)


def test_trace_is_best_so_far_and_ends_with_the_solution():
    prob = miso(2, Nt=4, K=4, snr_db=30.0)
    for starts in (1, 2):
        sol, ctx = solve(prob, 1, starts=starts, method="sd", max_iter=200)
        its = [it for _, it, _ in ctx.checkpoints]
        rates = [prob.utility(x) for _, _, x in ctx.checkpoints]
        assert its == sorted(its) and len(its) >= 10
        assert np.all(np.diff(rates) >= -1e-9) and rates[-1] > rates[0]
        assert np.array_equal(ctx.checkpoints[-1][2]["V"], sol.x["V"])
        if starts == 1:
            assert its[-1] == sol.info["gradient_evaluations"]
        else:  # numbered across the starts: the second start's evaluations come after the first's
            assert its[-1] > sol.info["gradient_evaluations"]


def test_respects_the_budget_and_returns_a_feasible_point():
    import pymanopt  # noqa: F401  (its first import alone can outlast the budget)

    prob = miso(4, Nt=8, K=8, snr_db=30.0)
    sol, ctx = solve(prob, budget=0.05, method="sd", max_iter=100000, min_gradient_norm=0.0, starts=50)
    assert prob.feasibility(sol.x).feasible
    assert sol.info["starts"]["run"] < 50  # 50 starts of 1e5 steepest-descent steps: only a budget stops it


def test_options_are_validated():
    prob = miso(0, K=2)
    with pytest.raises(ParamError):
        solve(prob, init="zf-typo")
    with pytest.raises(ParamError):
        solve(prob, method="newton")
    assert SOLVER.budget_label(SOLVER.resolve_options({})) == "method=cg,max_iter=1000,starts=1"


def test_importing_and_listing_does_not_load_torch_or_pymanopt():
    code = ("import sys, wbench.solvers.manifold.riemannian, wbench.solvers.common.manifolds; "
            "from wbench.registry import get_registry; get_registry(); "
            "sys.exit(1 if {'torch', 'pymanopt'} & set(sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
