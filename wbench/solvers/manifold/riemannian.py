"""``manifold``: generic Riemannian optimisation on the product manifold of the constraint sets.

Method: the problem's variables live on a product of Riemannian manifolds derived from their constraint
sets (:mod:`wbench.solvers.common.manifolds`: a sphere for a full power budget, a product of spheres for full
per-block budgets, the whole space for an unconstrained variable, the complex circle for unit-modulus
entries, the unitary group, block-diagonal unitary groups), so the constraints hold along the whole run and
the loss ``problem.loss_torch`` is minimised by an unconstrained Riemannian method: conjugate gradient
(``cg``, the default; non-negative Hestenes-Stiefel rule with restarts, Absil, Mahony, Sepulchre,
*Optimization Algorithms on Matrix Manifolds*, Princeton 2008, section 8.3) or steepest descent (``sd``,
ibid. section 4.2), both with an Armijo line search that recovers from failures
(:mod:`wbench.solvers.common.riemannian_descent`), or trust regions with truncated CG (``tr``, ibid. ch. 7; pymanopt's,
Townsend, Koep, Weichwald, JMLR 17, 2016). The Riemannian gradient is the tangent projection of the
Euclidean gradient, which torch provides through :func:`wbench.solvers.common.autodiff.loss_and_grad` in the
metric ``Re tr(A^H B)`` of every factor (no factor of 2; see :mod:`wbench.solvers.common.manifolds`). ``tr`` uses
Hessian-vector products by a second torch backward pass.

``cg`` and ``sd`` are not pymanopt's: pymanopt's conjugate gradient ends a run at the first line search
that fails ("min step_size reached"), which on the ``bdris`` headline's diagonal channel 0 happened after 3
iterations at 8.7 bit/s/Hz (``tr``: 24.9). Here a failed search is repeated along the steepest-descent
direction, and a run ends on ``max_iter``, on the seconds budget, or at a stationary point: Riemannian
gradient norm at most ``min_gradient_norm``, or below the round-off tolerance of
:mod:`wbench.solvers.common.riemannian_descent`. A run that ends otherwise reports ``info["stalled"] = True`` with its
``gradient_norm`` and ``gradient_tolerance``; ``tr`` ends only on budgets or the gradient norm.

Start: the option ``init`` (default: the problem's first initial point), through
:meth:`~wbench.solver.RunContext.initial`, so the shared ``starts=N`` option (:mod:`wbench.starts`) gives
the best of ``N`` starts, the others random feasible points from the run's seed. Nothing else is random, so
a seed gives identical solutions. The trace records the best point so far at each gradient evaluation (one
per iteration for ``cg``/``sd``), numbered by gradient evaluations. The run stops when ``ctx.expired()``
(checked before every cost evaluation, and passed to pymanopt as ``max_time`` for ``tr``) and returns the
best point so far.

The retractions keep the iterates on the sets up to round-off; the returned point is projected onto the sets
(``problem.project``) once more at the end, which moves it by round-off only.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np

from ...hookspecs import hookimpl
from ...params import Param, ParamError
from ...problem import Problem, Vars
from ...solver import RunContext, Solution, Solver
from ..common import riemannian_descent as riemannian
from ..common.manifolds import unsupported_reason


class _OutOfTime(Exception):
    """Raised from inside the cost when the run's budget is spent, to leave pymanopt at once."""


class _Objective:
    """Loss and Euclidean gradient on the product manifold, evaluated once per point (cached), with the
    best point so far and the trace."""

    def __init__(self, problem: Problem, pmap: Any, ctx: RunContext, check_time: bool = True) -> None:
        from ..common import autodiff

        self.problem, self.pmap, self.ctx = problem, pmap, ctx
        self.check_time = check_time  # raise _OutOfTime when the budget is spent (pymanopt's tr)
        self._loss_and_grad = autodiff.loss_and_grad
        self._key: tuple[bytes, ...] | None = None
        self._value: tuple[float, list[np.ndarray]] | None = None
        self.best_loss = np.inf
        self.best_x: Vars | None = None
        self.gradients = 0  # gradient evaluations over all starts (the trace's iteration count)

    def _eval(self, points: tuple[np.ndarray, ...]) -> tuple[float, list[np.ndarray]]:
        key = tuple(np.ascontiguousarray(p).tobytes() for p in points)
        if key != self._key:
            if self.check_time and self.ctx.expired():
                raise _OutOfTime
            x = self.pmap.to_vars(points)
            loss, grads = self._loss_and_grad(self.problem, x)
            self._key, self._value = key, (loss, self.pmap.pull_back(grads))
            if np.isfinite(loss) and loss < self.best_loss:
                self.best_loss, self.best_x = loss, {k: np.array(v) for k, v in x.items()}
        return self._value  # type: ignore[return-value]

    def cost(self, *points: np.ndarray) -> float:
        return self._eval(points)[0]

    def gradient(self, *points: np.ndarray) -> list[np.ndarray]:
        value = self._eval(points)[1]
        self.gradients += 1
        if self.best_x is not None:
            self.ctx.checkpoint(self.best_x, self.gradients)
        return value

    def hessian_vector(self, *args: np.ndarray) -> list[np.ndarray]:
        """Euclidean Hessian of the loss along an ambient direction (second torch backward pass)."""
        import torch

        from ..common import autodiff

        n = len(args) // 2
        if self.ctx.expired():
            raise _OutOfTime
        x, d = self.pmap.to_vars(args[:n]), self.pmap.to_vars(args[n:])
        xt = autodiff.to_torch(self.problem, x, requires_grad=True)
        names = list(xt)
        grads = torch.autograd.grad(self.problem.loss_torch(xt), [xt[k] for k in names],
                                    create_graph=True, allow_unused=True)
        dot = sum((torch.real(g.conj() * torch.as_tensor(d[k])).sum()
                   for k, g in zip(names, grads) if g is not None),
                  start=torch.zeros((), dtype=torch.float64))
        if not dot.requires_grad:
            return self.pmap.pull_back({k: np.zeros_like(x[k]) for k in names})
        hv = torch.autograd.grad(dot, [xt[k] for k in names], allow_unused=True)
        out = {k: np.zeros_like(x[k]) if h is None else h.detach().numpy() for k, h in zip(names, hv)}
        return self.pmap.pull_back(out)


def make_pymanopt_problem(problem: Problem, objective: _Objective, pmap: Any, hessian: bool = False) -> Any:
    """The pymanopt problem: numpy-backend cost and Euclidean gradient (and Hessian) from ``objective``."""
    import pymanopt

    decorate = pymanopt.function.numpy(pmap.manifold)

    # pymanopt inspects the signature: plain functions of *points, not bound methods.
    def cost(*points: np.ndarray) -> float:
        return objective.cost(*points)

    def euclidean_gradient(*points: np.ndarray) -> list[np.ndarray]:
        return objective.gradient(*points)

    def euclidean_hessian(*points_and_directions: np.ndarray) -> list[np.ndarray]:
        return objective.hessian_vector(*points_and_directions)

    kwargs = {"euclidean_gradient": decorate(euclidean_gradient)}
    if hessian:
        kwargs["euclidean_hessian"] = decorate(euclidean_hessian)
    return pymanopt.Problem(pmap.manifold, decorate(cost), **kwargs)


class ManifoldSolver(Solver):
    """Riemannian CG / SD (recovering line search) or TR (pymanopt) on the product manifold of the sets."""

    name = "manifold"
    version = "2"
    description = "Riemannian optimisation (CG, SD, TR) on the product manifold of the constraint sets"
    tags = frozenset({"conventional"})
    scenarios = None
    uses_torch = True
    cpu_only = "its manifold iterations (own CG, pymanopt trust regions) are NumPy"
    multi_start = True
    options = {
        "method": Param("cg", "cg (conjugate gradient), sd (steepest descent) or tr (trust regions)",
                        choices=("cg", "sd", "tr")),
        "max_iter": Param(1000, "iterations at most", min=1),
        "min_gradient_norm": Param(1e-6, "stop once the Riemannian gradient norm is below this", min=0),
        "init": Param(None, "starting point: one of the problem's initial points (default: its first)",
                      nullable=True),
    }
    budget_options = ("method", "max_iter")

    def supports_problem(self, problem: Problem) -> bool:
        return unsupported_reason(problem) is None

    def declines(self, problem: Problem, options: Mapping[str, Any]) -> str | None:
        return unsupported_reason(problem)

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        from ..common.manifolds import ProductMap

        opts = self.resolve_options(options)
        init = opts["init"] or problem.init_methods[0]
        if init not in problem.init_methods:
            raise ParamError(f"init: {init!r} is not one of {', '.join(problem.init_methods)}")
        pmap = ProductMap(problem)
        x0 = pmap.to_points(problem.project(ctx.initial(problem, init)))
        if opts["method"] == "tr":
            objective = _Objective(problem, pmap, ctx, check_time=True)
            info = _trust_regions(problem, objective, pmap, x0, opts, ctx)
        else:
            objective = _Objective(problem, pmap, ctx, check_time=False)
            out = riemannian.minimise(
                pmap.manifold, lambda p: objective.cost(*p), lambda p: objective.gradient(*p), x0,
                method=opts["method"], max_iter=opts["max_iter"], min_gradient_norm=opts["min_gradient_norm"],
                expired=ctx.expired)
            info = {"stopping": out.stopping, "stalled": out.stalled, "iterations": out.iterations,
                    "gradient_norm": out.gradient_norm, "gradient_tolerance": out.gradient_tolerance,
                    "restarts": out.restarts, "cost_evaluations": out.cost_evaluations}

        if objective.best_x is None:  # out of time before the first evaluation: return the start
            objective.best_x = pmap.to_vars(x0)
        x = problem.project(objective.best_x)
        ctx.checkpoint(x, max(objective.gradients, 1), force=True)
        info.update(gradient_evaluations=objective.gradients, best_loss=objective.best_loss)
        return Solution(x=x, iterations=int(info["iterations"]), info=info)


def _trust_regions(problem: Problem, objective: _Objective, pmap: Any, x0: list[np.ndarray],
                   opts: Mapping[str, Any], ctx: RunContext) -> dict[str, Any]:
    """pymanopt's trust regions: it ends only on its budgets or the gradient norm, so it never stalls."""
    import pymanopt

    mp = make_pymanopt_problem(problem, objective, pmap, hessian=True)
    optimiser = pymanopt.optimizers.TrustRegions(
        # pymanopt checks max_iterations before each step: N allows N - 1 steps
        max_iterations=opts["max_iter"] + 1, min_gradient_norm=opts["min_gradient_norm"], verbosity=0,
        log_verbosity=0,
        # pymanopt's own default is 1000 s: no budget means no time limit.
        max_time=np.inf if ctx.budget_seconds is None else max(ctx.budget_seconds - ctx.elapsed(), 0.0))
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"pymanopt\.")
            res = optimiser.run(mp, initial_point=x0)
    except _OutOfTime:
        return {"stopping": riemannian.TIME, "stalled": False, "iterations": 0,
                "gradient_norm": float("nan")}
    # pymanopt's message without its timing ("Terminated - min grad norm reached after ...")
    stopping = str(res.stopping_criterion).split(" after ")[0].removeprefix("Terminated - ")
    return {"stopping": stopping, "stalled": False, "iterations": int(res.iterations),
            "gradient_norm": float(res.gradient_norm)}


@hookimpl
def wbench_register_solvers(register) -> None:
    register(ManifoldSolver())
