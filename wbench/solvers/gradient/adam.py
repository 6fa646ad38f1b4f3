"""``adam``: projected Adam directly on the variables, generic over every scenario.

The ablation of ``metaopt`` (seed 000, Algorithms 1 and 3): the same meta-loss
``L(X) = loss_torch(X) + penalty * sum(set penalties of unprojected variables)`` (seed 000, eqs. (32)-(33)),
the same initial point, the same projection ``Omega`` (eq. (11) for the power ball) and the same budget,
but no network: Adam (Kingma & Ba 2015, ``torch.optim.Adam``; complex tensors are handled by torch as
pairs of reals) updates the variables themselves,

    X_{t+1} = Omega(X_t - Adam step of grad L(X_t)),

and the best iterate by meta-loss is kept (as the meta-learner does).

The projection enters the loss as in ``metaopt``: Adam moves a free point ``z`` and the iterate is
``X = Omega(z)``, with ``L(Omega(z))`` differentiated through ``Omega`` (which also applies the problem's
joint constraints, e.g. rescales a hybrid precoder's digital part, when that variable is projected; the
scenario's own constraints are penalised, see :mod:`wbench.solvers.common.gradient_loop`). Projecting after an Adam step
and differentiating ``L`` at the projected point instead stalls short of stationary points (Adam's
per-coordinate scaling turns the radial gradient at the power-ball boundary into a tangential drift that
the projection does not undo): measured on single-user ``miso``, 1e-3 relative error instead of 1e-14.

Learning rate: ``lr`` is *relative*. Each variable gets ``lr * rms(X0)`` where ``rms(X0)`` is the RMS entry
magnitude of its initial point, because an Adam step moves every entry by about the learning rate
whatever the gradient's scale; a relative rate makes the same default work for a precoder at 0 dB and at
30 dB, or in watts for a RIS link with -80 dBm noise. Defaults ``lr = 3e-2`` and ``iters = 300`` (the
same budget as ``metaopt``): on ``miso`` 4x4 the best iterate stops improving within 300 iterations, and
``lr = 1e-2`` / ``1e-1`` were no better.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ...hookspecs import hookimpl
from ...params import Param
from ...problem import Problem
from ...solver import RunContext, Solution, Solver
from ..common import gradient_loop as gl

if TYPE_CHECKING:  # torch is imported inside solve
    import torch


class Adam(Solver):
    """Projected Adam on the variables, best iterate by meta-loss."""

    name = "adam"
    version = "1"
    description = "projected Adam on the variables (ablation of metaopt: same loss, budget, projection)"
    tags = frozenset({"conventional"})
    scenarios = None
    uses_torch = True
    gpu = True
    multi_start = True
    options = {
        **gl.loop_options(300, "Adam iterations"),
        "lr": Param(3e-2, "learning rate relative to the RMS entry of each variable's initial point",
                    min=0.0),
    }
    budget_options = ("iters",)

    def supports_problem(self, problem: Problem) -> bool:
        return gl.declines(problem, self.resolve_options({})) is None

    def declines(self, problem: Problem, options: Mapping[str, Any]) -> str | None:
        return gl.declines(problem, self.resolve_options(options))

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        opts = self.resolve_options(options)
        return gl.solve_staged(problem, opts, lambda prob, o, stage: self._solve(prob, o, ctx, stage))

    def _solve(self, problem: Problem, opts: Mapping[str, Any], ctx: RunContext, stage: gl.Stage) -> Solution:
        import torch

        setup = gl.prepare(problem, opts, ctx, stage)
        z = {k: v.clone().requires_grad_(True) for k, v in setup.x0.items()}
        lrs = {k: opts["lr"] * gl.rms(v) for k, v in setup.x0.items()}
        opt = gl.make_adam([{"params": [z[k]], "lr": lrs[k]} for k in z])

        def iterate() -> dict[str, torch.Tensor]:
            return setup.joint({k: setup.omega(k, v) for k, v in z.items()})

        # The loss of the current iterate is computed once and reused: its value is the meta-loss of the
        # point the previous update produced, its backward drives the next update.
        state = {"x": iterate()}
        state["loss"] = setup.loss(state["x"])

        def step() -> tuple[Mapping[str, torch.Tensor], torch.Tensor]:
            opt.zero_grad(set_to_none=True)
            state["loss"].backward()
            _repair_gradients(setup, z, state["x"])
            opt.step()
            state["x"] = iterate()
            state["loss"] = setup.loss(state["x"])
            return state["x"], state["loss"].detach()

        return gl.run(setup, ctx, step, opts["iters"], opts["final_project"], {"lr": lrs})

    # -- the batched path (see gradient_loop's batched section) -----------------------------------------
    batched = True

    def solve_batch(self, problems: Sequence[Problem], options: Mapping[str, Any],
                    ctxs: Sequence[RunContext]) -> list[Solution]:
        """Every realisation's :meth:`solve` as one computation: the variables of all realisations are
        stacked for the loss and the projections; each realisation keeps its own Adam state and relative
        learning rate (one parameter group each), so every update is the unbatched one."""
        opts = self.resolve_options(options)

        def group(probs: list[Problem], cs: list[RunContext]) -> list[Solution]:
            return gl.solve_staged_batch(probs, opts, lambda ps, o, stages: self._solve_batch(ps, o, cs, stages))

        return gl.solve_grouped(list(problems), list(ctxs), group)

    def _solve_batch(self, problems: list[Problem], opts: Mapping[str, Any], ctxs: list[RunContext],
                     stages: list[gl.Stage]) -> list[Solution]:
        import torch

        bs = gl.prepare_batch(problems, opts, ctxs, stages)
        z = [{k: v.clone().requires_grad_(True) for k, v in s.x0.items()} for s in bs.setups]
        lrs = [{k: opts["lr"] * gl.rms(v) for k, v in s.x0.items()} for s in bs.setups]
        opt = gl.make_adam([{"params": [zb[k]], "lr": lb[k]} for zb, lb in zip(z, lrs) for k in zb])
        names = list(bs.first.x0)

        def iterate() -> dict[str, torch.Tensor]:
            return bs.joint({k: bs.omega(k, gl.stack_rows([zb[k] for zb in z])) for k in names})

        state = {"x": iterate()}
        state["loss"] = bs.loss(state["x"])

        def step() -> tuple[Mapping[str, torch.Tensor], torch.Tensor]:
            opt.zero_grad(set_to_none=True)
            bs.objective(state["loss"]).backward()
            for b, (setup, zb) in enumerate(zip(bs.setups, z)):
                if bool(bs.active[b]):
                    _repair_gradients(setup, zb, {k: v[b] for k, v in state["x"].items()})
            opt.step()
            state["x"] = iterate()
            state["loss"] = bs.loss(state["x"])
            return state["x"], state["loss"].detach()

        return gl.run_batch(bs, ctxs, step, opts["iters"], opts["final_project"], [{"lr": lb} for lb in lrs])


def _repair_gradients(setup: gl.Setup, z: Mapping[str, "torch.Tensor"],
                      x: Mapping[str, "torch.Tensor"]) -> None:
    """Use the gradient at ``X`` itself where the one through ``Omega`` is not finite.

    Torch differentiates the polar projection through an SVD whose derivative is undefined at repeated
    singular values, i.e. at an exactly unitary ``z`` (the usual initial points). One step along the
    plain gradient moves ``z`` off the set, after which the derivative through ``Omega`` is finite again.
    """
    import torch

    bad = [k for k, v in z.items() if v.grad is not None and not bool(torch.isfinite(v.grad).all())]
    if not bad:
        return
    at = {k: v.detach().requires_grad_(k in bad) for k, v in x.items()}
    grads = torch.autograd.grad(setup.loss(at), [at[k] for k in bad], allow_unused=True)
    for k, g in zip(bad, grads):
        z[k].grad = torch.zeros_like(z[k]) if g is None else g


@hookimpl
def wbench_register_solvers(register) -> None:
    register(Adam())
