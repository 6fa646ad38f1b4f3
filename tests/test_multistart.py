"""``multistart`` (fmincon-like baseline): closed forms, bounds, exact gradients and constraint Jacobians,
scenario constraints, determinism, budgets and traces."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.optimize import check_grad, minimize_scalar

from tests.helpers import miso_problem
from tests.toy_plugin import ToyRis
from wbench.problem import (
    BlockPowerBall, BlockUnitary, Box, ConstraintSet, PowerBall, Problem, Simplex, Unitary, UnitModulus,
    Variable,
)
from wbench.scenarios.miso import Miso, MisoProblem
from wbench.solver import RunContext
from wbench.solvers.wmmse.dpc_bound import DpcBound
from wbench.solvers.local.multistart import Multistart, _Formulation, wbench_register_solvers

SOLVER = Multistart()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One BLAS / torch thread: OpenBLAS threads spin-wait on these tiny matrices when cores are shared.

    SciPy ships its own OpenBLAS, loaded with ``scipy.optimize``: import it before limiting threads.
    """
    import scipy.optimize  # noqa: F401
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(before)


def miso(seed: int, **given) -> MisoProblem:
    sc = Miso()
    params = sc.resolve_params(given)
    return sc.problem(params, sc.draw(params, np.random.default_rng(seed)))


def toy(seed: int, **given):
    sc = ToyRis()
    params = sc.resolve_params(given)
    return sc.problem(params, sc.draw(params, np.random.default_rng(seed)))


def run(prob: Problem, seed: int = 0, budget: float | None = None, **options):
    ctx = RunContext(np.random.default_rng(seed), budget_seconds=budget)
    return SOLVER.solve(prob, options, ctx), ctx


class LinearProblem(Problem):
    """``max sum_v Re<A_v, x_v>`` over a product of sets, each with a closed-form maximum.

    Power ball: ``sqrt(P) ||A||``; unit modulus: ``sum |A_i|``; unitary: the nuclear norm ``||A||_*`` (the
    polar factor of ``A``), per block for block-unitary, and also for *symmetric* unitary when ``A`` is
    symmetric (its polar factor is then symmetric); box: ``sum max(lo A_i, hi A_i)``; simplex:
    ``total * max(max A, 0)`` (``total * max A`` with equality).
    """

    def __init__(self, sets: dict, seed: int, qos=None):
        rng = np.random.default_rng(1000 + seed)  # not the solver's stream: starts must not copy A
        variables, self.A = {}, {}
        for name, (shape, cset, cplx) in sets.items():
            variables[name] = Variable(shape, cset, cplx)
            a = rng.standard_normal(shape) + (1j * rng.standard_normal(shape) if cplx else 0)
            if isinstance(cset, (Unitary, BlockUnitary)) and cset.symmetric:
                a = a + a.T
            self.A[name] = a
        super().__init__(variables, "linear", {}, ("random",))
        self.qos = qos

    def utility(self, x):
        return float(sum(np.real(np.vdot(self.A[k], x[k])) for k in self.variables))

    def loss_torch(self, x):
        import torch

        return -sum((torch.as_tensor(self.A[k]).conj() * x[k]).real.sum() for k in self.variables)

    def constraints(self, x):
        return {} if self.qos is None else self.qos(x)

    def closed_form(self) -> float:
        total = 0.0
        for k, var in self.variables.items():
            a, c = self.A[k], var.constraint
            if isinstance(c, PowerBall):
                total += np.sqrt(c.budget) * np.linalg.norm(a)
            elif isinstance(c, BlockPowerBall):  # per block: sqrt(P_b) ||A_b||, blocks of rows
                edges = np.cumsum((0,) + c.sizes)
                total += sum(np.sqrt(b) * np.linalg.norm(a[i:j]) for b, i, j in zip(c.budgets, edges[:-1], edges[1:]))
            elif isinstance(c, UnitModulus):
                total += np.abs(a).sum()
            elif isinstance(c, Unitary):
                total += np.linalg.svd(a, compute_uv=False).sum()
            elif isinstance(c, BlockUnitary):
                for b in c._blocks(a.shape[0]):
                    total += np.linalg.svd(a[b, b], compute_uv=False).sum()
            elif isinstance(c, Box):
                total += np.maximum(c.lo * a, c.hi * a).sum()
            elif isinstance(c, Simplex):
                total += c.total * (a.max() if c.equality else max(a.max(), 0.0))
        return float(total)


MIXED = {
    "p": ((3,), PowerBall(4.0), True),
    "u": ((3,), UnitModulus(), True),
    "r": ((4,), Box(-1.0, 2.0), False),
    "s": ((3,), Simplex(2.0), False),
    "e": ((3,), Simplex(1.5, equality=True), False),
}
SETS = {
    "unitary": {"X": ((3, 3), Unitary(), True)},
    "symmetric-unitary": {"X": ((3, 3), Unitary(symmetric=True), True)},
    "block-unitary": {"X": ((4, 4), BlockUnitary(2), True)},
    "symmetric-block-unitary": {"X": ((6, 6), BlockUnitary(3, symmetric=True), True)},
    "block-power": {"B": ((4, 2), BlockPowerBall((1.0, 3.0, 0.5), (1, 2, 1)), True),
                    "R": ((3,), BlockPowerBall((2.0, 0.5), (2, 1)), False)},
    "mixed": MIXED,
}


# -- closed forms ----------------------------------------------------------------------------------
@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0, 30.0])
def test_single_user_miso_reaches_capacity(snr_db):
    prob = miso(3, Nt=4, K=1, snr_db=snr_db)
    sol, _ = run(prob)
    capacity = np.log2(1 + prob.power * np.sum(np.abs(prob.H) ** 2) / prob.sigma2)
    assert prob.feasibility(sol.x).feasible
    assert prob.utility(sol.x) == pytest.approx(capacity, rel=1e-4)
    assert prob.utility(sol.x) <= capacity * (1 + 1e-12)  # projected: no gain from riding the tolerance


@pytest.mark.parametrize("given", [{"architecture": "unitary", "Nt": 2, "B": 4},
                                   {"architecture": "diagonal", "Nt": 1, "B": 6}])
@pytest.mark.parametrize("seed", [0, 1])
def test_toy_ris_reaches_closed_form(given, seed):
    prob = toy(seed, **given)
    sol, _ = run(prob, seed)
    assert prob.feasibility(sol.x).feasible
    assert prob.utility(sol.x) == pytest.approx(prob.closed_form(), rel=1e-4)


@pytest.mark.parametrize("name", sorted(SETS))
def test_every_set_reaches_its_closed_form(name):
    prob = LinearProblem(SETS[name], 0)
    sol, _ = run(prob, starts=3)
    assert prob.feasibility(sol.x).feasible, prob.feasibility(sol.x).violations
    assert prob.utility(sol.x) == pytest.approx(prob.closed_form(), rel=1e-6)
    for k, var in prob.variables.items():
        if isinstance(var.constraint, (Unitary, BlockUnitary)) and var.constraint.symmetric:
            np.testing.assert_array_equal(sol.x[k], sol.x[k].T)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multiuser_between_linear_baselines_and_dpc_bound(seed):
    prob = miso(seed, Nt=4, K=4, snr_db=10.0)
    sol, _ = run(prob, seed)
    u = prob.utility(sol.x)
    ctx = RunContext(np.random.default_rng(0))
    baselines = max(prob.utility(prob.initial(m, ctx.rng)) for m in ("mrt", "zf", "rzf"))
    bound = DpcBound().solve(prob, DpcBound().resolve_options({}), ctx).value
    assert prob.feasibility(sol.x).feasible
    assert u >= baselines - 1e-9
    assert u <= bound + 1e-9


def test_trust_constr_reaches_closed_form():
    prob = toy(0, architecture="diagonal", Nt=1, B=4)
    sol, _ = run(prob, method="trust-constr", starts=2)
    assert prob.feasibility(sol.x).feasible
    assert prob.utility(sol.x) == pytest.approx(prob.closed_form(), rel=1e-4)


# -- gradients and Jacobians -----------------------------------------------------------------------
def test_packed_gradient_is_real_and_imaginary_pairs():
    from wbench.solvers.common import autodiff

    prob = miso(4, Nt=3, K=2, snr_db=10.0)
    z = np.random.default_rng(0).standard_normal(12)  # 3 x 2 complex, not on the ball: any point will do

    def f(v):
        return autodiff.loss_and_grad(prob, autodiff.unpack(prob, v))[0]

    g = autodiff.loss_and_grad(prob, autodiff.unpack(prob, z))[1]["V"]
    packed = autodiff.pack(prob, {"V": g})
    np.testing.assert_array_equal(packed[0::2], g.real.ravel())
    np.testing.assert_array_equal(packed[1::2], g.imag.ravel())
    h = 1e-6
    fd = np.array([(f(z + h * e) - f(z - h * e)) / (2 * h) for e in np.eye(z.size)])
    np.testing.assert_allclose(packed, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("case", ["miso", "toy-unitary", "toy-diagonal", *sorted(SETS)])
def test_solver_objective_gradient_matches_finite_differences(case):
    if case == "miso":
        prob = miso(5, Nt=3, K=3, snr_db=20.0)
    elif case.startswith("toy"):
        prob = toy(5, architecture=case[4:], Nt=2, B=3)
    else:
        prob = LinearProblem(SETS[case], 1)
        for k in prob.A:  # a non-symmetric A, so that a symmetric X's gradient must symmetrise it
            if prob.A[k].ndim == 2 and prob.A[k].shape[0] == prob.A[k].shape[1]:
                prob.A[k] = prob.A[k] + np.triu(np.ones(prob.A[k].shape[-1]))
    form = _Formulation(prob)
    rng = np.random.default_rng(2)
    y = form.from_vars(prob.initial("random", rng)) + 0.1 * rng.standard_normal(form.n)
    err = check_grad(lambda v: form.objective(v)[0], lambda v: form.objective(v)[1], y, epsilon=1e-7)
    assert err <= 1e-5 * max(1.0, np.linalg.norm(form.objective(y)[1]))


def _central_jacobian(fun, y, h=1e-6):
    return np.stack([(fun(y + h * e) - fun(y - h * e)) / (2 * h) for e in np.eye(y.size)], axis=1)


def _qos(x):
    # a smooth scenario constraint coupling two variables: Re(p_0 u_0) + r_0 s_0 >= 0.1
    return {"qos": np.array([np.real(x["p"][0] * x["u"][0]) + x["r"][0] * x["s"][0] - 0.1])}


@pytest.mark.parametrize("name", sorted(SETS))
def test_constraint_jacobians_match_finite_differences(name):
    prob = LinearProblem(SETS[name], 2, qos=_qos if name == "mixed" else None)
    form = _Formulation(prob)
    rng = np.random.default_rng(3)
    y = form.from_vars(prob.initial("random", rng)) + 0.3 * rng.standard_normal(form.n)
    for fun, jac, size in [(form.eq, form.eq_jac, form.n_eq),
                           (form.ineq, form.ineq_jac, form.n_set_ineq + form.n_scen)]:
        analytic = jac(y)
        assert analytic.shape == (size, form.n)
        np.testing.assert_allclose(analytic, _central_jacobian(fun, y), rtol=1e-6, atol=1e-7)
    # the residuals vanish exactly on the sets and not off them
    on = form.from_vars(prob.initial("random", rng))
    if form.n_eq:
        assert np.abs(form.eq(on)).max() < 1e-12
        assert np.abs(form.eq(y)).max() > 1e-3
    assert form.ineq(on)[: form.n_set_ineq].min(initial=0.0) >= -1e-12


@pytest.mark.parametrize("name", ["unitary", "symmetric-unitary", "block-unitary", "symmetric-block-unitary"])
def test_equality_jacobian_has_full_row_rank_on_the_set(name):
    # LICQ: redundant rows (e.g. X - X^T = 0 next to X^H X = I) make SLSQP stop early
    prob = LinearProblem(SETS[name], 3)
    form = _Formulation(prob)
    y = form.from_vars(prob.initial("random", np.random.default_rng(4)))
    assert np.linalg.matrix_rank(form.eq_jac(y)) == form.n_eq


# -- scenario constraints --------------------------------------------------------------------------
class QosMisoProblem(MisoProblem):
    """``miso`` with a rate floor for user 0: ``R_0 >= r_min`` (a scenario constraint, ``>= 0`` when met)."""

    r_min: float = 0.0

    def rate0(self, V: np.ndarray) -> float:
        g = np.abs(self.H.conj() @ V) ** 2
        return float(np.log2(1 + g[0, 0] / (g[0].sum() - g[0, 0] + self.sigma2)))

    def constraints(self, x):
        return {"qos": np.array([self.rate0(np.asarray(x["V"])) - self.r_min])}


def _zf_with_floor(prob: QosMisoProblem) -> float:
    """Best zero-forcing sum rate with ``R_0 >= r_min``: the power split is concave in ``p_0``."""
    W = np.linalg.pinv(prob.H.conj())
    gain = np.abs(np.diag(prob.H.conj() @ (W / np.linalg.norm(W, axis=0)))) ** 2
    p0_min = (2**prob.r_min - 1) / gain[0]
    assert p0_min <= prob.power

    def neg(p0):
        return -(np.log2(1 + p0 * gain[0]) + np.log2(1 + (prob.power - p0) * gain[1]))

    res = minimize_scalar(neg, bounds=(p0_min, prob.power), method="bounded", options={"xatol": 1e-12})
    return float(-min(res.fun, neg(p0_min)))


def test_scenario_constraint_is_met():
    base = miso(6, Nt=2, K=2, snr_db=10.0)
    H = base.H.copy()
    H[0] *= 0.4  # a weak user that the sum-rate optimum starves
    free = MisoProblem(variables=base.variables, scenario="miso", params=base.params,
                       init_methods=base.init_methods, H=H, weights=base.weights, power=base.power)
    unconstrained, _ = run(free)
    r_min = max(0.5, 1.5 * QosMisoProblem.rate0(free, unconstrained.x["V"]))
    prob = QosMisoProblem(variables=base.variables, scenario="miso-qos", params=base.params,
                          init_methods=base.init_methods, H=H, weights=base.weights, power=base.power)
    prob.r_min = r_min
    assert not prob.feasibility(unconstrained.x).feasible  # the floor binds

    sol, _ = run(prob)
    assert prob.feasibility(sol.x).feasible, prob.feasibility(sol.x).violations
    assert prob.rate0(sol.x["V"]) >= r_min - 1e-6
    assert prob.utility(sol.x) >= _zf_with_floor(prob) - 1e-6
    assert prob.utility(sol.x) <= free.utility(unconstrained.x) + 1e-9


def test_least_violating_point_when_nothing_is_feasible():
    # Re(p_0 u_0) + r_0 s_0 >= 100 cannot hold (|p_0| <= 2, |u_0| = 1, r_0 <= 2, s_0 <= 2)
    prob = LinearProblem(MIXED, 4, qos=lambda x: {"qos": _qos(x)["qos"] - 99.9})
    sol, _ = run(prob, starts=2, max_iter=50)
    feas = prob.feasibility(sol.x)
    assert not feas.feasible and not sol.info["feasible"]
    # the constraint is pushed as far as the sets allow: 2 + 2 * 2 - 100 = -94
    assert feas.violations["qos"] == pytest.approx(94.0, rel=1e-3)


# -- options, determinism, budget, trace -----------------------------------------------------------
def test_same_seed_same_answer_and_seed_matters():
    prob = miso(7, Nt=3, K=3, snr_db=20.0)
    a, _ = run(prob, 11, starts=3)
    b, _ = run(prob, 11, starts=3)
    c, _ = run(prob, 12, starts=3)
    np.testing.assert_array_equal(a.x["V"], b.x["V"])
    assert a.info == b.info and a.iterations == b.iterations
    assert a.info["start_objective"][1:] != c.info["start_objective"][1:]
    assert a.info["start_objective"][0] == c.info["start_objective"][0]  # first start: MRT, no randomness


def test_more_starts_never_hurt():
    # starts are drawn in order from one stream, so 6 starts include the 3 starts of the same seed
    prob = miso(13, Nt=3, K=3, snr_db=30.0)
    few, _ = run(prob, 2, starts=3)
    more, _ = run(prob, 2, starts=6)
    assert more.info["start_objective"][:3] == few.info["start_objective"]
    assert prob.utility(more.x) >= prob.utility(few.x)


def test_final_projection_puts_the_answer_on_the_set():
    prob = toy(2, architecture="unitary", Nt=2, B=4)
    projected, _ = run(prob, starts=2)
    raw, _ = run(prob, starts=2, final_project=False)
    residual = [np.linalg.norm(s.x["Phi"].conj().T @ s.x["Phi"] - np.eye(4)) for s in (projected, raw)]
    assert residual[0] < 1e-13 < residual[1]
    assert prob.feasibility(raw.x).feasible  # SLSQP's own violation is within the tolerance anyway
    assert SOLVER.budget_label(SOLVER.resolve_options({})).endswith("final_project=True")


def test_budget_stops_after_one_iteration_with_a_feasible_answer():
    prob = miso(8, Nt=4, K=4, snr_db=20.0)
    sol, ctx = run(prob, budget=0.0)
    assert sol.iterations == 1 and sol.info["starts_run"] == 1
    assert prob.feasibility(sol.x).feasible
    assert ctx.checkpoints[-1][1] == 1


def test_trace_is_best_so_far_and_ends_at_the_answer():
    prob = miso(9, Nt=4, K=4, snr_db=20.0)
    sol, ctx = run(prob, starts=4)
    its = [it for _, it, _ in ctx.checkpoints]
    rates = [prob.utility(x) for _, _, x in ctx.checkpoints]
    assert its[0] == 0 and its[-1] == sol.iterations and len(its) >= 12
    assert all(b > a for a, b in zip(its, its[1:]))
    assert np.all(np.diff(rates) >= 0.0) and rates[-1] > rates[0]
    np.testing.assert_array_equal(ctx.checkpoints[-1][2]["V"], sol.x["V"])
    assert sol.iterations == sum(sol.info["start_nit"])
    # iterates count too: with one start the curve rises before the start ends
    _, ctx1 = run(prob, starts=1)
    assert len({prob.utility(x) for _, _, x in ctx1.checkpoints}) >= 5


def test_init_option():
    prob = miso(10, Nt=2, K=2, snr_db=10.0)
    with pytest.raises(ValueError, match="valid: auto, mrt"):
        run(prob, init="nonsense")
    zf, _ = run(prob, init="zf", starts=1, max_iter=1)
    mrt, _ = run(prob, starts=1, max_iter=1)
    assert zf.info["start_objective"] != mrt.info["start_objective"]


def test_registration_and_light_import():
    registered = []
    wbench_register_solvers(registered.append)
    assert [s.name for s in registered] == ["multistart"] and registered[0].tags == {"conventional"}
    assert registered[0].uses_torch and registered[0].scenarios is None
    code = ("import sys, wbench.solvers.local.multistart; "
            "assert not {'torch', 'scipy.optimize'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_constraint_set_is_not_supported():
    class Odd(PowerBall):
        pass

    class Weird(ConstraintSet):  # a set this solver has no formulation for
        tol = 1e-6

    ok = LinearProblem({"p": ((2,), Odd(1.0), True)}, 0)
    assert SOLVER.supports_problem(ok)
    bad = LinearProblem({"p": ((2,), PowerBall(1.0), True)}, 0)
    bad.variables["q"] = Variable((2,), Weird(), True)
    assert not SOLVER.supports_problem(bad)


# -- paper scale -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_seed_004_protocol_on_larger_problems():
    prob = toy(11, architecture="unitary", Nt=4, B=12)
    sol, _ = run(prob, starts=3)
    assert prob.feasibility(sol.x).feasible
    assert prob.utility(sol.x) == pytest.approx(prob.closed_form(), rel=1e-4)
    for seed in range(3):
        prob = miso(seed, Nt=4, K=4, snr_db=30.0)
        sol, _ = run(prob, seed, starts=100)
        ctx = RunContext(np.random.default_rng(0))
        baselines = max(prob.utility(prob.initial(m, ctx.rng)) for m in ("mrt", "zf", "rzf"))
        bound = DpcBound().solve(prob, DpcBound().resolve_options({}), ctx).value
        assert prob.feasibility(sol.x).feasible
        assert baselines - 1e-9 <= prob.utility(sol.x) <= bound + 1e-9


def test_declines_problems_beyond_max_dim_with_a_reason(fresh_registry, tmp_path):
    from wbench import engine
    from wbench.selection import select
    from wbench.store import Store

    configs = engine.build_configs("bdris", {"B": "16"}, {"architecture": ["diagonal", "fully"]}, 0)
    specs, _ = select(fresh_registry, "multistart", "bdris")
    with Store(tmp_path / "d.db") as st:
        plan = engine.plan(st, configs, specs, 1)
    # diagonal: 2*(16 + 16) = 64 real unknowns run; fully: 2*(16*16 + 16) = 544 > 256 is skipped, with the count
    assert [t.config.params_dict["architecture"] for t in plan.tasks] == ["diagonal"]
    assert len(plan.notes) == 1 and "544 real unknowns exceed max_dim=256" in plan.notes[0]
    specs, _ = select(fresh_registry, "multistart[max_dim=1000]", "bdris")
    with Store(tmp_path / "e.db") as st:
        assert len(engine.plan(st, configs, specs, 1).tasks) == 2


# -- joint constraints and torch scenario constraints (tests/toy_sets_plugin.py) ------------------------
@pytest.mark.parametrize("case", ["product", "qos"])
def test_joint_and_torch_constraint_jacobians_match_finite_differences(case):
    from tests.toy_sets_plugin import toy_sets_problem

    prob = toy_sets_problem(1, case=case)
    form = _Formulation(prob)
    # product: the joint constraint (F_RF's unit modulus is an equality); qos: the ball and the QoS row
    assert (form.n_set_ineq, form.n_scen) == ((1, 0) if case == "product" else (1, 1))
    rng = np.random.default_rng(3)
    y = form.from_vars(prob.initial("random", rng)) + 0.3 * rng.standard_normal(form.n)
    analytic = form.ineq_jac(y)
    np.testing.assert_allclose(analytic, _central_jacobian(form.ineq, y), rtol=1e-6, atol=1e-7)
    if case == "qos":  # the autograd Jacobian of constraints_torch equals the finite differences path
        assert form.torch_constraints
        torch_rows = form.scenario_jac(y)
        form.torch_constraints = False
        np.testing.assert_allclose(torch_rows, form.scenario_jac(y), rtol=1e-6, atol=1e-8)
def test_an_early_slsqp_stop_is_restarted_and_a_persistent_one_is_reported_as_stalled(monkeypatch):
    """SLSQP runs whose line search fails (exit mode 8) after a few iterations: the start is restarted
    from where it stopped; if SLSQP keeps failing, the run says it stalled; if a restart converges, not."""
    from wbench.solvers.local import multistart

    prob = miso_problem(3, 2, 10.0, 0, 0)
    real = multistart._slsqp
    calls = {"n": 0}

    def failing(fail_first: int):
        def run(form, objective, y0, opts, callback):
            calls["n"] += 1
            if calls["n"] > fail_first:
                return real(form, objective, y0, opts, callback)
            res = real(form, objective, y0, dict(opts, max_iter=2), callback)
            res.status, res.message = 8, "Positive directional derivative for linesearch"
            return res
        return run

    opts = {"starts": 1, "max_iter": 100}
    monkeypatch.setattr(multistart, "_slsqp", failing(10**6))  # every call fails
    sol = multistart.Multistart().solve(prob, opts, RunContext(np.random.default_rng(0)))
    assert sol.info["stalled"] is True and sol.info["stalled_starts"] == 1
    # every restart fails as well: exactly MAX_RESTARTS of them, each of at most 2 SciPy iterations
    assert sol.info["start_restarts"] == [multistart.MAX_RESTARTS] and calls["n"] == multistart.MAX_RESTARTS + 1
    assert sol.info["start_nit"][0] <= 2 * (multistart.MAX_RESTARTS + 1)
    calls["n"] = 0
    monkeypatch.setattr(multistart, "_slsqp", failing(1))  # the first call fails, the restart converges
    rec = multistart.Multistart().solve(prob, opts, RunContext(np.random.default_rng(0)))
    assert rec.info["stalled"] is False and rec.info["start_restarts"] == [1]
    assert rec.info["start_message"][0] == "Optimization terminated successfully"
    monkeypatch.setattr(multistart, "_slsqp", real)
    plain = multistart.Multistart().solve(prob, opts, RunContext(np.random.default_rng(0)))
    assert plain.info["stalled"] is False and plain.info["start_restarts"] == [0]
    assert prob.utility(rec.x) == pytest.approx(prob.utility(plain.x), rel=1e-6)
