"""``ao``: alternating optimisation of the precoder and the (BD-)RIS scattering matrix for ``bdris``.

The conventional baseline of seed 000 (Cerna Loli & Clerckx, section VI; SCENARIOS.md section 2), in the
block-coordinate form of H. Li, S. Shen, B. Clerckx, "Beyond diagonal reconfigurable intelligent
surfaces: from transmitting and reflecting modes to single-, group-, and fully-connected architectures",
IEEE TWC 22(4), 2023 (seed 000 ref. [50]), for single-, group- and fully-connected BD-RIS. Starting
from ``init`` (default ``mrt``: ``Phi = I`` and the MRT precoder), one *outer step* is

(a) ``P`` step: ``wmmse_iter`` WMMSE sweeps (Shi et al. 2011, :func:`wbench.solvers.wmmse.wmmse_stack`)
    on the MU-MISO problem over the effective channel ``h_k^H Phi G`` (``problem.precoding_view``),
    warm-started from the current ``P``, then scaled onto the power sphere. A WMMSE sweep from a feasible
    point never lowers the sum rate, and neither does the scaling (every SINR increases with a common scale
    of ``P``); without it, a sweep that ends inside the ball (multiplier 0) returns to the sphere only
    slowly.
(b) ``Phi`` step: Riemannian conjugate gradient (Absil, Mahony, Sepulchre, *Optimization Algorithms on
    Matrix Manifolds*, Princeton 2008, section 8.3 and 4.2; the Hestenes-Stiefel CG of
    :mod:`wbench.solvers.common.riemannian_descent`, whose Armijo line search recovers from a failure by a
    steepest-descent restart) on the negative sum rate with ``P`` fixed (``problem.loss_torch``,
    gradient by torch autograd in the real metric of :mod:`wbench.solvers.common.manifolds`), at most ``cg_iter``
    iterations, warm-started from the current ``Phi``. The manifold: the complex circle ``(S^1)^B`` for a
    diagonal RIS, the unitary group ``U(B)`` for a fully-connected BD-RIS, ``U(g)^(B/g)`` for a
    group-connected one (the fixed ``UnitaryGroup`` of :mod:`wbench.solvers.common.manifolds`). A reciprocal BD-RIS
    (``symmetric=true``) is parametrised exactly as ``Phi = U U^T`` with ``U`` on the same unitary group
    (per block for group-connected): every such product is symmetric unitary and every symmetric unitary
    matrix is one (Takagi factorisation, :mod:`wbench.linalg`); the cost and its gradient in
    ``U`` come from autograd through ``U U^T``.

The outer loop stops when the sum rate changes by at most ``tol`` relative to its previous value (Li,
Shen, Clerckx stop at 1e-3; 1e-4 here) or after ``max_outer`` steps, or when the run's budget is spent.
A ``Phi`` step ends on ``cg_iter``, on its gradient norm (``min_gradient_norm``, or the round-off
tolerance of :mod:`wbench.solvers.common.riemannian_descent`), or stalled: a steepest-descent line search that failed
at a gradient above the tolerance. When the run ends (not on a budget) right after a stalled ``Phi``
step, its relative-change test saw no progress because the step stalled, not because the point is
stationary: ``info["stalled"]`` says so (``info["stalled_phi_steps"]`` counts every stalled step).
Both steps are descent steps for the loss, so the sum rate is non-decreasing up to round-off; the best
point is kept anyway and reported at every outer step (``ctx.checkpoint(best, outer step)``).

Defaults (measured on ``bdris`` defaults, 10 channels): short inner steps, one WMMSE sweep and at most 20
CG iterations per outer step, end in better points than long ones (3 to 5 sweeps and 30 CG iterations
end about 3 bit/s/Hz lower on the fully-connected BD-RIS): the alternation then does not lock the
precoder onto the first scattering matrices.

``warm=diagonal`` (for ``fully`` and ``group``) first runs the same algorithm on the diagonal RIS of the
same channel (``phi`` on the complex circle, same ``init`` and options, same draws from ``ctx.rng``) and
starts the BD-RIS from ``diag(phi)`` and its precoder: this is "BD-RIS warm-started from the RIS solution"
(seed 000 does the same for its meta-learner). Since ``diag(phi)`` is a feasible (symmetric,
block-unitary) BD-RIS and the BD-RIS phase only keeps improvements, the result never scores below the
diagonal RIS solution. The outer steps of both phases are numbered consecutively in the trace; the
checkpoints of the first phase are the BD-RIS points ``diag(phi)``.

Single-user checks (tests): the alternation reaches the closed forms of Nerini, Shen, Clerckx ("Closed-form
global optimization of beyond diagonal reconfigurable intelligent surfaces", IEEE TWC 2024):
``P ||h||^2 sigma_max(G)^2`` for a fully-connected BD-RIS (with or without reciprocity) and
``P (sum_b |h_b| |g_b|)^2`` for a diagonal RIS with one BS antenna.

The variables are found by role (``precoder`` and ``scattering``, exactly those two), not by name, so the
solver applies to any problem of that shape with a linear-precoding view (with per-block budgets on the
precoder the WMMSE step uses them, and the scaling onto the sphere in (a) is skipped).

The returned point is projected onto the sets once more (``problem.project``): the iterates are on them up
to round-off already (WMMSE ends on the power sphere, pymanopt's retractions stay on the manifolds), so
this moves them by round-off only. The start comes from :meth:`~wbench.solver.RunContext.initial` (so the
shared ``starts=N`` option of :mod:`wbench.starts` applies); all randomness is ``init=random`` (or a random
start) drawn from ``ctx.rng``, so a seed gives identical results. Torch and pymanopt are imported inside
``solve``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import numpy as np

from ...hookspecs import hookimpl
from ...linalg import symmetric_unitary, takagi_factor
from ...params import Param, ParamError
from ...problem import BlockUnitary, Problem, Unitary, UnitModulus, Variable, Vars
from ...solver import RunContext, Solution, Solver
from ..common import riemannian_descent as riemannian
from ..wmmse.wmmse import view_arrays, wmmse_stack

__all__ = ["Ao"]


class PhiChart:
    """The manifold of the ``Phi`` variable and the maps between its points and ``Phi``.

    Points: ``phi`` (B,) on the complex circle (diagonal RIS); ``Phi`` or ``U`` (B, B) on ``U(B)`` (fully
    connected); blocks ``(B/g, g, g)`` on ``U(g)^(B/g)`` (group connected). With ``symmetric`` the point
    is ``U`` and ``Phi = U U^T`` (block by block).
    """

    def __init__(self, var: Variable) -> None:
        c = var.constraint
        self.shape = tuple(var.shape)
        self.symmetric = bool(getattr(c, "symmetric", False))
        if isinstance(c, UnitModulus) and len(self.shape) == 1:
            self.kind, self.g = "circle", self.shape[0]
        elif isinstance(c, Unitary):
            self.kind, self.g = "unitary", self.shape[0]
        elif isinstance(c, BlockUnitary) and self.shape[0] % c.group_size == 0:
            self.kind, self.g = "block", c.group_size
        else:
            raise ValueError(f"ao: no manifold for a Phi variable with {c.describe()} of shape {self.shape}")

    def manifold(self) -> Any:
        from pymanopt.manifolds import ComplexCircle

        from ..common.manifolds import UnitaryGroup

        if self.kind == "circle":
            return ComplexCircle(self.g)
        if self.kind == "unitary":
            return UnitaryGroup(self.g)
        return UnitaryGroup(self.g, k=self.shape[0] // self.g)

    def to_point(self, phi: np.ndarray) -> np.ndarray:
        """The manifold point of a feasible ``Phi`` (Takagi factor(s) when symmetric)."""
        phi = np.asarray(phi, dtype=np.complex128)
        if self.kind == "circle":
            return phi.copy()
        if self.kind == "unitary":
            return takagi_factor(phi) if self.symmetric else phi.copy()
        g = self.g
        blocks = [phi[i:i + g, i:i + g] for i in range(0, self.shape[0], g)]
        return np.stack([takagi_factor(b) if self.symmetric else b.copy() for b in blocks])

    def to_phi(self, point: np.ndarray) -> np.ndarray:
        """``Phi`` from a manifold point (NumPy)."""
        if self.kind == "circle":
            return np.array(point)
        mats = symmetric_unitary(point) if self.symmetric else np.array(point)
        if self.kind == "unitary":
            return mats
        out = np.zeros(self.shape, dtype=np.complex128)
        g = self.g
        for i, blk in enumerate(mats):
            out[i * g:(i + 1) * g, i * g:(i + 1) * g] = blk
        return out

    def to_phi_torch(self, point: Any) -> Any:
        """``Phi`` from a manifold point (torch, differentiable)."""
        import torch

        if self.kind == "circle":
            return point
        mats = point @ point.transpose(-1, -2) if self.symmetric else point
        return mats if self.kind == "unitary" else torch.block_diag(*mats.unbind(0))


class _PhiObjective:
    """Loss and Euclidean gradient in the ``Phi`` point at a fixed ``P`` (cached per point), with the best
    point of the current ``Phi`` step. ``names`` are the problem's (precoder, scattering) variables."""

    def __init__(self, problem: Problem, chart: PhiChart, names: tuple[str, str] | None = None) -> None:
        self.problem, self.chart = problem, chart
        self.names = _roles(problem) if names is None else names
        self.P: Any = None
        self._key: bytes | None = None
        self._value: tuple[float, np.ndarray] | None = None
        self.best_loss = np.inf
        self.best_point: np.ndarray | None = None

    def start(self, P: np.ndarray) -> None:
        import torch

        self.P = torch.as_tensor(np.asarray(P, dtype=np.complex128))
        self._key, self._value = None, None
        self.best_loss, self.best_point = np.inf, None

    def _eval(self, point: np.ndarray) -> tuple[float, np.ndarray]:
        import torch

        point = np.ascontiguousarray(point)
        key = point.tobytes()
        if key != self._key:
            pt = torch.as_tensor(point.astype(np.complex128)).clone().requires_grad_(True)
            precoder, scattering = self.names
            loss = self.problem.loss_torch({precoder: self.P, scattering: self.chart.to_phi_torch(pt)})
            (grad,) = torch.autograd.grad(loss, [pt])
            value = float(loss.detach())
            self._key, self._value = key, (value, grad.detach().numpy())
            if np.isfinite(value) and value < self.best_loss:
                self.best_loss, self.best_point = value, point.copy()
        return self._value  # type: ignore[return-value]

    def cost(self, point: np.ndarray) -> float:
        return self._eval(point)[0]

    def gradient(self, point: np.ndarray) -> np.ndarray:
        return self._eval(point)[1]


@dataclasses.dataclass
class _Phase:
    x: Vars
    utility: float
    steps: int
    rates: list[float]
    stopping: str
    cg_iterations: int
    wmmse_iterations: int
    stalled: bool  # ended (not on a budget) right after a stalled Phi step
    stalled_steps: int


class Ao(Solver):
    """Alternating optimisation: WMMSE for ``P``, Riemannian CG for ``Phi`` (see the module docstring)."""

    name = "ao"
    version = "2"
    description = "alternating optimisation: WMMSE precoder, Riemannian CG scattering matrix (bdris)"
    tags = frozenset({"conventional"})
    scenarios = None
    uses_torch = True
    cpu_only = "its WMMSE step and manifold descent are NumPy"
    multi_start = True
    options = {
        "max_outer": Param(500, "outer (P step + Phi step) iterations at most", min=1),
        "tol": Param(1e-4, "stop when the sum rate changes by <= tol relative to the previous outer step",
                     min=0),
        "wmmse_iter": Param(1, "WMMSE sweeps per P step", min=1),
        "cg_iter": Param(20, "Riemannian CG steps (line searches) per Phi step, at most", min=1),
        "min_gradient_norm": Param(1e-8, "end a Phi step once the Riemannian gradient norm is below this",
                                   min=0),
        "init": Param("mrt", "starting point: mrt (Phi = I, MRT precoder) or random",
                      choices=("mrt", "random")),
        "warm": Param("none", "none, or diagonal: start the BD-RIS from the diagonal-RIS solution",
                      choices=("none", "diagonal")),
    }
    budget_options = ("max_outer", "tol", "wmmse_iter", "cg_iter", "warm")

    def supports_problem(self, problem: Problem) -> bool:
        return self.declines(problem, {}) is None

    def declines(self, problem: Problem, options: Mapping[str, Any]) -> str | None:
        """Applies to a problem of exactly a precoder and a scattering matrix (by role) with a
        linear-precoding view and a manifold for the scattering matrix."""
        try:
            names = _roles(problem)
        except ValueError as exc:
            return str(exc)
        if not problem.has_precoding_view:
            return "the problem has no linear-precoding view"
        try:
            PhiChart(problem.variables[names[1]])
        except ValueError as exc:
            return str(exc)
        return None

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        opts = self.resolve_options(options)
        if opts["init"] not in problem.init_methods:
            raise ParamError(f"init: {opts['init']!r} is not one of {', '.join(problem.init_methods)}")
        info: dict[str, Any] = {}
        step0 = 0
        warm = problem.warm_start() if opts["warm"] != "none" else None
        if warm is not None and warm.name == opts["warm"]:
            first = _alternate(warm.problem, ctx.initial(warm.problem, opts["init"]), opts, ctx, 0,
                               warm.embed)
            x0 = warm.embed(first.x)
            step0 = first.steps + 1  # the trace numbers both phases' outer steps consecutively
            info["warm"] = {"utility": first.utility, "outer_steps": first.steps, "rate_trace": first.rates,
                            "stopping": first.stopping, "cg_iterations": first.cg_iterations,
                            "wmmse_iterations": first.wmmse_iterations, "stalled": first.stalled,
                            "stalled_phi_steps": first.stalled_steps}
        else:
            x0 = ctx.initial(problem, opts["init"])
        phase = _alternate(problem, x0, opts, ctx, step0, None)
        x = problem.project(phase.x)
        ctx.checkpoint(x, step0 + phase.steps, force=True)
        info.update(rate_trace=phase.rates, stopping=phase.stopping, outer_steps=phase.steps,
                    cg_iterations=phase.cg_iterations, wmmse_iterations=phase.wmmse_iterations,
                    best_utility=phase.utility, stalled=phase.stalled, stalled_phi_steps=phase.stalled_steps)
        return Solution(x=x, iterations=step0 + phase.steps, info=info)


def _roles(problem: Problem) -> tuple[str, str]:
    """The (precoder, scattering) variable names, or ValueError when the problem is not just those two."""
    precoder, scattering = problem.role_variable("precoder"), problem.role_variable("scattering")
    if precoder is None or scattering is None or set(problem.variables) != {precoder, scattering}:
        raise ValueError("ao needs exactly two variables, with the roles precoder and scattering")
    return precoder, scattering


def _alternate(problem: Problem, x0: Vars, opts: Mapping[str, Any], ctx: RunContext, step0: int,
               embed: Callable[[Vars], Vars] | None) -> _Phase:
    """The outer loop on one problem from ``x0``; checkpoints (through ``embed``) numbered from ``step0``."""
    pname, sname = _roles(problem)
    chart = PhiChart(problem.variables[sname])
    objective = _PhiObjective(problem, chart, (pname, sname))
    manifold = chart.manifold()
    emb = embed or (lambda x: x)
    stop = ctx.expired if ctx.budget_seconds is not None else None

    P = np.array(x0[pname], dtype=np.complex128)
    point = chart.to_point(x0[sname])
    x = {pname: P, sname: chart.to_phi(point)}
    u_prev = problem.utility(x)
    best_u, best_x = u_prev, x
    rates = [u_prev]
    ctx.checkpoint(emb(best_x), step0)
    stopping, steps, cg_its, wmmse_its = f"max_outer={opts['max_outer']} reached", 0, 0, 0
    stalled_steps, out = 0, None
    for t in range(1, opts["max_outer"] + 1):
        if ctx.expired():
            stopping = "budget spent"
            break
        # (a) precoder: a few WMMSE sweeps on the effective channel, from the current P
        view = problem.precoding_view(x)
        arrays = view_arrays([view])
        V, _, its = wmmse_stack(arrays["H"], arrays["alpha"], arrays["power"], arrays["sigma2"],
                                view.start(x)[None], opts["wmmse_iter"], 0.0, stop=stop,
                                budgets=arrays.get("budgets"), block_index=arrays.get("block_index"))
        P, wmmse_its = view.embed(x, V[0])[pname], wmmse_its + int(its[0])
        # A WMMSE sweep may end inside the power ball (mu = 0), from where it creeps back to the sphere by
        # about 1 / ||h||^2 per sweep at high SNR. Every SINR increases with a common scale of P, so
        # scaling onto the sphere never lowers the sum rate and removes that crawl. (With several blocks
        # or fixed streams a common scale is not free, and the per-block V step ends on the spheres of its
        # active blocks anyway: no scaling then.)
        norm2 = float(np.sum(P.real**2 + P.imag**2))
        if norm2 > 0 and view.simple:
            P = P * np.sqrt(float(view.power) / norm2)
        # (b) scattering matrix: Riemannian CG at fixed P, from the current point
        objective.start(P)
        out = riemannian.minimise(manifold, objective.cost, objective.gradient, point, method="cg",
                                  max_iter=opts["cg_iter"], min_gradient_norm=opts["min_gradient_norm"],
                                  expired=ctx.expired)
        cg_its += out.iterations
        out_of_time = out.stopping == riemannian.TIME
        stalled_steps += out.stalled
        if objective.best_point is not None:  # the lowest loss seen in this step (the start included)
            point = objective.best_point
        x = {pname: P, sname: chart.to_phi(point)}
        u = problem.utility(x)
        rates.append(u)
        steps = t
        if u > best_u:
            best_u, best_x = u, x
        ctx.checkpoint(emb(best_x), step0 + t)
        if out_of_time:
            stopping = "budget spent"
            break
        if abs(u - u_prev) <= opts["tol"] * abs(u_prev):
            stopping = f"relative change <= tol={opts['tol']:g}"
            break
        u_prev = u
    stalled = out is not None and out.stalled and stopping.startswith("relative change")
    return _Phase(best_x, best_u, steps, rates, stopping, cg_its, wmmse_its, stalled, stalled_steps)


@hookimpl
def wbench_register_solvers(register) -> None:
    register(Ao())
