"""Oracle tests of the ``spg`` plugin (wbench-spg).

Every reference value is computed here independently of the solver: closed-form optima, the exact solution of
a convex trust-region problem, and a projected-gradient (KKT) residual evaluated with NumPy.
"""

from __future__ import annotations

import importlib.metadata as md
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

try:
    import wbench_spg  # noqa: F401  (installed: pip install plugins/wbench-spg)
except ImportError:  # running from the source tree without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wbench import PowerBall, Problem, RunContext, Variable
from wbench.scenarios.bdris import Bdris
from wbench.scenarios.miso import Miso
from wbench_spg.spg import Spg

torch.set_num_threads(1)

SOLVER = Spg()


def make(scenario, overrides: dict, seed: int) -> Problem:
    params = scenario.resolve_params(overrides)
    return scenario.problem(params, scenario.draw(params, np.random.default_rng(seed)))


def run(problem: Problem, seed: int, **options) -> tuple:
    """Solve with a solver RNG that is *not* the channel's (seed + 1000), returning (solution, context)."""
    ctx = RunContext(np.random.default_rng(seed + 1000))
    return SOLVER.solve(problem, options, ctx), ctx


# -- (1) one-user MISO: log2(1 + P ||h||^2 / sigma2) ------------------------------------------------
@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0, 30.0])
def test_single_user_miso_reaches_closed_form(snr_db: float) -> None:
    for seed in range(3):
        prob = make(Miso(), {"Nt": 4, "K": 1, "snr_db": snr_db}, seed)
        h = prob.H[0]
        optimum = math.log2(1.0 + 10 ** (snr_db / 10) * float(np.sum(np.abs(h) ** 2)) / 1.0)  # sigma2 = 1
        sol, ctx = run(prob, seed, init="random")
        start = prob.utility(ctx.checkpoints[0][2])
        assert start < 0.99 * optimum  # a random start, not already optimal: the test can fail
        assert abs(prob.utility(sol.x) - optimum) <= 1e-8 * optimum


# -- (2) one-user BD-RIS / RIS: prob.closed_form_optimum() -------------------------------------------
@pytest.mark.parametrize(
    "overrides",
    [
        {"Nt": 2, "K": 1, "B": 4, "architecture": "fully"},  # unitary projection (polar factor)
        {"Nt": 2, "K": 1, "B": 4, "architecture": "fully", "symmetric": True},  # symmetric unitary
        {"Nt": 2, "K": 1, "B": 4, "architecture": "group", "group_size": 4},  # block-unitary, one block
        {"Nt": 1, "K": 1, "B": 6, "architecture": "diagonal"},  # unit modulus
    ],
    ids=["fully", "fully-symmetric", "group-B", "diagonal-Nt1"],
)
@pytest.mark.parametrize("init", ["mrt", "random"])
def test_single_user_bdris_reaches_closed_form(overrides: dict, init: str) -> None:
    for seed in range(3):
        prob = make(Bdris(), overrides, seed)
        optimum = prob.closed_form_optimum()
        assert optimum is not None
        sol, ctx = run(prob, seed, init=init)
        assert prob.utility(ctx.checkpoints[0][2]) < 0.99 * optimum  # the start is suboptimal
        assert prob.feasibility(sol.x).feasible
        assert abs(prob.utility(sol.x) - optimum) <= 1e-6 * optimum


# -- (3) feasibility and a non-decreasing best-so-far trace on every set type ------------------------
CASES = [
    (Miso(), {"Nt": 4, "K": 4, "snr_db": 20.0}, {"init": "random", "starts": 2}),
    (Miso(), {"Nt": 3, "K": 4, "snr_db": 30.0}, {}),
    (Bdris(), {"Nt": 2, "K": 2, "B": 8, "architecture": "diagonal"}, {}),
    (Bdris(), {"Nt": 2, "K": 2, "B": 4, "architecture": "fully", "symmetric": True}, {"init": "random"}),
    (Bdris(), {"Nt": 2, "K": 2, "B": 8, "architecture": "group", "group_size": 4}, {"blocks": True}),
    (Bdris(), {"Nt": 4, "K": 4, "B": 8, "architecture": "fully", "pt_dbm": 0.0}, {"starts": 2, "memory": 1}),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_feasible_and_monotone_best_so_far_trace(case: int) -> None:
    scenario, overrides, options = CASES[case]
    for seed in range(2):
        prob = make(scenario, overrides, seed)
        sol, ctx = run(prob, seed, max_iter=80, **options)
        feas = prob.feasibility(sol.x)
        assert feas.feasible, feas.violations
        iters = [it for _, it, _ in ctx.checkpoints]
        utils = [prob.utility(x) for _, _, x in ctx.checkpoints]
        assert len(utils) >= 5 and iters == sorted(iters) and iters[0] == 0
        for a, b in zip(utils, utils[1:]):
            assert b >= a - 1e-9 * (1.0 + abs(a))  # the best-so-far never gets worse
        final = prob.utility(sol.x)
        assert iters[-1] == sol.iterations
        assert abs(utils[-1] - final) <= 1e-12 * (1.0 + abs(final))  # the last checkpoint is the answer
        assert final > utils[0]  # it made progress from the start
        for name, value in sol.x.items():  # every checkpoint is feasible too
            assert value.shape == prob.variables[name].shape
        assert all(prob.feasibility(x).feasible for _, _, x in ctx.checkpoints)


# -- (4) a convex problem: exact solution and KKT residual -------------------------------------------
class LeastSquaresBall(Problem):
    """``max -||A x - b||^2`` s.t. ``||x||^2 <= budget`` (complex x): a concave quadratic on a ball."""

    def __init__(self, A: np.ndarray, b: np.ndarray, budget: float) -> None:
        n = A.shape[1]
        super().__init__({"x": Variable((n,), PowerBall(budget))}, "ls-ball", {}, ("random",))
        self.A, self.b = A, b

    def utility(self, x):
        r = self.A @ np.asarray(x["x"]) - self.b
        return -float(np.vdot(r, r).real)

    def loss_torch(self, x):
        A = torch.as_tensor(self.A)
        b = torch.as_tensor(self.b)
        r = A @ x["x"] - b
        return (r.abs() ** 2).sum()


def trust_region_solution(A: np.ndarray, b: np.ndarray, budget: float) -> np.ndarray:
    """``argmin ||A x - b||^2, ||x||^2 <= budget``: ``x(mu) = (A^H A + mu I)^-1 A^H b`` with ``mu >= 0`` found
    by bisection on ``||x(mu)||^2 = budget`` (``mu = 0`` when the unconstrained minimiser is inside)."""
    lam, Q = np.linalg.eigh(A.conj().T @ A)
    c = Q.conj().T @ (A.conj().T @ b)

    def sq_norm(mu: float) -> float:
        return float(np.sum(np.abs(c) ** 2 / (lam + mu) ** 2))

    mu = 0.0
    if sq_norm(0.0) > budget:
        lo, hi = 0.0, 1.0
        while sq_norm(hi) > budget:
            hi *= 2.0
        for _ in range(200):
            mu = 0.5 * (lo + hi)
            lo, hi = (mu, hi) if sq_norm(mu) > budget else (lo, mu)
        mu = 0.5 * (lo + hi)
    return Q @ (c / (lam + mu))


@pytest.mark.parametrize("active", [True, False], ids=["boundary", "interior"])
def test_convex_ball_kkt_and_exact_solution(active: bool) -> None:
    rng = np.random.default_rng(5)
    m, n = 8, 6
    A = (rng.standard_normal((m, n)) + 1j * rng.standard_normal((m, n))) / np.sqrt(2 * m)
    b = (rng.standard_normal(m) + 1j * rng.standard_normal(m)) * (3.0 if active else 0.3)
    budget = float(n)  # a full-power random start has RMS entry 1: scaled and plain coordinates agree
    x_star = trust_region_solution(A, b, budget)
    x_ls = np.linalg.lstsq(A, b, rcond=None)[0]
    assert (np.sum(np.abs(x_ls) ** 2) > budget * 1.5) == active  # the case is what its name says
    prob = LeastSquaresBall(A, b, budget)
    tol = 1e-8
    sol, _ = run(prob, 0, tol=tol, max_iter=2000)
    x = sol.x["x"]
    assert prob.feasibility(sol.x).feasible
    # KKT: the projected-gradient residual ||P(x - grad) - x|| with grad = 2 A^H (A x - b) (NumPy)
    grad = 2.0 * A.conj().T @ (A @ x - b)
    residual = np.linalg.norm(PowerBall(budget).project(x - grad) - x)
    assert residual <= tol * (1.0 + np.linalg.norm(x))
    assert np.linalg.norm(x - x_star) <= 1e-6 * np.linalg.norm(x_star)
    assert prob.utility(sol.x) >= prob.utility({"x": x_star}) - 1e-10 * (1.0 + abs(prob.utility({"x": x_star})))
    if active:
        assert np.sum(np.abs(x) ** 2) == pytest.approx(budget, rel=1e-9)


# -- the nonmonotone Armijo rule, observed from outside ----------------------------------------------
class Recording(Problem):
    """Wraps a problem and records every point whose gradient the solver asks for (its accepted iterates,
    plus each start), with the loss and the gradient torch computes there (a hook on the leaf tensors)."""

    def __init__(self, inner: Problem) -> None:
        super().__init__(inner.variables, inner.scenario, inner.params, inner.init_methods)
        self.inner = inner
        self.iterates: list[tuple[float, dict, dict]] = []

    def utility(self, x):
        return self.inner.utility(x)

    def initial(self, method=None, rng=None):
        return self.inner.initial(method, rng)

    def loss_torch(self, x):
        loss = self.inner.loss_torch(x)
        point = {k: v.detach().numpy().copy() for k, v in x.items()}
        grads: dict = {}
        entry = (float(loss.detach()), point, grads)
        for k, v in x.items():
            if v.requires_grad:
                def hook(g, k=k):
                    if not grads:
                        self.iterates.append(entry)
                    grads[k] = g.detach().numpy().copy()
                v.register_hook(hook)
        return loss


@pytest.mark.parametrize("memory", [1, 10])
@pytest.mark.parametrize("overrides", [
    {"Nt": 4, "K": 4, "B": 16, "architecture": "fully"},
    {"Nt": 4, "K": 4, "B": 16, "architecture": "diagonal"},
], ids=["fully", "diagonal"])
def test_accepted_iterates_satisfy_nonmonotone_armijo(overrides: dict, memory: int) -> None:
    """``f(x_{k+1}) <= max(f(x_k), ..., f(x_{k-M+1})) + 1e-4 Re<grad f(x_k), x_{k+1} - x_k>`` for every
    accepted iterate (the step term is invariant to the solver's internal scaling), and with ``M = 1`` the
    merit decreases monotonically."""
    prob = Recording(make(Bdris(), overrides, 1))
    sol, _ = run(prob, 1, max_iter=150, memory=memory)
    seq = prob.iterates
    assert len(seq) == sol.iterations + 1 >= 100
    increases = 0
    for k in range(1, len(seq)):
        f_prev, x_prev, g_prev = seq[k - 1]
        f_new, x_new, _ = seq[k]
        step_term = sum(np.vdot(g_prev.get(n, np.zeros_like(x_prev[n])), x_new[n] - x_prev[n]).real
                        for n in x_prev)
        assert step_term < 0.0  # every accepted displacement is a descent direction
        ref = max(f for f, _, _ in seq[max(0, k - memory):k])
        assert f_new <= ref + 1e-4 * step_term + 1e-12 * (1.0 + abs(ref))
        increases += f_new > f_prev
    if memory == 1:
        assert increases == 0


# -- (5) determinism, budgets, applicability ---------------------------------------------------------
def test_same_seed_same_result() -> None:
    prob = make(Bdris(), {"Nt": 2, "K": 2, "B": 4, "architecture": "fully"}, 3)
    results = []
    for _ in range(2):
        ctx = RunContext(np.random.default_rng(7))
        results.append(SOLVER.solve(prob, {"starts": 3, "max_iter": 40}, ctx))
    a, b = results
    assert a.iterations == b.iterations
    assert all(np.array_equal(a.x[k], b.x[k]) for k in prob.variables)
    # a different seed draws different extra starts: the per-start results differ
    other = SOLVER.solve(prob, {"starts": 3, "max_iter": 40}, RunContext(np.random.default_rng(8)))
    assert other.info["loss_per_start"][1:] != a.info["loss_per_start"][1:]


def test_spent_budget_returns_the_feasible_start() -> None:
    prob = make(Bdris(), {"Nt": 2, "K": 2, "B": 4, "architecture": "fully"}, 0)
    ctx = RunContext(np.random.default_rng(0), budget_seconds=0.0)
    sol = SOLVER.solve(prob, {}, ctx)
    assert sol.iterations == 0 and prob.feasibility(sol.x).feasible
    assert prob.utility(sol.x) == pytest.approx(prob.utility(prob.initial("mrt")), rel=1e-12)


def test_declines_problems_without_a_torch_loss() -> None:
    class NoLoss(Problem):
        def utility(self, x):
            return 0.0

    assert not SOLVER.supports_problem(NoLoss({"x": Variable((2,), PowerBall(1.0))}))
    assert SOLVER.declines(NoLoss({"x": Variable((2,), PowerBall(1.0))}), {})
    assert SOLVER.supports_problem(make(Miso(), {}, 0))
    with pytest.raises(ValueError, match="init"):
        SOLVER.solve(make(Miso(), {}, 0), {"init": "nope"}, RunContext(np.random.default_rng(0)))


# -- (6) discovery through the entry point -----------------------------------------------------------
PLUGIN_ROOT = Path(__file__).resolve().parents[1]


def declared_entry_point() -> tuple[str, str]:
    """``(name, module)`` of the one entry point the plugin's own pyproject.toml declares in group ``wbench``."""
    import tomllib

    project = tomllib.loads((PLUGIN_ROOT / "pyproject.toml").read_text())["project"]
    (item,) = project["entry-points"]["wbench"].items()
    return item


def test_declared_entry_point_names_a_module_that_registers_spg() -> None:
    """Whether or not the package is installed: the entry point pyproject.toml declares is the module whose
    hooks register ``spg`` (what an install would expose, checked from the source tree)."""
    import importlib

    from wbench.registry import Registry

    name, value = declared_entry_point()
    assert (name, value) == ("spg", "wbench_spg.plugin")
    module = importlib.import_module(value)
    reg = Registry()
    reg.add_module(module, "wbench-spg", "0")
    assert not reg.warnings and list(reg.solvers) == ["spg"]
    assert isinstance(reg.solvers["spg"], Spg) and reg.solvers["spg"].origin == "wbench-spg"
    assert [p.name for p in reg.plugins] == [value] and "wbench_register_solvers" in reg.plugins[0].hooks


def test_discovered_through_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed entry point (tox and .ci/run install the plugin) is the declared one, and the registry
    loads it when the allow-list names the distribution. Without an install only the declared entry point
    can be checked (previous test): a skip that says so, and a failure where an install is required."""
    try:
        dist = md.distribution("wbench-spg")
    except md.PackageNotFoundError:
        why = ("wbench-spg is not installed (pip install --no-deps plugins/wbench-spg, as tox and .ci/run do); "
               "only its declared entry point was checked")
        if os.environ.get("WBENCH_REQUIRE_PLUGINS"):  # set by tox and .ci/run, which install it
            pytest.fail(why)
        pytest.skip(why)
    eps = [ep for ep in md.entry_points(group="wbench") if ep.name == "spg"]
    assert len(eps) == 1
    assert (eps[0].name, eps[0].value) == declared_entry_point()
    assert eps[0].dist is not None and eps[0].dist.name == "wbench-spg"

    from wbench import registry

    with monkeypatch.context() as m:
        m.setenv("WBENCH_LOAD_PLUGINS", "wbench-spg")
        m.delenv("WBENCH_PLUGIN_MODULES", raising=False)  # only the entry point may contribute it here
        reg = registry.get_registry(refresh=True)  # rebuilt: built-ins plus the allowed distribution
        assert not reg.warnings
        assert "spg" in reg.solvers
        solver = reg.solvers["spg"]
        assert solver.origin == "wbench-spg"
        assert "conventional" in solver.tags and solver.scenarios is None
        info = [p for p in reg.plugins if p.origin == "wbench-spg"]
        assert [p.name for p in info] == ["wbench_spg.plugin"]
        assert info[0].version == dist.version
        assert "wbench_register_solvers" in info[0].hooks
        m.setenv("WBENCH_LOAD_PLUGINS", "")  # the allow-list really controls it
        assert "spg" not in registry.get_registry(refresh=True).solvers
    registry.get_registry(refresh=True)  # leave a registry built from the caller's environment


# -- (7) the new constraint kinds (the toy of tests/toy_sets_plugin.py) ---------------------------------
def _toy_sets():
    root = str(Path(__file__).resolve().parents[3])  # the repository, for tests.toy_sets_plugin
    if root not in sys.path:
        sys.path.insert(0, root)
    from tests.toy_sets_plugin import toy_sets_problem

    return toy_sets_problem


@pytest.mark.parametrize("seed", [0, 1])
def test_per_block_budgets_reach_the_cauchy_schwarz_optimum(seed: int) -> None:
    prob = _toy_sets()(seed, case="block", N=3)
    assert SOLVER.declines(prob, {}) is None
    sol, _ = run(prob, seed)
    assert prob.feasibility(sol.x).feasible
    assert prob.utility(sol.x) == pytest.approx(prob.closed_form_optimum(), rel=1e-9)


@pytest.mark.parametrize("weight", [1e3, 1e4])
def test_qos_constraint_enters_the_merit_with_its_penalty_weight(weight: float) -> None:
    """Shortfall ``lambda / (2 w)`` of the binding QoS floor (quadratic-penalty theory), ``w`` from the
    ``constraint_penalty`` option; the toy's tolerance 1e-3 makes both feasible."""
    prob = _toy_sets()(0, case="qos")
    lam = prob.qos_multiplier()
    sol, _ = run(prob, 0, constraint_penalty=weight)
    feas = prob.feasibility(sol.x)
    assert feas.violations["qos"] == pytest.approx(lam / (2 * weight), rel=0.02) and feas.feasible
    assert prob.utility(sol.x) == pytest.approx(prob.closed_form_optimum(), rel=1e-4)


def test_declines_a_joint_constraint_with_the_reason() -> None:
    prob = _toy_sets()(0, case="product")
    reason = SOLVER.declines(prob, {})
    assert reason is not None and "not the Euclidean projection" in reason
    assert not SOLVER.supports_problem(prob)
# -- no silent early stop ----------------------------------------------------------------------------
def _spg_from_this_tree():
    """``wbench_spg/spg.py`` of this source tree, whatever version of the plugin is installed."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "wbench_spg" / "spg.py"
    spec = importlib.util.spec_from_file_location("wbench_spg_tree_spg", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_a_failed_line_search_is_retried_from_alpha0_and_a_persistent_one_is_reported_stalled(monkeypatch):
    spg = _spg_from_this_tree()
    solver = spg.Spg()

    def run(problem, seed, **options):  # noqa: F811  (this tree's solver, not the installed one)
        return solver.solve(problem, options, RunContext(np.random.default_rng(seed + 1000))), None

    prob = make(Miso(), {"Nt": 3, "K": 3, "snr_db": 20.0}, 4)
    real = spg._line_search
    plain, _ = run(prob, 4)
    assert plain.info["stalled"] is False

    monkeypatch.setattr(spg, "_line_search", lambda *args: None)  # every search fails
    dead, _ = run(prob, 4)
    assert dead.info["stalled"] is True and dead.info["stopped"] == ["line_search"]
    assert dead.info["iterations_per_start"] == [0]

    calls = {"n": 0}

    def flaky(sp, z, f, g, d, alpha, f_ref):  # every fifth search fails once
        calls["n"] += 1
        return None if calls["n"] % 5 == 0 else real(sp, z, f, g, d, alpha, f_ref)

    monkeypatch.setattr(spg, "_line_search", flaky)
    recovered, _ = run(prob, 4)
    assert calls["n"] >= 10 and recovered.info["stalled"] is False
    assert recovered.info["stopped"][0] != "line_search"
    monkeypatch.setattr(spg, "_line_search", real)
    early, _ = run(prob, 4, max_iter=4)  # where a run that gave up at the first failure would have ended
    assert prob.utility(recovered.x) > prob.utility(early.x)
