"""``spg``: the nonmonotone spectral projected gradient method, generic over every wbench problem.

References:

* E. G. Birgin, J. M. Martinez, M. Raydan, "Nonmonotone spectral projected gradient methods on convex
  sets", SIAM J. Optim. 10(4):1196-1211, 2000 (SPG1 and SPG2; this module follows SPG2);
* L. Grippo, F. Lampariello, S. Lucidi, "A nonmonotone line search technique for Newton's method",
  SIAM J. Numer. Anal. 23(4):707-716, 1986 (the nonmonotone Armijo rule);
* J. Barzilai, J. M. Borwein, "Two-point step size gradient methods", IMA J. Numer. Anal. 8:141-148, 1988.

Problem. Maximise ``problem.utility``, i.e. minimise the differentiable merit
``f = problem.penalised_loss_torch`` (``loss_torch`` plus ``constraint_penalty * sum relu(-c)^2`` over the
scenario's own constraints, if it has any; torch, complex tensors, gradients by autograd) subject to every
variable lying in its constraint set, enforced by the set's NumPy projection
``problem.variables[name].constraint.project``. A problem with joint constraints (``problem.joint``, e.g.
the hybrid precoder's ``||F_RF F_BB||^2 <= P``) is declined: their map rescales one variable, which is not
the Euclidean projection onto the coupled set, so a fixed point ``P(z - g) = z`` of SPG need not be a
stationary point (for ``ProductPower`` it asks ``g_BB`` to be parallel to ``F_BB`` where stationarity
asks it to be parallel to ``F_RF^H F_RF F_BB``), and the residual test stops short of the optimum.
Complex variables are pairs of reals: the inner product is ``<a, b> = Re sum conj(a) b`` and the gradient
is torch's ``dL/dRe + i dL/dIm``, the steepest-ascent direction in that inner product.

Scaled coordinates. Each variable ``x_v`` is written ``x_v = c_v z_v`` with ``c_v`` the RMS entry magnitude
of the start point (1 if it is zero), and SPG runs on ``z``. A scalar per variable does not change what a
Euclidean projection is (``P_{C/c}(w) = P_C(c w) / c``), so this is still SPG on the same problem, but one
spectral step then fits variables of very different sizes (a precoder in watts at -80 dBm noise next to a
unitary ``Phi`` of entries ``1/sqrt(B)``), and the iterates do not depend on the units a scenario uses.

Iteration ``k`` (``g = grad f(z_k)``, ``alpha_k`` the spectral step):

1. stop if ``||P(z_k - g) - z_k|| <= tol (1 + ||z_k||)`` (projected-gradient residual; norms over all
   variables in the scaled coordinates), if ``max_iter`` iterations are done, or if ``ctx.expired()``;
2. search direction ``d = P(z_k - alpha_k g) - z_k``;
3. nonmonotone backtracking on ``lambda in (0, 1]``, from ``lambda = 1``, until

       f(z(lambda)) <= max(f_k, ..., f_{k-M+1}) + gamma <g, z(lambda) - z_k>,   gamma = 1e-4,  M = memory,

   where ``z(lambda) = z_k + lambda d`` on convex sets (SPG2; then ``<g, z(lambda) - z_k> = lambda <g, d>``,
   the test of the paper) and ``z(lambda) = P(z_k - lambda alpha_k g)`` on nonconvex sets (the projected
   arc, SPG1's path; the segment would leave such a set). A rejected ``lambda`` is replaced by the
   minimiser of the quadratic through ``f(z_k)``, the slope ``<g, z(lambda) - z_k> / lambda`` and
   ``f(z(lambda))``, safeguarded to ``[0.1 lambda, 0.9 lambda]`` (otherwise ``lambda / 2``);
4. spectral (Barzilai-Borwein) step: ``s = z_{k+1} - z_k``, ``y = g_{k+1} - g_k``,
   ``alpha_{k+1} = <s, s> / <s, y>`` clipped to ``[1e-10 alpha_0, 1e10 alpha_0]``. When ``<s, y> <= 0``
   (negative curvature, which the nonconvex sum-rate utilities do have) the paper takes ``alpha_max``,
   which makes the next trial point the projection of a point far away and costs a long backtrack; this
   implementation takes ``||s|| / ||y||`` instead (the geometric mean of the magnitudes of the two BB
   steps, always positive), still clipped. With ``blocks=true`` each variable gets its own spectral step
   from its own ``s`` and ``y`` (a block-scalar variable metric as in the scaled gradient projection method
   of Bonettini, Zanella & Zanni, Inverse Problems 25, 2009: in a metric that is a scalar per variable the
   projection onto a product of sets is still the per-variable Euclidean one). Measured on ``bdris``
   (Nt = K = 4, B = 16, channels from ``default_rng(0..7)``, 500 iterations, from ``mrt``): fully
   connected 29.24 vs 28.00 bit/s/Hz with one step, diagonal 23.95 vs 24.52; so the default stays the
   paper's single step;
5. also stop when the merit has stayed within ``tol^2 (1 + |f|)`` over the last ``M + 1`` iterates (near a
   nondegenerate minimiser ``f - f*`` is of the order of the squared residual, so this matches the residual
   test; it ends runs whose residual cannot vanish, see below), or when the line search cannot find an
   acceptable point (40 reductions) even after a retry from the first step ``alpha_0``: such a run is
   reported ``info["stalled"]`` (it stopped with iterations left and the residual above ``tol``).

First step. ``alpha_0 = 1 / rms(g_0)`` in the scaled coordinates: the first trial step ``alpha_0 g_0`` has
the same RMS entry size as the start point itself, i.e. it is on the variable's own scale (the analogue of
the paper's ``1 / ||P(x_0 - g_0) - x_0||_inf`` for variables whose scale is not 1); the line search shortens
it if it is too long.

The best iterate by merit is kept; each start's first point is the projection of an initial point, every
trial point is feasible (a convex combination of two points of a convex set, or a projection), and the
returned point is projected once more, so the answer is always feasible. ``starts > 1`` runs from further
random feasible points drawn from ``ctx.rng`` and keeps the best.

Nonconvex sets. On the unit-modulus, unitary and block-unitary sets SPG is a heuristic: the convergence
theory of Birgin et al. needs a convex set. The method is still well defined (every wbench set has a
projection), and the line search still guarantees that each accepted point has a merit below the reference
value ``max`` of the last ``M`` merits: for a nearest-point projection ``||P(z - t g) - z + t g|| <= ||t g||``
gives ``<g, P(z - t g) - z> <= -||P(z - t g) - z||^2 / (2 t) < 0``, so the Armijo term is a strict decrease
(a trial whose term is not negative, possible only with an inexact projection, is rejected), and on the
smooth sets used here the arc is tangent to ``-grad`` for small steps, so a small enough ``lambda`` is
accepted unless the point is stationary. The unit-step residual need not vanish at a stationary point of a
nonconvex set (e.g. on the unit circle when the gradient points inwards by more than 1), which is why the
merit-stagnation test exists.

Torch is imported inside the functions (importing the plugin stays light); the loss is evaluated on the CPU
in float64/complex128, since the projections are NumPy anyway: ``spg`` is a CPU-only torch solver, which the
harness skips with a note under ``--device cuda`` (``Solver.cpu_only``).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from wbench import (BlockPowerBall, Box, Param, PowerBall, Problem, RunContext, Simplex, Solution, Solver,
                    Unconstrained)

if TYPE_CHECKING:
    import torch

Vars = dict[str, np.ndarray]

#: Sets on which the segment between two feasible points stays feasible (SPG2's search path).
CONVEX_SETS: tuple[type, ...] = (PowerBall, BlockPowerBall, Box, Simplex, Unconstrained)

GAMMA = 1e-4  # sufficient-decrease constant of the Armijo test (Birgin et al.)
SIGMA1, SIGMA2 = 0.1, 0.9  # safeguards of the quadratic interpolation (Birgin et al.)
ALPHA_RANGE = 1e10  # alpha in [alpha_0 / ALPHA_RANGE, alpha_0 * ALPHA_RANGE]
MAX_BACKTRACKS = 40  # reductions per search: lambda ends <= 0.9^40 ~ 0.015 at most, usually far smaller


# -- small helpers on dicts of arrays --------------------------------------------------------------
def inner(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> float:
    """The real inner product ``Re sum conj(a) b`` over all variables (complex entries as real pairs)."""
    return float(sum(np.vdot(a[k], b[k]).real for k in a))


def norm(a: Mapping[str, np.ndarray]) -> float:
    return math.sqrt(max(inner(a, a), 0.0))


def rms(a: Mapping[str, np.ndarray]) -> float:
    """Root-mean-square entry magnitude over all variables (0 for no entries)."""
    n = sum(int(np.size(v)) for v in a.values())
    return norm(a) / math.sqrt(n) if n else 0.0


def _sub(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> Vars:
    return {k: a[k] - b[k] for k in a}


def to_torch(x: Mapping[str, np.ndarray], requires_grad: bool = False) -> dict[str, "torch.Tensor"]:
    """NumPy arrays as CPU float64 / complex128 tensors (copies, so the solver's arrays stay its own)."""
    import torch

    out = {}
    for k, v in x.items():
        arr = np.asarray(v)
        arr = arr.astype(np.complex128 if np.iscomplexobj(arr) else np.float64, copy=True)
        out[k] = torch.from_numpy(arr).requires_grad_(requires_grad)
    return out


# -- the problem in scaled coordinates -------------------------------------------------------------
class ScaledProblem:
    """The merit ``f(z) = loss_torch(c z)``, its gradient and the projections, in scaled coordinates."""

    def __init__(self, problem: Problem, scale: Mapping[str, float], weight: float | None = None) -> None:
        self.problem = problem
        self.scale = dict(scale)
        self.weight = weight
        self.names = tuple(problem.variables)
        self.convex = {k: isinstance(problem.variables[k].constraint, CONVEX_SETS) for k in self.names}
        self.evaluations = 0
        self.gradients = 0

    def to_x(self, z: Mapping[str, np.ndarray]) -> Vars:
        return {k: np.asarray(z[k]) * self.scale[k] for k in self.names}

    def to_z(self, x: Mapping[str, np.ndarray]) -> Vars:
        out = {}
        for k in self.names:
            var = self.problem.variables[k]
            out[k] = np.asarray(x[k], dtype=var.dtype) / self.scale[k]
        return out

    def project_one(self, k: str, w: np.ndarray) -> np.ndarray:
        """``P_{C_k / c_k}(w) = P_{C_k}(c_k w) / c_k``."""
        c = self.scale[k]
        var = self.problem.variables[k]
        return np.asarray(var.constraint.project(np.asarray(w) * c), dtype=var.dtype) / c

    def project(self, w: Mapping[str, np.ndarray]) -> Vars:
        return {k: self.project_one(k, w[k]) for k in self.names}

    def forward(self, z: Mapping[str, np.ndarray]) -> tuple[float, Any]:
        """``f(z)`` and a handle from which :meth:`gradient` gets ``grad f(z)`` without re-evaluating."""
        import torch

        self.evaluations += 1
        xt = to_torch(self.to_x(z), requires_grad=True)
        with torch.enable_grad():
            loss = self.problem.penalised_loss_torch(xt, self.weight)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise TypeError("loss_torch must return a scalar torch tensor")
        value = float(loss.detach().real.reshape(()))
        return (value if math.isfinite(value) else math.inf), (loss, xt)

    def gradient(self, handle: Any) -> Vars:
        """``grad_z f = c grad_x loss`` (torch's convention ``dL/dRe + i dL/dIm`` for complex entries)."""
        import torch

        self.gradients += 1
        loss, xt = handle
        leaves = [xt[k] for k in self.names]
        if loss.requires_grad:
            grads = torch.autograd.grad(loss.real.reshape(()), leaves, allow_unused=True)
        else:  # the loss does not depend on any variable
            grads = [None] * len(leaves)
        out: Vars = {}
        for k, t, gr in zip(self.names, leaves, grads):
            g = np.zeros(tuple(t.shape), dtype=self.problem.variables[k].dtype) if gr is None else gr.numpy()
            out[k] = g * self.scale[k]
        return out


# -- one run of SPG --------------------------------------------------------------------------------
@dataclass
class Tracker:
    """The best point over all starts and the anytime trace (best-so-far point per iteration)."""

    ctx: RunContext
    best_f: float = math.inf
    best_x: Vars | None = None
    iteration: int = 0  # iterations over all starts

    def offer(self, f: float, x: Callable[[], Vars]) -> None:
        if f < self.best_f or self.best_x is None:
            self.best_f, self.best_x = f, x()

    def record(self, force: bool = False) -> None:
        if self.best_x is not None and (force or self.ctx.wants(self.iteration)):
            self.ctx.checkpoint(self.best_x, self.iteration, force)


@dataclass
class StartResult:
    f: float
    x: Vars
    iterations: int
    stopped: str
    residual: float
    info: dict[str, Any] = field(default_factory=dict)


def _line_search(
    sp: ScaledProblem, z: Vars, f: float, g: Vars, d: Vars, alpha: Mapping[str, float], f_ref: float
) -> tuple[Vars, float, Any] | None:
    """Nonmonotone Armijo backtracking along the segment (convex sets) / projected arc (others)."""
    lam = 1.0
    for _ in range(MAX_BACKTRACKS):
        trial: Vars = {}
        for k in sp.names:
            if sp.convex[k]:
                trial[k] = z[k] + lam * d[k]
            elif lam == 1.0:
                trial[k] = z[k] + d[k]  # = P(z - alpha g): d was computed from it
            else:
                trial[k] = sp.project_one(k, z[k] - (lam * alpha[k]) * g[k])
        step = _sub(trial, z)
        pred = inner(g, step)  # lambda <g, d> on the segment; < 0 for a nearest-point projection
        if norm(step) == 0.0:
            return None  # the path has collapsed onto z: no further progress possible
        f_t, handle = sp.forward(trial)
        if pred < 0.0 and f_t <= f_ref + GAMMA * pred:
            return trial, f_t, handle
        lam_new = lam / 2.0
        slope = pred / lam
        curv = f_t - f - lam * slope  # lambda^2 times the quadratic's coefficient
        if math.isfinite(f_t) and slope < 0.0 and curv > 0.0:
            q = -slope * lam * lam / (2.0 * curv)
            if SIGMA1 * lam <= q <= SIGMA2 * lam:
                lam_new = q
        lam = lam_new
    return None


def _bb(s: Mapping[str, np.ndarray], y: Mapping[str, np.ndarray], lo: float, hi: float) -> float:
    """The spectral step ``<s, s> / <s, y>`` (``||s|| / ||y||`` when ``<s, y> <= 0``), clipped."""
    sts, sty, yty = inner(s, s), inner(s, y), inner(y, y)
    if sty > 0.0:
        alpha = sts / sty
    elif yty > 0.0:
        alpha = math.sqrt(sts / yty)
    else:
        alpha = hi
    return min(max(alpha, lo), hi)


def spg_run(
    sp: ScaledProblem,
    z0: Vars,
    tracker: Tracker,
    ctx: RunContext,
    max_iter: int,
    tol: float,
    memory: int,
    blocks: bool = False,
) -> StartResult:
    """SPG from the (already projected) scaled point ``z0``; see the module docstring."""
    z = z0
    f, handle = sp.forward(z)
    tracker.offer(f, lambda: sp.to_x(z))
    if tracker.iteration == 0:
        tracker.record()
    if not math.isfinite(f):
        return StartResult(f, sp.to_x(z), 0, "nonfinite", math.nan)
    g = sp.gradient(handle)
    groups = [(k,) for k in sp.names] if blocks else [sp.names]
    alpha0: dict[str, float] = {}
    for grp in groups:
        g_rms = rms({k: g[k] for k in grp})
        a0 = 1.0 / g_rms if g_rms > 0 and math.isfinite(g_rms) else 1.0
        alpha0.update({k: a0 for k in grp})
    alpha = dict(alpha0)
    history: deque[float] = deque([f], maxlen=memory)
    window: deque[float] = deque([f], maxlen=memory + 1)
    best_f, best_z = f, z
    it, stopped, residual = 0, "max_iter", math.nan
    while True:
        residual = norm(_sub(sp.project({k: z[k] - g[k] for k in sp.names}), z))
        if residual <= tol * (1.0 + norm(z)):
            stopped = "residual"
            break
        if it >= max_iter:
            break
        if ctx.expired():
            stopped = "time"
            break
        d = _sub(sp.project({k: z[k] - alpha[k] * g[k] for k in sp.names}), z)
        if norm(d) == 0.0:
            stopped = "stationary"
            break
        found = _line_search(sp, z, f, g, d, alpha, max(history))
        if found is None and alpha != alpha0:
            # Recover before giving up: the spectral step may be far off after a poor curvature pair;
            # retry once from the first step alpha_0 (a scaled steepest-descent step).
            alpha = dict(alpha0)
            continue
        if found is None:
            stopped = "line_search"  # with the residual above tol: reported as stalled
            break
        z_new, f_new, handle = found
        g_new = sp.gradient(handle)
        s, y = _sub(z_new, z), _sub(g_new, g)
        for grp in groups:
            a0 = alpha0[grp[0]]
            a = _bb({k: s[k] for k in grp}, {k: y[k] for k in grp}, a0 / ALPHA_RANGE, a0 * ALPHA_RANGE)
            alpha.update({k: a for k in grp})
        z, f, g = z_new, f_new, g_new
        it += 1
        tracker.iteration += 1
        history.append(f)
        window.append(f)
        if f < best_f:
            best_f, best_z = f, z
        tracker.offer(f, lambda: sp.to_x(z))
        tracker.record()
        if len(window) == window.maxlen and max(window) - min(window) <= tol * tol * (1.0 + abs(f)):
            stopped = "f_change"
            break
    return StartResult(best_f, sp.to_x(best_z), it, stopped, residual,
                       {"alpha0": alpha0, "alpha_last": alpha, "residual_last": residual})


# -- the solver ------------------------------------------------------------------------------------
def _check_init(text: str | None) -> str | None:
    return None if text is None or (str(text).strip() and str(text).strip() == str(text)) else "expected a name"


def _nonneg(text: Any) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and value >= 0


def has_torch_loss(problem: Problem) -> bool:
    """Whether the problem's class implements ``loss_torch`` (the base class only raises)."""
    return type(problem).loss_torch is not Problem.loss_torch


def variable_scale(x: np.ndarray) -> float:
    """The RMS entry magnitude of a start point (1 for an all-zero or empty array)."""
    arr = np.asarray(x)
    value = float(np.sqrt(np.mean(np.abs(arr) ** 2))) if arr.size else 0.0
    return value if value > 0.0 and math.isfinite(value) else 1.0


class Spg(Solver):
    """Nonmonotone spectral projected gradient (Birgin, Martinez & Raydan 2000), best of ``starts``."""

    name = "spg"
    version = "2"
    description = ("nonmonotone spectral projected gradient (Birgin, Martinez, Raydan 2000) on loss_torch with "
                   "the sets' projections; a heuristic on nonconvex sets")
    tags = frozenset({"conventional"})
    scenarios = None
    uses_torch = True
    cpu_only = "its projections are NumPy"
    options = {
        "max_iter": Param(500, "SPG iterations per start", min=0),
        "tol": Param(1e-6, "stop when ||P(z - g) - z|| <= tol (1 + ||z||) (scaled coordinates), or when the "
                     "merit stays within tol^2 (1 + |f|) over memory + 1 iterates", min=0.0),
        "memory": Param(10, "M: the nonmonotone reference is the max of the last M merits (1: monotone)",
                        min=1),
        "init": Param(None, "initial point by name (default: the problem's first, e.g. mrt)", nullable=True,
                      check=_check_init),
        "blocks": Param(False, "one spectral step per variable (block-scalar metric) instead of one for all"),
        "starts": Param(1, "starts: the first from init, the others random feasible points from ctx.rng; "
                        "best kept", min=1),
        "constraint_penalty": Param(None, "weight of sum relu(-c)^2 over the scenario's constraints c >= 0 in "
                                    "the merit (default: the problem's own)", nullable=True,
                                    check=lambda v: None if v is None or _nonneg(v) else "must be a "
                                    "non-negative number"),
    }
    budget_options = ("max_iter", "tol", "starts")

    def supports_problem(self, problem: Problem) -> bool:
        return self.declines(problem, {}) is None

    def declines(self, problem: Problem, options: Mapping[str, Any]) -> str | None:
        if not has_torch_loss(problem):
            return "the problem has no differentiable loss_torch"
        if problem.joint:
            return (f"joint constraint {problem.joint[0].describe()}: its rescaling is not the Euclidean "
                    f"projection onto the coupled set, so SPG's fixed points need not be stationary")
        if problem.has_constraints and not problem.has_constraints_torch:
            if problem.constraints(problem.random_feasible(np.random.default_rng(0))):
                return "the scenario's constraints have no torch form (constraints_torch) for the merit"
        return None

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        opts = self.resolve_options(options)
        if opts["init"] is not None and opts["init"] not in problem.init_methods:
            raise ValueError(f"init: unknown initial point {opts['init']!r}; valid: "
                             f"{', '.join(problem.init_methods)}")
        tracker = Tracker(ctx)
        results: list[StartResult] = []
        total_evals = total_grads = 0
        for start in range(opts["starts"]):
            if start > 0 and ctx.expired():
                break
            if start == 0:
                x0 = problem.initial(opts["init"], ctx.rng)
            elif "random" in problem.init_methods:
                x0 = problem.initial("random", ctx.rng)
            else:
                x0 = problem.random_feasible(ctx.rng)
            x0 = {k: np.asarray(x0[k], dtype=var.dtype) for k, var in problem.variables.items()}
            x0 = problem.project(x0)
            weight = None if opts["constraint_penalty"] is None else float(opts["constraint_penalty"])
            sp = ScaledProblem(problem, {k: variable_scale(v) for k, v in x0.items()}, weight)
            res = spg_run(sp, sp.to_z(x0), tracker, ctx, opts["max_iter"], opts["tol"], opts["memory"],
                          opts["blocks"])
            results.append(res)
            total_evals += sp.evaluations
            total_grads += sp.gradients
        assert tracker.best_x is not None
        out = problem.project(tracker.best_x)  # feasible by construction; project away rounding
        tracker.best_x = out
        if ctx.checkpoints and ctx.checkpoints[-1][1] == tracker.iteration:
            ctx.checkpoints.pop()  # replaced by the forced checkpoint of the returned point
        tracker.record(force=True)
        best = min(range(len(results)), key=lambda i: results[i].f)
        info = {
            "best_loss": tracker.best_f,
            "best_start": best,
            "stopped": [r.stopped for r in results],
            "iterations_per_start": [r.iterations for r in results],
            "residual": [r.residual for r in results],
            # a start whose line search failed even from alpha_0, away from a stationary point: an early
            # stop with iterations left, counted in the leaderboard's stalled column
            "stalled": any(r.stopped == "line_search" for r in results),
            "loss_per_start": [r.f for r in results],
            "evaluations": total_evals,
            "gradients": total_grads,
        }
        return Solution(x=out, iterations=tracker.iteration, info=info)
