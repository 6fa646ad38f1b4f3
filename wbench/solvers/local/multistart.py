"""``multistart``: the fmincon-like baseline, a constrained local solver from many random starts.

The baseline of seed 004 (CoMP-RSMA with movable antennas; SCENARIOS.md section 6: "constrained local
solver (SciPy SLSQP or trust-constr) from 100 random starts, best feasible kept"), written once for every
scenario through the :class:`~wbench.problem.Problem` interface.

Method, per start:

* Variables are packed into one real vector (:func:`autodiff.pack`: complex entries as (real, imaginary)
  pairs). A variable on a power ball is optimised in units of ``sqrt(budget)`` so that every coordinate is
  O(1) (SLSQP's step and objective tests are absolute); off-block entries of a block-unitary variable are
  held at zero and not optimised.
* Objective: the scenario's differentiable loss (``problem.loss_torch``, ``-utility`` plus the scenario's
  own penalties) with its exact gradient from torch autograd (:func:`autodiff.loss_and_grad`), or from the
  problem's hand-written NumPy form where it has one (``Problem.loss_and_grad_numpy``: ``hrsma`` without QoS
  and ``isac``, equal to autograd's to rounding and about 5x cheaper there). For a complex entry
  ``z = a + ib`` torch returns ``dL/da + i dL/db``, so the packed gradient is exactly the gradient in the
  packed coordinates.
* Constraints from each variable's set, with analytic Jacobians:
  ``PowerBall``: ``1 - ||x||^2 / budget >= 0``;
  ``UnitModulus``: ``|x_i|^2 - 1 = 0``;
  ``Unitary``: ``X^H X - I = 0`` (real parts of the upper triangle and imaginary parts of the strict upper
  triangle: ``n^2`` equations);
  ``BlockUnitary``: the same per diagonal block, off-block entries fixed at zero (not optimised);
  ``symmetric=True`` (reciprocal BD-RIS): ``X = W W^T`` with ``W`` (block-)unitary (Takagi; SCENARIOS.md
  section 2), ``W`` optimised under the constraints above and the start's ``W = X^(1/2)``
  (:func:`wbench.linalg.takagi_factor`). Adding
  ``X - X^T = 0`` to ``X^H X - I = 0`` instead would leave the equality Jacobian rank-deficient by
  ``n(n-1)/2`` at every feasible point (the set has dimension ``n(n+1)/2``), and SLSQP then stops after
  one iteration far from a stationary point;
  ``Box``: bounds; ``Simplex``: bounds ``x >= 0`` and ``total - sum(x) >= 0`` (``= 0`` with ``equality``);
  ``BlockPowerBall``: ``1 - ||x_b||^2 / budget_b >= 0`` per block (coordinates in units of
  ``sqrt(budget_b)``, block by block); ``Unconstrained``: nothing.
  Joint constraints (``problem.joint``, e.g. the hybrid precoder's ``||F_RF F_BB||^2 <= P``):
  ``residual_torch(x) >= 0`` with its exact gradient from torch autograd (not on a symmetric unitary
  variable, whose Takagi factor would need the chain rule: declined).
  The scenario's own ``problem.constraints(x) >= 0`` are added as inequalities, with the exact Jacobian of
  ``problem.constraints_torch`` by torch autograd where the scenario has one (and no variable is
  symmetric unitary), else by central finite differences of the NumPy constraints (which may be
  non-smooth, e.g. a minimum over users).
* ``scipy.optimize.minimize`` with ``method=slsqp`` (default) or ``trust-constr`` (BFGS Hessian
  approximations), ``max_iter`` iterations, ``tol`` as SLSQP's ``ftol`` or trust-constr's ``gtol``/``xtol``.

Starts: the first is the named initial point ``init`` (default: the problem's first initialiser), the others
``problem.initial("random", ctx.rng)``, drawn in start order, so one seed gives one answer. With
``final_project`` (default **on**) the end point of every start is projected onto the variable sets
(``problem.project``) before it is judged: SLSQP stops with set violations of about 1e-8..1e-10 and
trust-constr with larger ones, and the projection puts the answer exactly on the sets at a utility cost of
the same order. The option is in the budget label, so a leaderboard shows whether the answer was projected;
``final_project=false`` returns SciPy's raw points, as fmincon would.

Selection: a point is judged as it would be returned (projected when ``final_project``) by
``problem.feasibility`` and by the solver's own objective (``-loss``, not ``problem.utility``, which may use
evaluation data a solver must not see). Candidates are the starting points, every start's end point, and
the iterates at the iterations a trace keeps (1..10, then about 12 per decade: judging every iterate would
cost about 20% more time on ``miso``). The best feasible candidate is returned; if none is feasible, the one
whose worst violation relative to its tolerance is smallest.

Early stops: SLSQP ends a run at a failed line search ("Positive directional derivative for linesearch")
or an unsolvable QP subproblem even with iterations left. Such a start is restarted from its end point
(a fresh quasi-Newton matrix, i.e. a steepest-descent first step), at most 3 times, the stopping points
staying candidates; a start that still ends that way with iterations and time left is *stalled*:
``info["stalled"]`` (any start) and ``info["stalled_starts"]`` say so.

Budget: ``ctx.expired()`` is checked between starts and after every SciPy iteration (the callback stops
SciPy). Checkpoints record the best-so-far point, numbered by SciPy iterations summed over the starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from ...hookspecs import hookimpl
from ...linalg import takagi_factor
from ...params import Param
from ...problem import (BlockPowerBall, BlockUnitary, Box, PowerBall, Problem, Simplex, Unconstrained, Unitary,
                       UnitModulus, Vars)
from ...solver import RunContext, Solution, Solver

_KNOWN_SETS = (PowerBall, BlockPowerBall, UnitModulus, Unitary, BlockUnitary, Box, Simplex, Unconstrained)
_FD_STEP = np.finfo(np.float64).eps ** (1 / 3)  # central differences: truncation ~ rounding error


def _unitary_rows(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Residuals of ``X^H X = I`` and their derivatives w.r.t. the real and imaginary part of every entry.

    Rows: real parts of the upper triangle of ``M = X^H X - I`` and imaginary parts of its strict upper
    triangle (``M`` is Hermitian), ``n^2`` equations, independent at every unitary ``X``. Returns
    ``values`` (m,), ``d_re`` and ``d_im`` (m, n, n) with ``d_re[r, a, b] = d value_r / d Re X_ab``.
    ``M_jk = sum_a conj(X_aj) X_ak``, so only columns ``j`` and ``k`` of ``X`` enter row ``(j, k)``:
    ``dM_jk/dRe X_aj += X_ak``, ``dM_jk/dRe X_ak += conj(X_aj)``, ``dM_jk/dIm X_aj += -i X_ak``,
    ``dM_jk/dIm X_ak += i conj(X_aj)``.
    """
    n = X.shape[0]
    J, K = np.triu_indices(n)
    P = np.arange(J.size)
    M = X.conj().T @ X - np.eye(n)
    dre = np.zeros((J.size, n, n), dtype=np.complex128)
    dim = np.zeros((J.size, n, n), dtype=np.complex128)
    # Advanced indices separated by a slice put the pair axis first: shape (pairs, n) on both sides.
    dre[P, :, J] += X[:, K].T
    dre[P, :, K] += X[:, J].conj().T
    dim[P, :, J] += -1j * X[:, K].T
    dim[P, :, K] += 1j * X[:, J].conj().T
    off = J < K
    values = np.concatenate([M[J, K].real, M[J, K].imag[off]])
    return values, np.concatenate([dre.real, dre.imag[off]]), np.concatenate([dim.real, dim.imag[off]])


class _Formulation:
    """The problem as SciPy sees it: a real vector ``y`` of free, scaled coordinates.

    Internal variables ``w = unpack(full * scale)`` where ``full[free] = y`` and the other coordinates
    are zero; the problem's variables are ``x = w`` except on symmetric (block-)unitary sets, where
    ``x = w w^T`` with ``w`` (block-)unitary (Takagi).
    """

    def __init__(self, problem: Problem) -> None:
        from ..common import autodiff

        self.problem = problem
        self._ad = autodiff
        self.slices: dict[str, slice] = {}
        i = 0
        for name, var in problem.variables.items():
            width = int(np.prod(var.shape)) * (2 if var.complex else 1)
            self.slices[name] = slice(i, i + width)
            i += width
        self.n_full = i
        scale = np.ones(i)
        free = np.ones(i, dtype=bool)
        lb = np.full(i, -np.inf)
        ub = np.full(i, np.inf)
        for name, var in problem.variables.items():
            c, sl = var.constraint, self.slices[name]
            if not isinstance(c, _KNOWN_SETS):
                raise NotImplementedError(f"multistart: no constraint formulation for {c.describe()}")
            if isinstance(c, (Unitary, BlockUnitary)) and not var.complex:
                raise NotImplementedError(f"multistart: {c.describe()} on a real variable")
            if isinstance(c, (Box, Simplex)) and var.complex:
                raise NotImplementedError(f"multistart: {c.describe()} on a complex variable")
            if isinstance(c, PowerBall):
                scale[sl] = math.sqrt(float(c.budget))
            elif isinstance(c, BlockPowerBall):
                scale[sl] = np.sqrt(self._block_budget(c, var))
            elif isinstance(c, BlockUnitary):
                on_block = np.zeros(var.shape, dtype=bool)
                for b in c._blocks(var.shape[-1]):
                    on_block[b, b] = True
                free[sl] = np.repeat(on_block.ravel(), 2)
            elif isinstance(c, Box):
                lb[sl], ub[sl] = c.lo, c.hi
            elif isinstance(c, Simplex):
                lb[sl] = 0.0
        self.takagi = {
            name for name, var in problem.variables.items()
            if isinstance(var.constraint, (Unitary, BlockUnitary)) and var.constraint.symmetric
        }
        for j in problem.joint:
            touched = self.takagi & set(j.names)
            if touched:
                raise NotImplementedError(f"multistart: joint constraint {j.describe()} on a symmetric unitary "
                                          f"variable ({', '.join(sorted(touched))})")
        self.torch_constraints = problem.has_constraints_torch and not self.takagi
        self.scale = scale
        self.free = np.flatnonzero(free)
        self.col_scale = scale[self.free]
        self.lb, self.ub = lb[self.free], ub[self.free]
        self.has_bounds = bool(np.isfinite(self.lb).any() or np.isfinite(self.ub).any())
        probe = problem.random_feasible(np.random.default_rng(0))
        w = self.internal(self.from_vars(probe))
        self.n_eq = self._set_rows(w, "eq")[0].size
        self.n_set_ineq = self._set_rows(w, "ineq")[0].size + len(problem.joint)
        self.n_scen = self._scenario(probe).size

    def _block_budget(self, c: BlockPowerBall, var: Any) -> np.ndarray:
        """The budget of the block of every packed coordinate of a variable (``(re, im)`` pairs repeated)."""
        axis = c._check(tuple(var.shape))
        shape = [1] * len(var.shape)
        shape[axis] = -1
        per_entry = np.broadcast_to(np.asarray(c.budgets)[c.block_index()].reshape(shape), var.shape).ravel()
        return np.repeat(per_entry, 2) if var.complex else per_entry

    # -- coordinates -------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return int(self.free.size)

    def internal(self, y: np.ndarray) -> Vars:
        full = np.zeros(self.n_full)
        full[self.free] = y
        return self._ad.unpack(self.problem, full * self.scale)

    def to_vars(self, y: np.ndarray) -> Vars:
        w = self.internal(y)
        return {k: v @ v.T if k in self.takagi else v for k, v in w.items()}

    def from_vars(self, x: Mapping[str, np.ndarray]) -> np.ndarray:
        w = {}
        for name, var in self.problem.variables.items():
            v = np.asarray(x[name], dtype=var.dtype)
            if name in self.takagi:
                c = var.constraint
                blocks = c._blocks(v.shape[-1]) if isinstance(c, BlockUnitary) else [slice(None)]
                u = np.zeros_like(v)
                for b in blocks:
                    u[b, b] = takagi_factor(v[b, b])
                v = u
            w[name] = v
        return (self._ad.pack(self.problem, w) / self.scale)[self.free]

    # -- objective ---------------------------------------------------------------------------------
    def objective(self, y: np.ndarray) -> tuple[float, np.ndarray]:
        w = self.internal(y)
        x = {k: v @ v.T if k in self.takagi else v for k, v in w.items()}
        loss, grad = self._ad.loss_and_grad(self.problem, x)
        for k in self.takagi:
            # X = W W^T: dL = Re<G, dW W^T + W dW^T> = Re<(G + G^T) conj(W), dW>
            grad[k] = (grad[k] + grad[k].T) @ w[k].conj()
        return loss, self._ad.pack(self.problem, grad)[self.free] * self.col_scale

    def loss(self, x: Mapping[str, np.ndarray]) -> float:
        import torch

        with torch.no_grad():
            return float(self.problem.loss_torch(self._ad.to_torch(self.problem, x)))

    # -- constraints -------------------------------------------------------------------------------
    def _set_rows(self, x: Mapping[str, np.ndarray], kind: str) -> tuple[np.ndarray, np.ndarray]:
        """Values and Jacobian of the set constraints of one kind at internal variables ``x``.

        The Jacobian is w.r.t. the full packed, unscaled internal vector; a symmetric (block-)unitary
        variable's factor ``w`` is constrained to be (block-)unitary.
        """
        values: list[np.ndarray] = []
        jacs: list[np.ndarray] = []

        def add(v: np.ndarray, d_re: np.ndarray, d_im: np.ndarray | None, sl: slice) -> None:
            # d_re/d_im: (m, entries) derivatives w.r.t. the real/imaginary part of each entry
            jac = np.zeros((v.size, self.n_full))
            if d_im is None:
                jac[:, sl] = d_re
            else:
                jac[:, sl.start : sl.stop : 2] = d_re
                jac[:, sl.start + 1 : sl.stop : 2] = d_im
            values.append(v)
            jacs.append(jac)

        for name, var in self.problem.variables.items():
            c, sl = var.constraint, self.slices[name]
            a = np.asarray(x[name], dtype=var.dtype)
            flat = a.ravel()
            if isinstance(c, PowerBall) and kind == "ineq":
                b = float(c.budget)
                v = np.array([1.0 - float(np.sum(np.abs(flat) ** 2)) / b])
                if var.complex:
                    add(v, -2.0 * flat.real[None] / b, -2.0 * flat.imag[None] / b, sl)
                else:
                    add(v, -2.0 * flat[None] / b, None, sl)
            elif isinstance(c, UnitModulus) and kind == "eq":
                v = np.abs(flat) ** 2 - 1.0
                if var.complex:
                    add(v, np.diag(2.0 * flat.real), np.diag(2.0 * flat.imag), sl)
                else:
                    add(v, np.diag(2.0 * flat), None, sl)
            elif isinstance(c, Unitary) and kind == "eq":
                v, dre, dim = _unitary_rows(a)
                add(v, dre.reshape(v.size, -1), dim.reshape(v.size, -1), sl)
            elif isinstance(c, BlockUnitary) and kind == "eq":
                n = a.shape[-1]
                for blk in c._blocks(n):
                    v, dre, dim = _unitary_rows(a[blk, blk])
                    full_re = np.zeros((v.size, n, n))
                    full_im = np.zeros((v.size, n, n))
                    full_re[:, blk, blk] = dre
                    full_im[:, blk, blk] = dim
                    add(v, full_re.reshape(v.size, -1), full_im.reshape(v.size, -1), sl)
            elif isinstance(c, BlockPowerBall) and kind == "ineq":
                axis = c._check(a.shape)
                shape = [1] * a.ndim
                shape[axis] = -1
                which = np.broadcast_to(c.block_index().reshape(shape), a.shape).ravel()
                powers = np.bincount(which, weights=np.abs(flat) ** 2, minlength=len(c.budgets))
                budgets = np.asarray(c.budgets)
                mask = (which[None, :] == np.arange(len(budgets))[:, None]) / budgets[:, None]
                if var.complex:
                    add(1.0 - powers / budgets, -2.0 * flat.real[None] * mask, -2.0 * flat.imag[None] * mask, sl)
                else:
                    add(1.0 - powers / budgets, -2.0 * flat[None] * mask, None, sl)
            elif isinstance(c, Simplex) and (kind == "eq") == c.equality:
                add(np.array([c.total - float(flat.sum())]), -np.ones((1, flat.size)), None, sl)
        if not values:
            return np.zeros(0), np.zeros((0, self.n_full))
        return np.concatenate(values), np.concatenate(jacs)

    def _torch_rows(self, x: Mapping[str, np.ndarray], rows: Callable[[Mapping[str, Any]], list]
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Values of the torch scalars ``rows(x)`` and their gradients w.r.t. the full packed vector."""
        import torch

        xt = self._ad.to_torch(self.problem, x, requires_grad=True)
        outs = rows(xt)
        if not outs:
            return np.zeros(0), np.zeros((0, self.n_full))
        values = torch.cat([torch.as_tensor(o).reshape(-1) for o in outs])
        leaves = list(xt.values())
        jac = np.zeros((values.numel(), self.n_full))
        for r in range(values.numel()):
            grads = torch.autograd.grad(values[r], leaves, retain_graph=True, allow_unused=True)
            g = {k: np.zeros(t.shape, dtype=self.problem.variables[k].dtype) if gr is None else gr.numpy()
                 for (k, t), gr in zip(xt.items(), grads)}
            jac[r] = self._ad.pack(self.problem, g)
        return values.detach().numpy().astype(np.float64), jac

    def _joint_rows(self, x: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``residual_torch >= 0`` of every joint constraint and its gradient (full packed vector)."""
        if not self.problem.joint:
            return np.zeros(0), np.zeros((0, self.n_full))
        return self._torch_rows(x, lambda xt: [j.residual_torch(xt) for j in self.problem.joint])

    def _scenario(self, x: Vars) -> np.ndarray:
        cons = self.problem.constraints(x)
        if not cons:
            return np.zeros(0)
        return np.concatenate([np.ravel(np.asarray(v, dtype=np.float64)) for v in cons.values()])

    def eq(self, y: np.ndarray) -> np.ndarray:
        return self._set_rows(self.internal(y), "eq")[0]

    def eq_jac(self, y: np.ndarray) -> np.ndarray:
        return self._set_rows(self.internal(y), "eq")[1][:, self.free] * self.col_scale

    def ineq(self, y: np.ndarray) -> np.ndarray:
        x = self.to_vars(y)
        return np.concatenate([self._set_rows(self.internal(y), "ineq")[0], self._joint_rows(x)[0],
                               self._scenario(x)])

    def ineq_jac(self, y: np.ndarray) -> np.ndarray:
        jac = self._set_rows(self.internal(y), "ineq")[1][:, self.free] * self.col_scale
        if self.problem.joint:
            jac = np.concatenate([jac, self._joint_rows(self.to_vars(y))[1][:, self.free] * self.col_scale])
        if self.n_scen == 0:
            return jac
        return np.concatenate([jac, self.scenario_jac(y)])

    def scenario_jac(self, y: np.ndarray) -> np.ndarray:
        """The Jacobian of ``problem.constraints`` in the scaled coordinates: by torch autograd through
        ``constraints_torch`` where the problem has it, else by central finite differences."""
        if self.torch_constraints:
            _, jac = self._torch_rows(self.to_vars(y), lambda xt: list(self.problem.constraints_torch(xt).values()))
            return jac[:, self.free] * self.col_scale
        out = np.empty((self.n_scen, self.n))
        for i in range(self.n):
            h = _FD_STEP * max(1.0, abs(float(y[i])))
            yp, ym = y.copy(), y.copy()
            yp[i] += h
            ym[i] -= h
            out[:, i] = (self._scenario(self.to_vars(yp)) - self._scenario(self.to_vars(ym))) / (2 * h)
        return out


@dataclass
class _Candidate:
    x: Vars
    objective: float  # -loss: larger is better
    feasible: bool
    violation: float  # worst violation relative to its tolerance


def _judge(form: _Formulation, x: Vars, objective: float | None = None) -> _Candidate:
    feas = form.problem.feasibility(x)
    rel = max((v / max(feas.tolerances[k], 1e-300) for k, v in feas.violations.items()), default=0.0)
    if objective is None:
        objective = -form.loss(x)
    if not math.isfinite(objective):
        objective = -math.inf
    return _Candidate(x, objective, bool(feas.feasible), rel if math.isfinite(rel) else math.inf)


def _better(a: _Candidate, b: _Candidate | None) -> bool:
    """Whether ``a`` beats ``b``: feasible first, then larger objective; else smaller violation."""
    if b is None:
        return True
    if a.feasible != b.feasible:
        return a.feasible
    if a.feasible:
        return a.objective > b.objective
    return a.violation < b.violation


class Multistart(Solver):
    """SciPy SLSQP / trust-constr from ``starts`` starts, best feasible kept (seed 004's fmincon baseline)."""

    name = "multistart"
    version = "2"
    description = "fmincon-like baseline: SciPy SLSQP/trust-constr from n random starts, best feasible kept"
    tags = frozenset({"conventional"})
    scenarios = None
    uses_torch = True
    cpu_only = "SciPy optimises in NumPy"
    options = {
        "method": Param("slsqp", "SciPy constrained local solver", choices=("slsqp", "trust-constr")),
        "starts": Param(10, "number of starts (the seed-004 protocol is 100)", min=1),
        "max_iter": Param(500, "SciPy iterations per start", min=1),
        "max_dim": Param(256, "decline problems with more real unknowns than this: SLSQP's dense "
                         "quasi-Newton steps cost O(n^3) (fully-connected BD-RIS with B=16 has 544 and takes "
                         "minutes per start)", min=1),
        "tol": Param(1e-9, "SLSQP ftol (absolute, on the loss) or trust-constr gtol and xtol", min=1e-16),
        "init": Param(
            "auto",
            "first start: a named initial point of the problem ('auto' = the problem's first initialiser); "
            "the other starts are random feasible points",
        ),
        "final_project": Param(
            True,
            "project every start's end point onto the variable sets before judging it (default on; SLSQP "
            "ends ~1e-8..1e-10 off the sets); false returns SciPy's raw points as fmincon would",
        ),
    }
    budget_options = ("method", "starts", "max_iter", "final_project")

    def supports_problem(self, problem: Problem) -> bool:
        return _unsupported(problem) is None

    def declines(self, problem: Problem, options: Mapping[str, Any]) -> str | None:
        reason = _unsupported(problem)
        if reason is not None:
            return reason
        dim = sum(int(np.prod(v.shape)) * (2 if v.complex else 1) for v in problem.variables.values())
        limit = self.resolve_options(options)["max_dim"]
        if dim > limit:
            return f"{dim} real unknowns exceed max_dim={limit} (set multistart[max_dim=...] to run it anyway)"
        return None

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        opts = self.resolve_options(options)
        form = _Formulation(problem)
        init = problem.init_methods[0] if opts["init"] == "auto" else opts["init"]
        if init not in problem.init_methods:
            raise ValueError(f"init={init!r} is not an initial point of this problem; "
                             f"valid: auto, {', '.join(problem.init_methods)}")
        minimise = _slsqp if opts["method"] == "slsqp" else _trust_constr

        best: _Candidate | None = None
        iterations = 0
        starts_info: list[dict[str, Any]] = []

        def offer(cand: _Candidate) -> None:
            nonlocal best
            if _better(cand, best):
                best = cand

        last: dict[str, Any] = {}

        def objective(y: np.ndarray) -> tuple[float, np.ndarray]:
            f, g = form.objective(y)
            last["y"], last["f"] = y.copy(), f
            return f, g

        def finish(y: np.ndarray) -> _Candidate:
            """A SciPy point as it would be returned: projected when ``final_project``, then judged."""
            x = form.to_vars(y)
            if opts["final_project"]:
                return _judge(form, problem.project(x))
            f = last["f"] if "y" in last and np.array_equal(last["y"], y) else None
            return _judge(form, x, None if f is None else -f)

        def callback(intermediate_result: Any) -> None:
            nonlocal iterations
            iterations += 1
            if ctx.wants(iterations):  # judging costs a projection and a loss: only where a trace looks
                offer(finish(np.asarray(intermediate_result.x, dtype=np.float64)))
            ctx.checkpoint(best.x, iterations)
            if ctx.expired():
                raise StopIteration

        for s in range(opts["starts"]):
            if s > 0 and ctx.expired():
                break
            x0 = _start(problem, init if s == 0 else "random", ctx.rng)
            offer(_judge(form, x0))
            if s == 0:
                ctx.checkpoint(best.x, 0)
            base = iterations
            try:
                res = minimise(form, objective, form.from_vars(x0), opts, callback)
                nit, restarts = int(res.nit), 0
                # SLSQP gives up on a failed line search or QP subproblem with iterations left: restart it
                # from where it stopped, with a fresh quasi-Newton matrix (the stopping point stays a
                # candidate in case the continuation does worse).
                while (_early_stop(opts["method"], res) and restarts < MAX_RESTARTS
                       and nit < opts["max_iter"] and not ctx.expired()):
                    offer(finish(np.asarray(res.x, dtype=np.float64)))
                    res = minimise(form, objective, np.asarray(res.x, dtype=np.float64),
                                   dict(opts, max_iter=opts["max_iter"] - nit), callback)
                    nit, restarts = nit + int(res.nit), restarts + 1
                # SciPy's own count: SLSQP may end with an iteration it reports in ``nit`` without calling
                # the callback, so the numbering follows ``nit`` (and stays increasing)
                iterations = max(iterations, base + nit)
                cand = finish(np.asarray(res.x, dtype=np.float64))
                offer(cand)
                record = {"objective": cand.objective, "feasible": cand.feasible, "nit": nit,
                          "message": str(res.message), "restarts": restarts,
                          "stalled": _early_stop(opts["method"], res) and nit < opts["max_iter"]
                          and not ctx.expired()}
            except (ArithmeticError, ValueError) as exc:  # one failing start must not sink the others
                record = {"objective": None, "feasible": False, "nit": 0,
                          "message": f"{type(exc).__name__}: {exc}", "restarts": 0, "stalled": False}
            starts_info.append(record)
            if ctx.expired():
                break

        assert best is not None
        ctx.checkpoint(best.x, iterations, force=True)
        objs = [r["objective"] for r in starts_info]
        info = {
            "start_objective": objs,
            "start_feasible": [r["feasible"] for r in starts_info],
            "start_nit": [r["nit"] for r in starts_info],
            "start_message": [r["message"] for r in starts_info],
            "starts_run": len(starts_info),
            "start_restarts": [r["restarts"] for r in starts_info],
            # a start that SLSQP ended early (a failed line search or subproblem, after the restarts) with
            # iterations and time left: reported, never silent
            "stalled": any(r["stalled"] for r in starts_info),
            "stalled_starts": sum(r["stalled"] for r in starts_info),
            "best_objective": best.objective,
            "feasible": best.feasible,
        }
        return Solution(x={k: np.array(v, copy=True) for k, v in best.x.items()}, iterations=iterations,
                        info=info)


def _unsupported(problem: Problem) -> str | None:
    """Why the problem has no SciPy formulation here (``None``: it has one)."""
    for name, var in problem.variables.items():
        c = var.constraint
        if not isinstance(c, _KNOWN_SETS):
            return f"{name}: {c.describe()} has no SciPy formulation"
        if isinstance(c, (Unitary, BlockUnitary)) and not var.complex:
            return f"{name}: {c.describe()} on a real variable"
        if isinstance(c, (Box, Simplex)) and var.complex:
            return f"{name}: {c.describe()} on a complex variable"
    takagi = {n for n, v in problem.variables.items()
              if isinstance(v.constraint, (Unitary, BlockUnitary)) and v.constraint.symmetric}
    for j in problem.joint:
        if takagi & set(j.names):
            return f"joint constraint {j.describe()} on a symmetric unitary variable"
    return None
#: SLSQP exit modes that are not an early stop: 0 converged (its own test), 9 iteration limit, 99 the
#: callback stopped it (time budget). The others (a failed line search, mode 8; singular or incompatible
#: QP subproblems, modes 3-7) stop with iterations left.
_SLSQP_DONE = (0, 9, 99)
#: Restarts of SLSQP after an early stop, per start.
MAX_RESTARTS = 3


def _early_stop(method: str, res: Any) -> bool:
    """SLSQP stopped for another reason than convergence or a budget (trust-constr has no line search)."""
    return method == "slsqp" and int(getattr(res, "status", 0)) not in _SLSQP_DONE


def _start(problem: Problem, method: str, rng: np.random.Generator) -> Vars:
    if method == "random" and "random" not in problem.init_methods:
        return problem.random_feasible(rng)
    return problem.initial(method, rng)


def _slsqp(form: _Formulation, objective: Callable, y0: np.ndarray, opts: Mapping[str, Any],
           callback: Callable) -> Any:
    from scipy.optimize import minimize

    cons = []
    if form.n_eq:
        cons.append({"type": "eq", "fun": form.eq, "jac": form.eq_jac})
    if form.n_set_ineq + form.n_scen:
        cons.append({"type": "ineq", "fun": form.ineq, "jac": form.ineq_jac})
    bounds = list(zip(form.lb, form.ub)) if form.has_bounds else None
    return minimize(objective, y0, jac=True, method="SLSQP", bounds=bounds, constraints=cons,
                    callback=callback, options={"maxiter": opts["max_iter"], "ftol": opts["tol"]})


def _trust_constr(form: _Formulation, objective: Callable, y0: np.ndarray, opts: Mapping[str, Any],
                  callback: Callable) -> Any:
    import warnings

    from scipy.optimize import BFGS, Bounds, NonlinearConstraint, minimize

    cons = []
    if form.n_eq:
        cons.append(NonlinearConstraint(form.eq, 0.0, 0.0, jac=form.eq_jac, hess=BFGS()))
    if form.n_set_ineq + form.n_scen:
        cons.append(NonlinearConstraint(form.ineq, 0.0, np.inf, jac=form.ineq_jac, hess=BFGS()))
    bounds = Bounds(form.lb, form.ub) if form.has_bounds else None
    with warnings.catch_warnings():
        # trust-constr warns that a quasi-Newton Hessian of a linear constraint is zero; harmless.
        warnings.filterwarnings("ignore", message=".*delta_grad == 0.0.*")
        return minimize(objective, y0, jac=True, hess=BFGS(), method="trust-constr", bounds=bounds,
                        constraints=cons, callback=callback,
                        options={"maxiter": opts["max_iter"], "gtol": opts["tol"], "xtol": opts["tol"]})


@hookimpl
def wbench_register_solvers(register) -> None:
    register(Multistart())
