"""The iteration skeleton shared by the generic gradient solvers ``adam`` and ``metaopt``.

Both solvers minimise the same meta-loss (seed 000, eq. (32)): the scenario's differentiable loss
(``Problem.loss_torch``, the negative utility plus the scenario's own penalties) plus
``penalty * sum(set penalties)`` over the variables that are *not* projected (seed 000, eq. (33) for the
unitary set; :meth:`wbench.problem.ConstraintSet.penalty_torch` in general). Projected variables go
through ``Omega``, the projection onto their constraint set (seed 000, eq. (11) for the power ball).

What this module owns, so that neither solver repeats it:

* the options both share (``iters``, ``init``, ``project``, ``penalty``, ``final_project``) and their
  resolution against a concrete problem (:func:`prepare`);
* the loop of Algorithm 1 / Algorithm 3 of seed 000 around a solver-specific ``step``: evaluate the new
  iterate's meta-loss, keep the best iterate by meta-loss (lines 7-9 of Algorithm 1, 9-12 of
  Algorithm 3), record the best-so-far point as a checkpoint every iteration, stop on the iteration budget,
  the seconds budget (``ctx.expired()``) or a non-finite loss, optionally project everything at the end,
  and return a :class:`~wbench.solver.Solution` (:func:`run`).

The best iterate starts as the initial point ``X0`` with ``L(X0)`` (line 2 of Algorithm 1), so a solver
never returns anything worse, by meta-loss, than where it started.

Torch is imported only inside the functions: importing this module stays light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..params import Param
from ..problem import Problem
from ..solver import RunContext, Solution

if TYPE_CHECKING:
    import torch

TorchVars = dict[str, "torch.Tensor"]
#: One iteration of a solver: update its parameters and return the new iterate and its meta-loss
#: (the loss value may carry a graph; only its value is read here).
Step = Callable[[], tuple[Mapping[str, "torch.Tensor"], "torch.Tensor"]]

#: Default weight of the set penalties of unprojected variables (see :func:`loop_options`).
DEFAULT_PENALTY = 10.0


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
            "variables projected onto their sets after every update: 'all', 'none' or names separated by ';' "
            "(the others are penalised)",
            check=_check_project,
            nullable=True,
        ),
        "penalty": Param(
            DEFAULT_PENALTY,
            "weight of the set penalty (e.g. ||X^H X - I||_F^2, seed 000 eq. (33)) of unprojected variables",
            min=0.0,
        ),
        "final_project": Param(False, "project every variable onto its set before returning"),
    }


def projected_names(problem: Problem, spec: str | None) -> tuple[str, ...]:
    """Variables named by the ``project`` option (``all``, ``none`` or ``a;b``), in problem order."""
    text = "none" if spec is None else spec.strip()
    if text.lower() == "all":
        return tuple(problem.variables)
    if text.lower() == "none":
        return ()
    names = [n.strip() for n in text.split(";") if n.strip()]
    unknown = sorted(set(names) - set(problem.variables))
    if unknown:
        raise ValueError(
            f"project: unknown variable(s) {', '.join(unknown)}; valid: {', '.join(problem.variables)}"
        )
    return tuple(n for n in problem.variables if n in names)


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
class Setup:
    """A resolved run: device, initial point, which variables are projected, and the meta-loss."""

    problem: Problem
    device: Any
    x0: TorchVars
    projected: tuple[str, ...]
    penalised: tuple[str, ...]
    penalty: float
    info: dict[str, Any] = field(default_factory=dict)

    def loss(self, x: Mapping[str, "torch.Tensor"]) -> "torch.Tensor":
        """The meta-loss: ``loss_torch(x) + penalty * sum of set penalties of unprojected variables``."""
        from . import autodiff

        return autodiff.penalised_loss(self.problem, x, self.penalised, self.penalty)

    def omega(self, name: str, value: "torch.Tensor") -> "torch.Tensor":
        """``Omega``: projection onto the set for projected variables, identity for the others."""
        if name in self.projected:
            return self.problem.variables[name].constraint.project_torch(value)
        return value


def prepare(problem: Problem, opts: Mapping[str, Any], ctx: RunContext) -> Setup:
    """Resolve the shared options on ``problem``: the initial point (drawn from ``ctx.rng`` if random)."""
    from . import autodiff

    device = autodiff.device_for(ctx)
    projected = projected_names(problem, opts["project"])
    x0_np = problem.initial(opts["init"], ctx.rng)
    x0 = autodiff.to_torch(problem, x0_np, device)
    penalised = tuple(n for n in problem.variables if n not in projected)
    return Setup(problem, device, x0, projected, penalised, float(opts["penalty"]))


def run(setup: Setup, ctx: RunContext, step: Step, iters: int, final_project: bool,
        info: Mapping[str, Any] | None = None) -> Solution:
    """Run ``step`` up to ``iters`` times, keeping the best iterate by meta-loss; see the module docstring.

    Checkpoint ``t`` holds the best point among ``X0`` and the first ``t`` iterates; the last checkpoint
    (forced) is the returned point, after the final projection when ``final_project`` is set.
    """
    import torch

    from . import autodiff

    with torch.no_grad():
        best_loss = float(setup.loss(setup.x0))
    best_x: dict[str, torch.Tensor] = {k: v.detach().clone() for k, v in setup.x0.items()}
    best_it = 0
    loss0 = best_loss
    ctx.checkpoint(best_x, 0)
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
        ctx.checkpoint(best_x, it)

    out = best_x
    if final_project:
        with torch.no_grad():
            out = autodiff.project(setup.problem, best_x)
    if ctx.checkpoints and ctx.checkpoints[-1][1] == it:
        ctx.checkpoints.pop()  # replaced by the forced checkpoint of the returned point
    ctx.checkpoint(out, it, force=True)
    details = {
        "loss0": loss0,
        "best_loss": best_loss,
        "best_iteration": best_it,
        "stopped": stopped,
        "projected": list(setup.projected),
        "penalised": list(setup.penalised),
        "final_project": bool(final_project),
    }
    details.update(setup.info)
    details.update(info or {})
    return Solution(x=autodiff.to_numpy(out), iterations=it, info=details)
