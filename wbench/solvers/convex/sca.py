"""``sca``: successive convex approximation of rate-splitting (and plain SDMA) sum-rate problems by cvxpy.

Problem (seed 004, eq. (15); SCENARIOS.md section 6; ``miso`` is the case without a common stream, QoS or
split): maximise ``sum_k w_k R_pk + sum_k c_k`` over the precoder ``P`` and the split ``c >= 0`` subject to
per-block (per-BS) power budgets, QoS ``c_k + R_pk >= R_th`` and ``sum c <= R_ck`` for every ``k``, with

    R_m = log2(1 + |a_k p_j|^2 / D_m(P)),   D_m(P) = noise_k + sum_{terms} |e^T p_i|^2   (convex quadratic)

for every rate term ``m`` (user ``k``'s private stream ``j = k``, or the common stream ``j = c``; the terms of
``D_m`` are the interferers of the chosen SINR form: coherent, or seed 004's printed eqs. (8)/(10)).

Convex inner approximation (the standard SCA of a SINR constraint by the first-order minorant of the
quadratic-over-linear function, e.g. Mao, Clerckx, Li, "Energy efficiency of rate-splitting multiple access,
and performance benefits over SDMA and NOMA" (ISWCS 2018); the same bound as in Tervo, Tran, Juntti,
"Optimal energy-efficient transmit beamforming for multi-user MISO downlink"): with slack variables
``rho_m`` (SINR) and ``delta_m`` (interference plus noise),

    rate_m <= log2(1 + rho_m)                         (exponential cone)
    delta_m >= D_m(P)                                 (second-order cone)
    rho_m <= 2 Re(conj(a p0) a p) / delta0 - |a p0|^2 delta_m / delta0^2
                                                      (affine: the tangent of |a p|^2 / delta, jointly convex,
                                                       at the current point (p0, delta0 = D_m(P0)), a global
                                                       lower bound, tight at the current point)

so every feasible point of the approximation is feasible for the original problem with true rates at least
``rate_m`` (``|a p|^2 / D_m >= |a p|^2 / delta_m >= rho_m``), and the current point is feasible for the next
approximation: the objective never decreases. QoS shortfalls carry slacks ``s_k >= 0`` with weight ``mu``
(``penalty``) in the objective (an exact L1 penalty; a start that violates QoS becomes feasible along the way,
the penalised objective still monotone). The conic program is built once per problem with cvxpy
``Parameter`` s (DPP: the channel rows, the tangent coefficients) and re-solved by Clarabel (SCS if Clarabel
fails), until the penalised objective changes by less than ``tol`` relative (default 1e-4) or ``max_iter``.

Movable antennas (``r``, role ``positions``; the approximation is for fixed positions): between SCA rounds,
``pos_steps`` projected gradient steps on the penalised objective (torch autograd of the scenario's loss and
constraints), normalised to a largest move of ``pos_step`` wavelengths with backtracking (halving, at most 8
times); a step is kept only if it raises the penalised objective, after shrinking ``c`` to the new common
rate (so the split stays feasible), which keeps the whole run monotone.

Zero common stream (``rsma`` warm-started from the ``sdma`` solution, ``warm=sdma``): at ``p_c = 0`` the
tangent of ``|a_k p_c|^2 / delta`` is identically zero, so the approximation can never give the common
stream power and SCA would stay at the SDMA answer. A start whose common column is zero is therefore
*seeded* (option ``common_seed``, a choice: the papers start SCA from feasible points with all streams
active): the common column becomes the normalised sum of the matched filters ``a_k^H / ||a_k||`` at the
current channel (the ``mrt`` initial point's common direction; the dominant eigenvector of ``sum_k a_k^H
a_k / ||a_k||^2`` if that sum vanishes), scaled onto every BS's budget and then by ``sqrt(share)``, and the
private columns by ``sqrt(1 - share)`` (still within every budget). SCA then runs from the seeded point.
The SDMA stationary point is also a stationary point of the RSMA problem (common stream off), and SCA from the
seeded point often shrinks the common stream back to nothing (measured on overloaded ``K > N I`` channels);
so when the seeded run ends no higher than the unseeded start (by ``tol`` relative), a second run starts from
the problem's ``init`` point (all streams active), and the best of the unseeded start and the two runs is
returned: a warm-started run never ends below its stage, and it can reach RSMA optima the SDMA point does not
lead to. ``info["merit"]`` is the trace of the returned run (the start's value alone if the start is kept);
``info["seeded"]`` says a seed was made.

Warm start (option ``warm``, the core's stage mechanism, :meth:`~wbench.problem.Problem.warm_start`):
``warm=sdma`` first runs SCA on the problem's ``sdma`` stage (same channel, same options) and starts from its
embedding (zero common column, ``c = 0``, then seeded); ``warm=fpa`` from the fixed-antenna solution at
``r = 0``.

The returned point is the last (best) iterate, ``P`` projected onto the budgets and ``c`` shrunk to
``min_k R_ck`` (removing solver round-off of order 1e-8). ``info["merit"]`` holds the penalised objective
after every round (non-decreasing: tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ...hookspecs import hookimpl
from ...params import Param
from ...problem import BlockPowerBall, PowerBall, Problem, Vars
from ...solver import RunContext, Solution, Solver

_LN2 = math.log(2.0)


@dataclass
class _Term:
    """One rate term: user ``k`` decodes column ``col``; interference ``sum |A[u, rows] P[rows, i]|^2``."""

    k: int
    col: int
    interferers: list[tuple[int, slice, int]]  # (channel row u, precoder rows, column i)


@dataclass
class _Model:
    """What SCA needs of a problem: channel rows, streams, budgets, weights, noise and QoS."""

    A: np.ndarray  # (K, Nt): gain of column p at user k is A[k] @ p
    private: list[_Term]
    common: list[_Term]  # empty without a common stream
    common_col: int | None
    n_cols: int
    blocks: list[slice]
    budgets: np.ndarray
    weights: np.ndarray
    noise: np.ndarray
    r_th: float
    precoder: str
    split: str | None
    positions: str | None


def _blocks_of(c: Any, nt: int) -> tuple[list[slice], np.ndarray]:
    if isinstance(c, PowerBall):
        return [slice(0, nt)], np.array([float(c.budget)])
    starts = np.concatenate([[0], np.cumsum(c.sizes)])
    return [slice(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:])], np.asarray(c.budgets, float)


def _model(problem: Problem, x: Mapping[str, np.ndarray]) -> _Model:
    from ...scenarios.comp_rsma_ma import CompRsmaMaProblem

    if isinstance(problem, CompRsmaMaProblem):
        lay = problem.layout
        k = lay.K
        A = problem.channel_rows(np.asarray(x["r"], dtype=np.float64) if problem.movable else None)
        nt = A.shape[1]
        full = slice(0, nt)
        priv_cols = [lay.private(u) for u in range(k)]
        per_bs = [slice(n * (nt // problem.n_bs), (n + 1) * (nt // problem.n_bs)) for n in range(problem.n_bs)]

        def interferers(user: int, exclude: int | None) -> list[tuple[int, slice, int]]:
            others = [u for u in range(k) if u != exclude]
            if problem.sinr == "coherent":
                return [(user, full, priv_cols[u]) for u in others]
            return [(u, rows, priv_cols[u]) for u in others for rows in per_bs]  # eqs. (8)/(10) as printed

        private = [_Term(u, priv_cols[u], interferers(u, u)) for u in range(k)]
        common = [_Term(u, 0, interferers(u, None)) for u in range(k)] if lay.has_common else []
        blocks, budgets = _blocks_of(problem.variables["P"].constraint, nt)
        return _Model(A, private, common, lay.common, lay.n_streams, blocks, budgets, np.ones(k), np.ones(k),
                      problem.r_th, "P", "c" if lay.has_common else None, "r" if problem.movable else None)
    view = problem.precoding_view(x)
    A = np.asarray(view.H).conj()
    k, nt = A.shape
    full = slice(0, nt)
    private = [_Term(u, u, [(u, full, i) for i in range(k) if i != u]) for u in range(k)]
    blocks, budgets = _blocks_of(problem.variables[view.variable].constraint, nt)
    return _Model(A, private, [], None, k, blocks, budgets, np.asarray(view.weights, float), view.noise(), 0.0,
                  view.variable, None, None)


def _unsupported(problem: Problem) -> str | None:
    from ...scenarios.comp_rsma_ma import CompRsmaMaProblem

    if isinstance(problem, CompRsmaMaProblem):
        return None
    if not problem.has_precoding_view:
        return "no linear-precoding view and not a rate-splitting (comp-rsma-ma) problem"
    if len(problem.variables) != 1:
        return "SCA optimises a precoder alone; this problem has other variables"
    try:
        view = problem.precoding_view(problem.initial())
    except (NotImplementedError, ValueError) as exc:
        return str(exc)
    if view.streams is not None:
        return "the precoding view holds some streams fixed"
    c = problem.variables[view.variable].constraint
    if not isinstance(c, (PowerBall, BlockPowerBall)):
        return f"{c.describe()} is not a power budget"
    return None


class _Program:
    """The convex approximation as a cvxpy problem with parameters (built once, DPP)."""

    def __init__(self, m: _Model, penalty: float) -> None:
        import cvxpy as cp

        k, nt = m.A.shape
        terms = m.private + m.common
        self.terms = terms
        self.A = cp.Parameter((k, nt), complex=True)
        self.W = cp.Parameter((len(terms), nt), complex=True)
        self.beta = cp.Parameter(len(terms), nonneg=True)
        self.P = cp.Variable((nt, m.n_cols), complex=True)
        rho = cp.Variable(len(terms), nonneg=True)
        delta = cp.Variable(len(terms))
        self.rate = cp.Variable(len(terms))
        cons = []
        for t, term in enumerate(terms):
            parts = [self.A[u, rows] @ self.P[rows, i] for (u, rows, i) in term.interferers]
            interference = cp.sum_squares(cp.hstack(parts)) if parts else 0.0
            cons += [
                delta[t] >= m.noise[term.k] + interference,
                rho[t] <= 2 * cp.real(self.W[t] @ self.P[:, term.col]) - self.beta[t] * delta[t],
                self.rate[t] * _LN2 <= cp.log(1 + rho[t]),
            ]
        for rows, budget in zip(m.blocks, m.budgets):
            cons.append(cp.sum_squares(self.P[rows, :]) <= budget)
        n_priv = len(m.private)
        r_p = self.rate[:n_priv]
        utility = m.weights @ r_p
        achieved = r_p
        self.c = None
        if m.common:
            self.c = cp.Variable(k, nonneg=True)
            cons += [cp.sum(self.c) <= self.rate[n_priv + u] for u in range(k)]
            utility = utility + cp.sum(self.c)
            achieved = achieved + self.c
        objective = utility
        if m.r_th > 0:
            s = cp.Variable(k, nonneg=True)
            cons.append(achieved + s >= m.r_th)
            objective = objective - penalty * cp.sum(s)
        self.problem = cp.Problem(cp.Maximize(objective), cons)

    def set_point(self, m: _Model, P0: np.ndarray) -> None:
        gains = m.A @ P0
        W = np.zeros(self.W.shape, complex)
        beta = np.zeros(self.beta.shape)
        for t, term in enumerate(self.terms):
            d0 = m.noise[term.k] + sum(abs(m.A[u, rows] @ P0[rows, i]) ** 2 for (u, rows, i) in term.interferers)
            num = gains[term.k, term.col]
            W[t] = np.conj(num) / d0 * m.A[term.k]
            beta[t] = abs(num) ** 2 / d0 ** 2
        self.A.value = m.A
        self.W.value = W
        self.beta.value = beta

    def solve(self) -> bool:
        import warnings

        import cvxpy as cp

        for solver in ("CLARABEL", "SCS"):
            try:
                with warnings.catch_warnings():
                    # an inaccurate solution is only kept if its true objective improves (see Sca.solve)
                    warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                    self.problem.solve(solver=solver)
            except (cp.error.SolverError, ArithmeticError, ValueError):
                continue
            if self.problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) and self.P.value is not None:
                return True
        return False


class Sca(Solver):
    """SCA of the SINR constraints (quadratic-over-linear minorant) solved by cvxpy, positions by projected
    gradient steps between rounds."""

    name = "sca"
    version = "1"
    description = "successive convex approximation (quadratic-over-linear minorant) by cvxpy/Clarabel"
    tags = frozenset({"conventional"})
    scenarios = ("comp-rsma-ma", "miso")
    multi_start = True
    uses_torch = True
    cpu_only = "its convex steps are cvxpy programs"
    imports = ("cvxpy",)
    options = {
        "max_iter": Param(50, "SCA rounds", min=1),
        "tol": Param(1e-4, "stop when the penalised objective changes by less than this, relative", min=0.0),
        "penalty": Param(100.0, "weight mu of the QoS shortfall slacks (exact L1 penalty)", min=0.0),
        "pos_steps": Param(5, "projected gradient steps on the positions between rounds (movable antennas)",
                           min=0),
        "pos_step": Param(0.1, "largest position move of a step, in wavelengths (halved on failure)", min=0.0),
        "init": Param(None, "starting point: one of the problem's initial points (default: its first)",
                      nullable=True),
        "common_seed": Param(0.05, "power share given to a common column that starts at zero (0: none)",
                             min=0.0, max=0.99),
        "warm": Param("none", "none, or the problem's warm-start stage (sdma: rsma from the sdma solution; "
                      "fpa: movable antennas from the fixed-antenna solution)"),
    }
    budget_options = ("max_iter", "pos_steps")

    def supports_problem(self, problem: Problem) -> bool:
        return _unsupported(problem) is None

    def declines(self, problem: Problem, options: Mapping[str, Any]) -> str | None:
        return _unsupported(problem)

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        opts = self.resolve_options(options)
        init = opts["init"] or problem.init_methods[0]
        if init not in problem.init_methods:
            raise ValueError(f"init: {init!r} is not one of {', '.join(problem.init_methods)}")
        info: dict[str, Any] = {}
        stage = str(opts["warm"]).strip()
        if stage != "none":
            warm = problem.warm_start()
            if warm is None or warm.name != stage:
                have = "none" if warm is None else repr(warm.name)
                raise ValueError(f"warm: this problem's warm-start stage is {have}, not {stage!r}")
            first = _sca(warm.problem, _start_point(warm.problem, init, ctx), opts, ctx, record=False)
            x = problem.project(warm.embed(first[0]))
            info["warm"] = {"stage": stage, "rounds": first[2], "utility": warm.problem.utility(first[0])}
        else:
            x = _start_point(problem, init, ctx)
        x, trace, it, failed, seeded = _sca(problem, x, opts, ctx, record=True)
        info.update({"merit": trace, "solver_failed": failed, "rounds": it, "seeded": seeded})
        return Solution(x={k: np.array(v, copy=True) for k, v in x.items()}, iterations=it, info=info)


def _start_point(problem: Problem, init: str, ctx: RunContext) -> Vars:
    """The projected initial point ``init`` of ``problem`` (from the run context: random on extra starts)."""
    return problem.project(ctx.initial(problem, init))


def _seed_common(problem: Problem, m: _Model, x: Vars, share: float) -> Vars | None:
    """``x`` with its zero common column replaced by a small MRT-sum direction (see the module docstring);
    ``None`` when there is no common column, it is non-zero, or ``share`` is 0."""
    if m.common_col is None or share <= 0:
        return None
    P = np.asarray(x[m.precoder], dtype=np.complex128)
    if np.any(P[:, m.common_col] != 0):
        return None
    A = m.A
    rows = A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-300)
    d = rows.conj().sum(axis=0)
    if np.linalg.norm(d) < 1e-9 * np.sqrt(A.shape[0]):
        _, vecs = np.linalg.eigh(rows.conj().T @ rows)
        d = vecs[:, -1]
    block = problem.variables[m.precoder].constraint
    seeded = P * np.sqrt(1.0 - share)
    seeded[:, m.common_col] = np.sqrt(share) * block.full_power(d[:, None])[:, 0]
    return dict(x, **{m.precoder: block.project(seeded)})


def _sca(problem: Problem, x: Vars, opts: Mapping[str, Any], ctx: RunContext, record: bool
         ) -> tuple[Vars, list[float], int, bool, bool]:
    """SCA from ``x``: ``(x, merit trace, rounds, solver failed, seeded)``; checkpoints if ``record``. A zero
    common column is seeded; if that run ends no higher than the unseeded start, a second run from the
    ``init`` point is made and the best of the start and the two runs returned (module docstring)."""
    mu = float(opts["penalty"])
    m = _model(problem, x)
    x = _fit_split(problem, m, x)
    seeded = _seed_common(problem, m, x, float(opts["common_seed"]))
    if seeded is None:
        return (*_rounds(problem, m, x, opts, ctx, record), False)
    start_merit = _merit(problem, x, mu)
    best = (x, [start_merit], 0, False)
    for point in (seeded, None):
        if point is None:
            point = _start_point(problem, opts["init"] or problem.init_methods[0], ctx)
            m = _model(problem, point)
        run = _rounds(problem, m, _fit_split(problem, m, point), opts, ctx, record)
        if run[1][-1] > best[1][-1]:
            best = run
        if best[1][-1] > start_merit + opts["tol"] * max(1.0, abs(start_merit)):
            break  # the common stream grew
    if record:
        ctx.checkpoint(best[0], best[2], force=True)
    return (*best, True)


def _rounds(problem: Problem, m: _Model, x: Vars, opts: Mapping[str, Any], ctx: RunContext, record: bool
            ) -> tuple[Vars, list[float], int, bool]:
    """The SCA rounds from ``x``: ``(x, merit trace, rounds, solver failed)``."""
    mu = float(opts["penalty"])
    merit = _merit(problem, x, mu)
    trace = [merit]
    prog = _Program(m, mu)
    if record:
        ctx.checkpoint(x, 0)
    it = 0
    failed = False
    for it in range(1, opts["max_iter"] + 1):
        if ctx.expired():
            it -= 1
            break
        prog.set_point(m, np.asarray(x[m.precoder]))
        if not prog.solve():
            failed, it = True, it - 1
            break
        cand = dict(x)
        cand[m.precoder] = problem.variables[m.precoder].constraint.project(np.asarray(prog.P.value))
        if m.split is not None:
            cand[m.split] = np.maximum(np.asarray(prog.c.value, dtype=np.float64), 0.0)
        cand = _fit_split(problem, m, cand)
        new = _merit(problem, cand, mu)
        if new >= merit - 1e-9 * max(1.0, abs(merit)):  # solver round-off aside, never a worse point
            x = cand
        else:
            new = merit
        if m.positions is not None and opts["pos_steps"] > 0:
            x, new = _position_steps(problem, m, x, new, mu, opts["pos_steps"], opts["pos_step"])
            m.A = _model(problem, x).A
        change = abs(new - merit) / max(1.0, abs(merit))
        merit = new
        trace.append(merit)
        if record:
            ctx.checkpoint(x, it)
        if change < opts["tol"]:
            break
    if record:
        ctx.checkpoint(x, it, force=True)
    return x, trace, it, failed


def _merit(problem: Problem, x: Vars, mu: float) -> float:
    """Utility minus ``mu`` times the total violation of the scenario constraints (exact L1 penalty)."""
    viol = sum(float(np.sum(np.maximum(-np.asarray(v), 0.0))) for v in problem.constraints(x).values())
    return float(problem.utility(x)) - mu * viol


def _fit_split(problem: Problem, m: _Model, x: Vars) -> Vars:
    """``c`` shrunk (uniformly) so that ``sum c <= min_k R_ck`` holds exactly."""
    if m.split is None:
        return x
    r_c, _ = problem.rate_parts(x)  # type: ignore[attr-defined]
    c = np.maximum(np.asarray(x[m.split], dtype=np.float64), 0.0)
    total, cap = float(c.sum()), float(np.min(r_c))
    if total > cap:
        c = c * (cap / total if total > 0 else 0.0)
    return dict(x, **{m.split: c})


def _position_steps(problem: Problem, m: _Model, x: Vars, merit: float, mu: float, steps: int,
                    step: float) -> tuple[Vars, float]:
    import torch

    from ..common import autodiff

    box = problem.variables[m.positions].constraint
    for _ in range(steps):
        xt = autodiff.to_torch(problem, x, requires_grad=True)
        value = -problem.loss_torch(xt) - mu * sum(
            (-c).clamp(min=0.0).sum() for c in problem.constraints_torch(xt).values())
        (g,) = torch.autograd.grad(value, [xt[m.positions]])
        g = g.numpy()
        scale = float(np.max(np.abs(g)))
        if not math.isfinite(scale) or scale == 0.0:
            break
        t = step
        moved = False
        for _ in range(9):
            cand = dict(x, **{m.positions: box.project(np.asarray(x[m.positions]) + t * g / scale)})
            cand = _fit_split(problem, m, cand)
            new = _merit(problem, cand, mu)
            if new > merit:
                x, merit, moved = cand, new, True
                break
            t /= 2
        if not moved:
            break
    return x, merit


@hookimpl
def wbench_register_solvers(register) -> None:
    register(Sca())
