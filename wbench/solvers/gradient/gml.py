"""``gml``: gradient-based meta-learning for CoMP-RSMA with movable antennas (seed 004, Algorithm 1, Table II).

Amhaz, Khisa, Elhattab, Assi, Sharafeddine, "Enhancing CoMP-RSMA performance with movable antennas: a
meta-learning optimization framework", section IV; SCENARIOS.md section 6. No pre-training: three networks
are trained on the one channel being solved, each fed the gradient of the loss with respect to its variable
and returning an increment added to the variable's *initial* value (eqs. (16)-(21)):

* common network (CN) on ``c``: ``K -> 100 -> ReLU -> K`` (Table II);
* precoding network (PN) row-wise on the ``(N I) x S`` precoder, each row as ``[Re | Im]`` (``2S = 2K+2``
  reals for ``rsma``): ``2S -> 1000 -> ReLU -> 2S``;
* antenna network (AN) on the flattened positions: ``2K -> 1000 -> ReLU -> 2K``.

One outer iteration (Algorithm 1, order C, P, L): ``c = c0 + CN(grad_c)`` at ``(c0, P, r)`` with the latest
``P``, ``r``; then ``P = U(P0 + PN(grad_P))`` at ``(P0, c, r)``, ``U`` the per-BS scaling of eq. (32)
(``P_n min(1, sqrt(P_M / ||P_n||_F^2))``); then ``r = clip(r0 + AN(grad_r))`` at ``(r0, c, P)``; after each
variable's update its network takes one Adam step on the loss at the updated point (learning rates
``1e-3`` (C), ``1.6e-3`` (P), ``1e-5`` (L), Table I). ``sdma`` has no C step and fixed antennas no L step.

Loss (eq. (22)): ``-sum_k (c_k + R_pk)`` plus constraint terms. The paper's terms are indicators weighted by
``zeta = 1e-4, 1e-2, 1.001, 1e-4`` (eqs. (24)-(31); (28)/(29) print the conditions inverted); indicators have
zero gradient, so training uses hinge surrogates (choice): ``penalty * (sum_k relu(R_th - c_k - R_pk) +
sum_k relu(sum c - R_ck) + sum_k relu(-c_k))`` (``penalty=2``, the best of 1, 2, 4, 10 on two default
channels: 12.6 against 10.6 bit/s/Hz at 10; the positions are clipped, not penalised).
The indicators select the returned point: every outer iteration's point is made feasible where it can be
without changing the channel (``c`` clipped at 0 and scaled to ``min_k R_ck``, ``r`` clipped, ``P`` already
within budget), and the best QoS-feasible one is kept (the paper's ``L^opt``; "W^opt" in line 30 of
Algorithm 1), else the one with the smallest violation.

Choices where the paper is silent: one inner iteration per outer iteration and a network update after every
outer iteration (``N_i = 1``), 500 outer iterations (``iters``), one epoch; the gradient inputs are scaled
to unit RMS and the increments by the initial variable's RMS entry (1 for ``c = 0`` and ``r = 0``), so that
one network fits any power and channel scale (``input_norm=raw`` feeds the raw gradient as the paper).

Device and precision: ``device`` (default the run's ``--device``) holds the variables and networks, and
the scenario's torch loss follows them there; ``dtype=float32`` keeps the variables, networks and channel
rows in float32 / complex64 (the networks drawn in float64 and rounded, so every precision starts from the
same networks); the scenario's rate formula multiplies by float64 masks, so the rates and the loss come out
in float64 and the gradients are rounded to float32 at the variables. Every iterate is scored in NumPy
float64 on the host (``_judge``), as the paper's indicators need.

Batched (:meth:`Gml.solve_batch`, the harness's path for several realisations of one configuration): the
same runs, bitwise on the CPU (float64). What is stacked is the autograd work (one gradient and one backward
pass per variable update for the whole stack) and the optimiser step; the loss, the networks, the projections
and the NumPy scoring of every iterate stay per realisation, so the saving is Python and autograd overhead
only (see :meth:`Gml.solve_batch`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ...hookspecs import hookimpl
from ...params import Param
from ...problem import Problem, Vars
from ...solver import RunContext, Solution, Solver, check_device


def _unsupported(problem: Problem) -> str | None:
    from ...scenarios.comp_rsma_ma import CompRsmaMaProblem

    if not isinstance(problem, CompRsmaMaProblem):
        return "gml is seed 004's method for comp-rsma-ma problems"
    return None


class Gml(Solver):
    """Seed 004's gradient-based meta-learning (three gradient-fed MLPs trained on the channel itself)."""

    name = "gml"
    version = "1"
    description = "seed 004's GML: three gradient-fed MLPs (C, P, L) trained online, best feasible iterate"
    tags = frozenset({"meta"})
    scenarios = ("comp-rsma-ma",)
    uses_torch = True
    gpu = True
    multi_start = True
    options = {
        "iters": Param(500, "outer iterations (one inner step and one network update each)", min=1),
        "lr_c": Param(1e-3, "Adam learning rate of the common network (beta_C)", min=0.0),
        "lr_p": Param(1.6e-3, "Adam learning rate of the precoding network (beta_P)", min=0.0),
        "lr_l": Param(1e-5, "Adam learning rate of the antenna network (beta_L)", min=0.0),
        "penalty": Param(2.0, "weight of the hinge surrogates of the constraint indicators", min=0.0),
        "input_norm": Param("rms", "gradient inputs scaled to unit RMS (rms) or fed raw (raw, the paper)",
                            choices=("rms", "raw")),
        "init": Param("paper", "starting point: one of the problem's initial points"),
        "device": Param(None, "torch device: cpu, cuda, auto (cuda when available, else cpu); default: the "
                        "run's --device", nullable=True, check=check_device),
        "dtype": Param("float64", "torch precision of the variables and networks (results are scored in "
                       "float64)", choices=("float64", "float32")),
    }
    budget_options = ("iters",)

    def supports_problem(self, problem: Problem) -> bool:
        return _unsupported(problem) is None

    def declines(self, problem: Problem, options: Mapping[str, Any]) -> str | None:
        return _unsupported(problem)

    def memory_bytes(self, problem: Problem, options: Mapping[str, Any]) -> int:
        s = problem.variables["P"].shape[1]
        k = problem.layout.K  # type: ignore[attr-defined]
        weights = 2 * (2 * s * 1000 + 1000) + 2 * (k * 100 + 100) + 2 * (2 * k * 1000 + 1000)
        return 4 * 8 * weights + super().memory_bytes(problem, options)

    def _start(self, problem: Problem, opts: Mapping[str, Any], ctx: RunContext) -> "_Start":
        """One run's initial point, networks, optimisers and increment scales, drawn from ``ctx`` (the same
        draws batched or not)."""
        import torch

        from ..common import autodiff

        if opts["init"] not in problem.init_methods:
            raise ValueError(f"init: {opts['init']!r} is not one of {', '.join(problem.init_methods)}")
        prob: Any = problem
        device = autodiff.device_for(ctx, opts["device"])
        real = autodiff.PRECISIONS[opts["dtype"]][0]
        gen = autodiff.torch_generator(ctx)
        x0 = autodiff.to_torch(problem, problem.project(ctx.initial(problem, opts["init"])), device,
                               precision=opts["dtype"])
        s = x0["P"].shape[1]
        k = prob.layout.K

        def mlp(n_in: int, hidden: int) -> torch.nn.Sequential:
            with torch.random.fork_rng(devices=[]):  # the run's seed, without touching the global generator
                torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
                return torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.ReLU(),
                                           torch.nn.Linear(hidden, n_in)).to(torch.float64).to(device, real)

        nets = {"P": mlp(2 * s, 1000)}
        lrs = {"P": opts["lr_p"]}
        if "c" in x0:
            nets["c"], lrs["c"] = mlp(k, 100), opts["lr_c"]
        if "r" in x0:
            nets["r"], lrs["r"] = mlp(2 * k, 1000), opts["lr_l"]
        return _Start(x0, nets, lrs, {n: _rms(x0[n]) for n in nets})

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        import torch

        opts = self.resolve_options(options)
        st = self._start(problem, opts, ctx)
        x0, nets, scale = st.x0, st.nets, st.scale
        optims = {n: torch.optim.Adam(net.parameters(), lr=st.lrs[n]) for n, net in nets.items()}

        def update(name: str, cur: dict[str, torch.Tensor]) -> torch.Tensor:
            """One network step for ``name`` from its initial value with the latest other variables."""
            start = {n: (x0[n] if n == name else v).detach().clone() for n, v in cur.items()}
            start[name].requires_grad_(True)
            (g,) = torch.autograd.grad(_train_loss(problem, start, opts), [start[name]])
            new = _increment(problem, name, x0, nets[name], g, scale[name], opts)
            optims[name].zero_grad(set_to_none=True)
            _train_loss(problem, dict(cur, **{name: new}), opts).backward()
            optims[name].step()
            return new.detach()

        cur = {n: v.detach().clone() for n, v in x0.items()}
        order = [n for n in ("c", "P", "r") if n in nets]
        best = _judge(problem, _scored(problem, _numpy(cur)))
        ctx.checkpoint(best[2], 0)
        history = []
        it = 0
        for it in range(1, opts["iters"] + 1):
            if ctx.expired():
                it -= 1
                break
            for name in order:
                cur[name] = update(name, cur)
            cand = _judge(problem, _scored(problem, _numpy(cur)))
            history.append(cand[1])
            if _better(cand, best):
                best = cand
            ctx.checkpoint(best[2], it)
        return _finish(ctx, best, it, history)

    # -- the batched path ----------------------------------------------------------------------------------
    batched = True

    def solve_batch(self, problems: Sequence[Problem], options: Mapping[str, Any],
                    ctxs: Sequence[RunContext]) -> list[Solution]:
        """Every realisation's :meth:`solve` as one computation (same seeds, same results; realisations of
        other shapes or variables in separate groups): each variable's update takes one ``autograd.grad`` and
        one backward pass over the stack of realisations and one Adam step over all their networks. The loss
        (the field-response channel and the rates), the networks and the projections stay per realisation:
        every realisation has its own channel draw and weights, so there is no product to share, and the
        stacked forms of these steps would round differently; the point's scoring (``_judge``) is NumPy per
        realisation as unbatched. The realisations share one clock (the batch stops when any ``ctx``'s
        seconds budget is spent)."""
        from ..common.gradient_loop import solve_grouped

        opts = self.resolve_options(options)
        return solve_grouped(list(problems), list(ctxs), lambda ps, cs: self._solve_batch(ps, opts, cs))

    def _solve_batch(self, problems: list[Problem], opts: Mapping[str, Any],
                     ctxs: list[RunContext]) -> list[Solution]:
        import torch

        from ...linalg import stack_rows

        sts = [self._start(p, opts, c) for p, c in zip(problems, ctxs)]
        n = len(sts)
        names = list(sts[0].nets)
        x0 = {v: stack_rows([st.x0[v] for st in sts]) for v in sts[0].x0}
        optims = {v: torch.optim.Adam([p for st in sts for p in st.nets[v].parameters()], lr=sts[0].lrs[v])
                  for v in names}

        def losses(x: Mapping[str, torch.Tensor]) -> torch.Tensor:
            rows = {v: t.unbind(0) for v, t in x.items()}
            return torch.stack([_train_loss(p, {v: rows[v][b] for v in x}, opts) for b, p in enumerate(problems)])

        def update(name: str, cur: dict[str, torch.Tensor]) -> torch.Tensor:
            start = {v: (x0[v] if v == name else t).detach().clone() for v, t in cur.items()}
            start[name].requires_grad_(True)
            (g,) = torch.autograd.grad(losses(start).sum(), [start[name]])
            x0_rows = [{v: t[b] for v, t in x0.items()} for b in range(n)]
            new = stack_rows([_increment(p, name, xb, st.nets[name], gb, st.scale[name], opts)
                              for p, xb, st, gb in zip(problems, x0_rows, sts, g.unbind(0))])
            optims[name].zero_grad(set_to_none=True)
            losses(dict(cur, **{name: new})).sum().backward()
            optims[name].step()
            return new.detach()

        budgeted = [c for c in ctxs if c.budget_seconds is not None]
        cur = {v: t.detach().clone() for v, t in x0.items()}
        order = [v for v in ("c", "P", "r") if v in names]
        best = [_judge(p, _scored(p, _numpy({v: t[b] for v, t in cur.items()}))) for b, p in enumerate(problems)]
        for c, bb in zip(ctxs, best):
            c.checkpoint(bb[2], 0)
        history: list[list[float]] = [[] for _ in range(n)]
        it = 0
        for it in range(1, opts["iters"] + 1):
            if any(c.expired() for c in budgeted):
                it -= 1
                break
            for name in order:
                cur[name] = update(name, cur)
            for b, p in enumerate(problems):
                cand = _judge(p, _scored(p, _numpy({v: t[b] for v, t in cur.items()})))
                history[b].append(cand[1])
                if _better(cand, best[b]):
                    best[b] = cand
                ctxs[b].checkpoint(best[b][2], it)
        sols = [_finish(c, bb, it, h) for c, bb, h in zip(ctxs, best, history)]
        for sol in sols:
            sol.info["batch"] = n
        return sols


@dataclass
class _Start:
    x0: dict[str, Any]
    nets: dict[str, Any]
    lrs: dict[str, float]
    scale: dict[str, float]


def _train_loss(problem: Any, x: Mapping[str, Any], opts: Mapping[str, Any]) -> Any:
    """The training loss: ``-sum_k (c_k + R_pk)`` plus ``penalty`` times the hinge surrogates (module docstring)."""
    mu = float(opts["penalty"])
    r_c, r_p = problem.rate_parts_torch(x)
    if "c" not in x:
        return -r_p.sum() + mu * (problem.r_th - r_p).clamp(min=0.0).sum()
    c = x["c"]
    hinge = ((problem.r_th - c - r_p).clamp(min=0.0).sum() + (c.sum() - r_c).clamp(min=0.0).sum()
             + (-c).clamp(min=0.0).sum())
    return -(c.sum() + r_p.sum()) + mu * hinge


def _features(g: Any, opts: Mapping[str, Any]) -> Any:
    if opts["input_norm"] == "raw":
        return g
    import torch

    # the floor only guards an all-zero gradient; 1e-300 would round to 0 in float32 (and give 0/0)
    floor = 1e-300 if g.dtype == torch.float64 else float(torch.finfo(g.dtype).tiny)
    return g / max(float(g.detach().square().mean().sqrt()), floor)


def _increment(problem: Problem, name: str, x0: Mapping[str, Any], net: Any, g: Any, scale: float,
               opts: Mapping[str, Any]) -> Any:
    """The network's new value of ``name``: its initial value plus the scaled increment, projected."""
    import torch

    if name == "P":
        s = x0["P"].shape[1]
        inc = net(_features(torch.cat([g.real, g.imag], dim=1), opts))
        return problem.variables["P"].constraint.project_torch(
            x0["P"] + torch.complex(inc[:, :s], inc[:, s:]) * scale)
    if name == "c":
        return x0["c"] + net(_features(g, opts)) * scale
    inc = net(_features(g.reshape(-1), opts)).reshape(-1, 2)
    return problem.variables["r"].constraint.project_torch(x0["r"] + inc * scale)


def _finish(ctx: RunContext, best: tuple, it: int, history: list[float]) -> Solution:
    ctx.checkpoint(best[2], it, force=True)
    return Solution(x={n: np.array(v, copy=True) for n, v in best[2].items()}, iterations=it,
                    info={"feasible": best[0], "utility_per_iteration": history[:: max(1, len(history) // 50)]})


def _rms(t: Any) -> float:
    value = float(t.detach().abs().square().mean().sqrt()) if t.numel() else 0.0
    return value if value > 0 and math.isfinite(value) else 1.0


def _numpy(x: Mapping[str, Any]) -> Vars:
    """Host copies in float64 / complex128 (every precision is scored in float64)."""
    return {n: v.detach().cpu().numpy().astype(np.complex128 if v.is_complex() else np.float64)
            for n, v in x.items()}


def _scored(problem: Any, x: Vars) -> Vars:
    """The point as returned: sets projected, ``c`` clipped at 0 and scaled to ``min_k R_ck``."""
    x = problem.project(x)
    if "c" in x:
        r_c, _ = problem.rate_parts(x)
        c = np.maximum(x["c"], 0.0)
        total, cap = float(c.sum()), float(np.min(r_c))
        x["c"] = c * (cap / total) if total > cap else c
    return x


def _judge(problem: Problem, x: Vars) -> tuple[bool, float, Vars, float]:
    feas = problem.feasibility(x)
    u = float(problem.utility(x))
    rel = max((v / max(feas.tolerances[n], 1e-300) for n, v in feas.violations.items()), default=0.0)
    return bool(feas.feasible), u if math.isfinite(u) else -math.inf, x, rel


def _better(a: tuple, b: tuple) -> bool:
    """Feasible first (the paper's indicators), then utility; among infeasible, the smaller violation."""
    if a[0] != b[0]:
        return a[0]
    return a[1] > b[1] if a[0] else a[3] < b[3]


@hookimpl
def wbench_register_solvers(register) -> None:
    register(Gml())
