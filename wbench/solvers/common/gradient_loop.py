"""The iteration skeleton shared by the generic gradient solvers ``adam`` and ``metaopt``.

Both solvers minimise the same meta-loss (seed 000, eq. (32)): the scenario's differentiable loss
(``Problem.loss_torch``, the negative utility plus the scenario's own penalties) plus
``penalty * sum(set penalties)`` over the variables that are *not* projected (seed 000, eq. (33) for the
unitary set; :meth:`wbench.problem.ConstraintSet.penalty_torch` in general). Projected variables go
through ``Omega``, the projection onto their constraint set (seed 000, eq. (11) for the power ball).

What this module owns, so that neither solver repeats it:

* the options both share (``iters``, ``init``, ``project``, ``penalty``, ``constraint_penalty``,
  ``final_project``, ``warm``, ``warm_iters``) and their resolution against a concrete problem
  (:func:`prepare`); ``project`` accepts variable names and roles (``project=precoder``);
* the new constraint kinds: a joint constraint (:class:`~wbench.problem.JointConstraint`, e.g. the hybrid
  precoder's power) is applied after the variable sets when the variable it rescales is projected, and
  penalised (``penalty``) otherwise; the scenario's own constraints enter through
  :meth:`~wbench.problem.Problem.penalised_loss_torch` with weight ``constraint_penalty`` (default the
  problem's :attr:`~wbench.problem.Problem.constraint_penalty`); :func:`declines` says when a problem
  cannot be run (a projected set without a torch projection, constraints without a torch form);
* the warm-start stage (:func:`solve_staged`): with ``warm=NAME`` and a problem whose
  :meth:`~wbench.problem.Problem.warm_start` offers that stage (``diagonal`` for a BD-RIS), the solver
  first runs ``warm_iters`` iterations on the simpler problem, with every variable projected and the other
  options unchanged, then the main run from the embedded result (seed 000, section VI-B: the BD-RIS
  meta-learner starts from the diagonal-RIS meta solution of 1000 iterations). The trace numbers both
  stages' iterations consecutively, scored on the original problem; a problem without that stage
  (a diagonal RIS, ``miso``) runs the main stage only;
* the loop of Algorithm 1 / Algorithm 3 of seed 000 around a solver-specific ``step``: evaluate the new
  iterate's meta-loss, keep the best iterate by meta-loss (lines 7-9 of Algorithm 1, 9-12 of
  Algorithm 3), record the best-so-far point as a checkpoint every iteration, stop on the iteration budget,
  the seconds budget (``ctx.expired()``) or a non-finite loss (reported as ``info["stalled"]``: an early
  stop with iterations left), optionally project everything at the end
  (keeping the projected start instead if the projected best iterate is worse), and return a
  :class:`~wbench.solver.Solution` (:func:`run`).

The best iterate starts as the initial point ``X0`` with ``L(X0)`` (line 2 of Algorithm 1), so a solver
never returns anything worse, by meta-loss, than where it started.

The batched path (:func:`solve_staged_batch`, :func:`run_batch`; a solver's ``solve_batch``) runs the
realisations of one configuration as one computation: every realisation's own :class:`Setup` (from its own
``ctx``: same start, same generator draws), its variables stacked along a leading dimension, the meta-loss a
vector (:meth:`~wbench.problem.Problem.penalised_loss_torch_batch`, the sets' ``project_torch_batch`` /
``penalty_torch_batch``) whose sum is differentiated once, the best iterate, checkpoints, stops and final
projection kept per realisation. On the CPU it reproduces the unbatched rounding (matrix products per
realisation, rows in the unbatched memory layout), because Adam next to a projection's kink amplifies
rounding differences into different iterates; seconds budgets are shared, see :func:`run_batch`.

Torch is imported only inside the functions: importing this module stays light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from ...linalg import stack_rows
from ...params import Param
from ...problem import Problem, Vars
from ...solver import RunContext, Solution, check_device

if TYPE_CHECKING:
    import torch

TorchVars = dict[str, "torch.Tensor"]
#: One iteration of a solver: update its parameters and return the new iterate and its meta-loss
#: (the loss value may carry a graph; only its value is read here).
Step = Callable[[], tuple[Mapping[str, "torch.Tensor"], "torch.Tensor"]]

#: Default weight of the set penalties of unprojected variables (see :func:`loop_options`).
DEFAULT_PENALTY = 10.0


def check_weight(text: str | None) -> str | None:
    """A non-negative finite number (or none)."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return f"cannot read {text!r} as a number"
    return None if math.isfinite(value) and value >= 0 else "must be a non-negative number"


def weight_option(value: Any) -> float | None:
    return None if value is None else float(value)


def _check_project(text: str | None) -> str | None:
    if text is None or text.strip().lower() in ("all", "none"):
        return None
    names = [n.strip() for n in text.split(";")]
    if any(not n for n in names):
        return "expected 'all', 'none' or variable names separated by ';'"
    return None


def loop_options(iters: int, iters_help: str) -> dict[str, Param]:
    """The options shared by the gradient solvers (each solver adds its own)."""
    return {
        "iters": Param(iters, iters_help, min=0),
        "init": Param(
            None,
            "initial point by name (default: the scenario's first initialiser, e.g. mrt for miso)",
            nullable=True,
        ),
        "project": Param(
            "all",
            "variables projected onto their sets after every update: 'all', 'none' or names or roles "
            "(e.g. precoder) separated by ';' (the others are penalised)",
            check=_check_project,
            nullable=True,
        ),
        "penalty": Param(
            DEFAULT_PENALTY,
            "weight of the set penalty (e.g. ||X^H X - I||_F^2, seed 000 eq. (33)) of unprojected variables",
            min=0.0,
        ),
        "constraint_penalty": Param(
            None,
            "weight of sum relu(-c)^2 over the scenario's constraints c >= 0 (default: the problem's own)",
            nullable=True, check=check_weight,
        ),
        "final_project": Param(False, "project every variable onto its set before returning"),
        "warm": Param("none", "none, or the name of a warm-start stage of the problem (e.g. diagonal: a "
                      "BD-RIS first solves the diagonal RIS on the same channel)", check=_check_warm),
        "warm_iters": Param(1000, "iterations of the warm-start stage", min=0),
        "device": Param(None, "torch device: cpu, cuda, auto (cuda when available, else cpu); default: the "
                        "run's --device", nullable=True, check=_check_device),
        "dtype": Param("float64", "torch precision of variables and networks (results are scored in float64)",
                       choices=("float64", "float32")),
    }


_check_device = check_device


def _check_warm(text: str) -> str | None:
    return None if str(text).strip() and str(text).strip() == str(text) else "expected a stage name or none"


def projected_names(problem: Problem, spec: str | None) -> tuple[str, ...]:
    """Variables named by the ``project`` option (``all``, ``none`` or names / roles ``a;b``), in problem
    order (a role stands for every variable that declares it)."""
    text = "none" if spec is None else spec.strip()
    if text.lower() == "all":
        return tuple(problem.variables)
    if text.lower() == "none":
        return ()
    names: set[str] = set()
    for token in (n.strip() for n in text.split(";") if n.strip()):
        try:
            names.update(problem.resolve_names(token))
        except ValueError as exc:
            raise ValueError(f"project: {exc}") from None
    return tuple(n for n in problem.variables if n in names)


def declines(problem: Problem, opts: Mapping[str, Any]) -> str | None:
    """Why a gradient solver with these options cannot run on ``problem`` (``None``: it can)."""
    from ...problem import ConstraintSet

    try:
        projected = projected_names(problem, opts.get("project", "all"))
    except ValueError as exc:
        return str(exc)
    for name in projected:
        c = problem.variables[name].constraint
        if type(c).project_torch is ConstraintSet.project_torch:
            return f"{name}: {c.describe()} has no torch projection"
    if problem.has_constraints and not problem.has_constraints_torch:
        probe = problem.random_feasible(np.random.default_rng(0))
        if problem.constraints(probe):
            return "the scenario's constraints have no torch form (constraints_torch) to penalise"
    return None


def rms(t: "torch.Tensor") -> float:
    """Root-mean-square entry magnitude (a variable's natural scale), 1.0 for an all-zero tensor."""
    value = float(t.detach().abs().square().mean().sqrt()) if t.numel() else 0.0
    return value if value > 0 and math.isfinite(value) else 1.0


def make_adam(groups: list[dict[str, Any]]) -> "torch.optim.Adam":
    """``torch.optim.Adam`` over parameter groups, the fused kernel where torch has one (real tensors).

    The fused kernel is the same update (to rounding) several times faster on the CPU for the
    networks of ``metaopt``; complex parameters (``adam`` on complex variables) use the default path.
    """
    import torch

    params = [p for g in groups for p in g["params"]]
    if all(not p.is_complex() for p in params):
        try:
            return torch.optim.Adam(groups, fused=True)
        except (RuntimeError, ValueError):  # no fused kernel for this device or dtype
            pass
    return torch.optim.Adam(groups)


@dataclass
class Stage:
    """Where one run of the loop sits in a staged solve (:func:`solve_staged`)."""

    x0: Vars | None = None  # start here instead of at ``opts["init"]``
    it0: int = 0  # iterations done by earlier stages (the trace numbering continues from here)
    embed: Callable[[Vars], Vars] | None = None  # this stage's points -> the original problem's


@dataclass
class Setup:
    """A resolved run: device, initial point, which variables are projected, and the meta-loss."""

    problem: Problem
    device: Any
    x0: TorchVars
    projected: tuple[str, ...]
    penalised: tuple[str, ...]
    penalty: float
    info: dict[str, Any] = field(default_factory=dict)
    stage: Stage = field(default_factory=Stage)
    #: Joint constraints applied after the sets (their rescaled variable is projected) / penalised.
    joint_projected: tuple[Any, ...] = ()
    joint_penalised: tuple[Any, ...] = ()
    #: Weight of the scenario-constraint penalty (``None``: the problem's default).
    constraint_penalty: float | None = None

    def loss(self, x: Mapping[str, "torch.Tensor"]) -> "torch.Tensor":
        """The meta-loss: ``penalised_loss_torch(x)`` (scenario constraints) ``+ penalty *`` the set
        penalties of unprojected variables and of the joint constraints not applied."""
        from . import autodiff

        return autodiff.penalised_loss(self.problem, x, self.penalised, self.penalty, self.joint_penalised,
                                       self.constraint_penalty)

    def omega(self, name: str, value: "torch.Tensor") -> "torch.Tensor":
        """``Omega``: projection onto the set for projected variables, identity for the others."""
        if name in self.projected:
            return self.problem.variables[name].constraint.project_torch(value)
        return value

    def joint(self, x: dict[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
        """The joint constraints whose rescaled variable is projected, applied after ``omega``."""
        for j in self.joint_projected:
            x = j.project_torch(x)
        return x


def prepare(problem: Problem, opts: Mapping[str, Any], ctx: RunContext, stage: Stage | None = None) -> Setup:
    """Resolve the shared options on ``problem``: the initial point (``ctx.initial``: drawn from ``ctx.rng``
    if random, or a random start of ``starts=N``), or ``stage.x0``."""
    from . import autodiff

    stage = stage or Stage()
    device = autodiff.device_for(ctx, opts.get("device"))
    projected = projected_names(problem, opts["project"])
    x0_np = ctx.initial(problem, opts["init"]) if stage.x0 is None else stage.x0
    x0 = autodiff.to_torch(problem, x0_np, device, precision=opts.get("dtype", "float64"))
    penalised = tuple(n for n in problem.variables if n not in projected)
    joint_projected = tuple(j for j in problem.joint if j.rescaled in projected)
    joint_penalised = tuple(j for j in problem.joint if j.rescaled not in projected)
    return Setup(problem, device, x0, projected, penalised, float(opts["penalty"]), stage=stage,
                 joint_projected=joint_projected, joint_penalised=joint_penalised,
                 constraint_penalty=weight_option(opts.get("constraint_penalty")))


#: One stage of a solver: ``(problem, options, stage) -> Solution`` (see :func:`solve_staged`).
StageSolver = Callable[[Problem, Mapping[str, Any], Stage], Solution]


def solve_staged(problem: Problem, opts: Mapping[str, Any], solve_stage: StageSolver) -> Solution:
    """Run ``solve_stage`` with the warm-start stage first when ``opts["warm"]`` names one of the problem's
    (see the module docstring). A name the problem offers no stage for is an error unless the problem has
    no warm start at all (then ``info["warm"]`` says it did not apply)."""
    name = str(opts["warm"])
    if name == "none":
        return solve_stage(problem, opts, Stage())
    warm = problem.warm_start()
    if warm is None:
        sol = solve_stage(problem, opts, Stage())
        sol.info["warm"] = f"{name}: not applicable to this problem"
        return sol
    if warm.name != name:
        raise ValueError(f"warm: this problem's warm-start stage is {warm.name!r}, not {name!r}")
    first_opts = dict(opts, iters=opts["warm_iters"], project="all", final_project=True)
    first = solve_stage(warm.problem, first_opts, Stage(embed=warm.embed))
    sol = solve_stage(problem, opts, Stage(x0=warm.embed(first.x), it0=first.iterations))
    sol.iterations += first.iterations
    sol.info["warm"] = {"stage": warm.name, "iterations": first.iterations,
                        "utility": warm.problem.utility(first.x),
                        "best_loss": first.info.get("best_loss"), "stopped": first.info.get("stopped")}
    return sol


def run(setup: Setup, ctx: RunContext, step: Step, iters: int, final_project: bool,
        info: Mapping[str, Any] | None = None) -> Solution:
    """Run ``step`` up to ``iters`` times, keeping the best iterate by meta-loss; see the module docstring.

    Checkpoint ``t`` holds the best point among ``X0`` and the first ``t`` iterates; the last checkpoint
    (forced) is the returned point, after the final projection when ``final_project`` is set.
    """
    import torch

    from . import autodiff

    it0, embed = setup.stage.it0, setup.stage.embed

    def record(x: Mapping[str, "torch.Tensor"], it: int, force: bool = False) -> None:
        if force or ctx.wants(it0 + it):
            ctx.checkpoint(embed(autodiff.to_numpy(x)) if embed else x, it0 + it, force)

    with torch.no_grad():
        best_loss = float(setup.loss(setup.x0))
    best_x: dict[str, torch.Tensor] = {k: v.detach().clone() for k, v in setup.x0.items()}
    best_it = 0
    loss0 = best_loss
    if it0 == 0:  # a later stage's start is the previous stage's (already recorded) result
        record(best_x, 0)
    it, stopped = 0, "iters"
    while it < iters:
        if ctx.expired():
            stopped = "time"
            break
        x, loss = step()
        it += 1
        value = float(loss)
        if not math.isfinite(value):
            stopped = "nonfinite"
            break
        if value < best_loss:
            best_loss, best_it = value, it
            best_x = {k: v.detach().clone() for k, v in x.items()}
        record(best_x, it)

    out = best_x
    kept_start = False
    if final_project:
        # Projecting a penalised iterate can cost utility; never return worse than the projected start
        # (a warm-started stage then never ends below the stage it started from).
        with torch.no_grad():
            out = autodiff.project(setup.problem, best_x)
            start = autodiff.project(setup.problem, setup.x0)
            if float(setup.loss(start)) < float(setup.loss(out)):
                out, kept_start = start, True
    if ctx.checkpoints and ctx.checkpoints[-1][1] == it0 + it:
        ctx.checkpoints.pop()  # replaced by the forced checkpoint of the returned point
    record(out, it, force=True)
    details = {
        "loss0": loss0,
        "best_loss": best_loss,
        "best_iteration": best_it,
        "stopped": stopped,
        # a non-finite loss ends the run with iterations left: an early stop, reported (wbench.starts)
        "stalled": stopped == "nonfinite",
        "projected": list(setup.projected),
        "penalised": list(setup.penalised),
        "final_project": bool(final_project),
        "final_project_kept_start": kept_start,
    }
    details.update(setup.info)
    details.update(info or {})
    return Solution(x=autodiff.to_numpy(out), iterations=it, info=details)


# -- the batched path: a stack of realisations of one configuration as one computation -------------------
#
# ``solve_batch`` of a gradient solver runs every realisation's own run (its Setup from its own ctx: the
# same initial point, generator draws and options as ``solve``) with the per-realisation tensors stacked
# along a leading dimension: the meta-loss is a vector (``Problem.penalised_loss_torch_batch`` and the sets'
# ``*_torch_batch`` forms) whose sum is differentiated once; the realisations share no parameter, so each
# one's gradient is the one its own run would see. Bookkeeping (best iterate, checkpoints, stops, the final
# projection) is per realisation, exactly as in :func:`run`.


def batch_key(problem: Problem) -> tuple[Any, ...]:
    """Realisations with equal keys can be stacked: same problem class, variables (shapes, sets) and joint
    constraints, and the same warm-start structure."""
    warm = problem.warm_start()
    variables = tuple((n, tuple(v.shape), v.complex, v.constraint) for n, v in problem.variables.items())
    return (type(problem), variables, problem.joint, problem.has_constraints_torch,
            None if warm is None else (warm.name, batch_key(warm.problem)))


def solve_grouped(problems: list[Problem], ctxs: list[RunContext],
                  solve_group: Callable[[list[Problem], list[RunContext]], list[Solution]]) -> list[Solution]:
    """Run ``solve_group`` on each set of stackable realisations (:func:`batch_key`), results in input order."""
    if len(problems) != len(ctxs):
        raise ValueError("solve_batch needs one RunContext per problem")
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, p in enumerate(problems):
        key = batch_key(p)
        try:
            hash(key)
        except TypeError:  # a plugin's unhashable constraint: that realisation runs in a group of its own
            key = ("alone", i)
        groups.setdefault(key, []).append(i)
    out: list[Solution | None] = [None] * len(problems)
    for idx in groups.values():
        for i, sol in zip(idx, solve_group([problems[i] for i in idx], [ctxs[i] for i in idx])):
            out[i] = sol
    return out  # type: ignore[return-value]


@dataclass
class BatchSetup:
    """The per-realisation :class:`Setup` s of one stackable group, and the meta-loss on stacked tensors."""

    setups: list[Setup]
    #: Realisations still iterating (a non-finite loss stops one; its entries are then ignored).
    active: Any = None

    def __post_init__(self) -> None:
        import torch

        first = self.setups[0]
        for s in self.setups[1:]:
            if (s.projected, s.penalised, s.penalty, s.constraint_penalty) != (
                    first.projected, first.penalised, first.penalty, first.constraint_penalty):
                raise ValueError("a batch of realisations with different projected/penalised variables")
        self.active = torch.ones(len(self.setups), dtype=torch.bool, device=first.device)

    @property
    def first(self) -> Setup:
        return self.setups[0]

    @property
    def problems(self) -> list[Problem]:
        return [s.problem for s in self.setups]

    @property
    def x0(self) -> TorchVars:
        return {k: stack_rows([s.x0[k] for s in self.setups]) for k in self.first.x0}

    def loss(self, x: Mapping[str, "torch.Tensor"]) -> "torch.Tensor":
        """The meta-loss of every realisation (a vector), the terms in :meth:`Setup.loss`'s order."""
        import torch

        problems, first = self.problems, self.first
        loss = type(problems[0]).penalised_loss_torch_batch(problems, x, first.constraint_penalty)
        for name in first.penalised:
            loss = loss + first.penalty * first.problem.variables[name].constraint.penalty_torch_batch(x[name])
        for j in first.joint_penalised:
            loss = loss + first.penalty * torch.stack([j.penalty_torch(_row(x, b)) for b in range(len(problems))])
        return loss

    def omega(self, name: str, value: "torch.Tensor") -> "torch.Tensor":
        """``Omega`` of every realisation; a stopped realisation's (ignored, possibly non-finite) rows are
        replaced by its start first, so that a batched factorisation never meets them."""
        import torch

        if name not in self.first.projected:
            return value
        if not bool(self.active.all()):
            start = stack_rows([s.x0[name] for s in self.setups])
            mask = self.active.reshape(-1, *([1] * (value.dim() - 1)))
            value = torch.where(mask, value, start)
        return self.first.problem.variables[name].constraint.project_torch_batch(value)

    def joint(self, x: dict[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
        import torch

        if not self.first.joint_projected:
            return x
        rows = [self.first.joint(_row(x, b)) for b in range(len(self.setups))]
        return {k: torch.stack([r[k] for r in rows]) for k in x}

    def objective(self, loss: "torch.Tensor") -> "torch.Tensor":
        """The scalar to differentiate: the sum of the active realisations' losses (a stopped one gets a
        zero gradient; no realisation's gradient depends on another's loss)."""
        import torch

        return torch.where(self.active, loss, torch.zeros_like(loss)).sum()


def _row(x: Mapping[str, "torch.Tensor"], b: int) -> dict[str, "torch.Tensor"]:
    return {k: v[b] for k, v in x.items()}


def prepare_batch(problems: list[Problem], opts: Mapping[str, Any], ctxs: list[RunContext],
                  stages: list[Stage]) -> BatchSetup:
    """:func:`prepare` for every realisation (in order, each drawing from its own ``ctx``)."""
    return BatchSetup([prepare(p, opts, c, s) for p, c, s in zip(problems, ctxs, stages)])


#: One stage of a batched solver: ``(problems, options, ctxs, stages) -> solutions``.
BatchStageSolver = Callable[[list[Problem], Mapping[str, Any], list[Stage]], list[Solution]]


def solve_staged_batch(problems: list[Problem], opts: Mapping[str, Any],
                       solve_stage: BatchStageSolver) -> list[Solution]:
    """:func:`solve_staged` for a stackable group (:func:`batch_key`: all or none have a warm stage)."""
    name = str(opts["warm"])
    n = len(problems)
    if name == "none":
        return solve_stage(problems, opts, [Stage() for _ in range(n)])
    warms = [p.warm_start() for p in problems]
    if warms[0] is None:
        sols = solve_stage(problems, opts, [Stage() for _ in range(n)])
        for sol in sols:
            sol.info["warm"] = f"{name}: not applicable to this problem"
        return sols
    if warms[0].name != name:
        raise ValueError(f"warm: this problem's warm-start stage is {warms[0].name!r}, not {name!r}")
    first_opts = dict(opts, iters=opts["warm_iters"], project="all", final_project=True)
    firsts = solve_stage([w.problem for w in warms], first_opts, [Stage(embed=w.embed) for w in warms])
    sols = solve_stage(problems, opts, [Stage(x0=w.embed(f.x), it0=f.iterations) for w, f in zip(warms, firsts)])
    for sol, first, warm in zip(sols, firsts, warms):
        sol.iterations += first.iterations
        sol.info["warm"] = {"stage": warm.name, "iterations": first.iterations,
                            "utility": warm.problem.utility(first.x),
                            "best_loss": first.info.get("best_loss"), "stopped": first.info.get("stopped")}
    return sols


#: One batched iteration: update every realisation and return the stacked iterate and its loss vector.
BatchStep = Callable[[], tuple[Mapping[str, "torch.Tensor"], "torch.Tensor"]]


def run_batch(bsetup: BatchSetup, ctxs: list[RunContext], step: BatchStep, iters: int, final_project: bool,
              infos: list[Mapping[str, Any]] | None = None) -> list[Solution]:
    """:func:`run` for a stack of realisations: the same per-realisation results (best iterate by
    meta-loss, checkpoints in each realisation's ``ctx``, stop on a non-finite loss per realisation).

    Seconds budget: the realisations share one clock (the harness gives each ``ctx`` its share times the
    batch size and starts them together), so the batch stops, for all of them, as soon as any ``ctx``
    says its budget is spent; iteration budgets are per realisation and equal to the unbatched ones.
    """
    import torch

    from . import autodiff

    setups, n = bsetup.setups, len(bsetup.setups)

    def record(b: int, x: Mapping[str, "torch.Tensor"], it: int, force: bool = False) -> None:
        stage = setups[b].stage
        if force or ctxs[b].wants(stage.it0 + it):
            ctxs[b].checkpoint(stage.embed(autodiff.to_numpy(x)) if stage.embed else x, stage.it0 + it, force)

    x0 = bsetup.x0
    with torch.no_grad():
        loss0 = [float(v) for v in bsetup.loss(x0)]
    best_loss = list(loss0)
    best_x = {k: v.detach().clone() for k, v in x0.items()}
    best_it = [0] * n
    for b in range(n):
        if setups[b].stage.it0 == 0:
            record(b, _row(best_x, b), 0)
    its = [0] * n
    stopped = ["iters"] * n
    active = [True] * n
    bsetup.active.fill_(True)
    budgeted = [c for c in ctxs if c.budget_seconds is not None]
    it = 0
    while it < iters and any(active):
        if any(c.expired() for c in budgeted):
            for b in range(n):
                if active[b]:
                    stopped[b], active[b] = "time", False
            break
        x, loss = step()
        it += 1
        values = loss.detach().cpu().tolist()
        improved = []
        for b in range(n):
            if not active[b]:
                continue
            its[b] = it
            if not math.isfinite(values[b]):
                stopped[b], active[b] = "nonfinite", False
                bsetup.active[b] = False
                continue
            if values[b] < best_loss[b]:
                best_loss[b], best_it[b] = values[b], it
                improved.append(b)
        if improved:
            idx = torch.tensor(improved, device=best_x[next(iter(best_x))].device)
            for k, v in x.items():
                best_x[k][idx] = v.detach()[idx]
        for b in range(n):
            if active[b]:
                record(b, _row(best_x, b), it)

    out = []
    for b, (setup, ctx) in enumerate(zip(setups, ctxs)):
        xb = _row(best_x, b)
        kept_start = False
        if final_project:
            with torch.no_grad():
                xb = autodiff.project(setup.problem, xb)
                start = autodiff.project(setup.problem, setup.x0)
                if float(setup.loss(start)) < float(setup.loss(xb)):
                    xb, kept_start = start, True
        it0 = setup.stage.it0
        if ctx.checkpoints and ctx.checkpoints[-1][1] == it0 + its[b]:
            ctx.checkpoints.pop()
        record(b, xb, its[b], force=True)
        details = {
            "loss0": loss0[b],
            "best_loss": best_loss[b],
            "best_iteration": best_it[b],
            "stopped": stopped[b],
            "stalled": stopped[b] == "nonfinite",
            "projected": list(setup.projected),
            "penalised": list(setup.penalised),
            "final_project": bool(final_project),
            "final_project_kept_start": kept_start,
            "batch": n,
        }
        details.update(setup.info)
        details.update((infos or [{}] * n)[b])
        out.append(Solution(x=autodiff.to_numpy(xb), iterations=its[b], info=details))
    return out
