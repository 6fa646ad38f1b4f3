"""``metaopt``: the generalised meta-learning optimiser of seed 000 (Cerna Loli & Clerckx), generic.

Seed 000, Algorithm 1 (one variable) and Algorithm 3 (two variables), for any number of variables: one
small MLP ``G_i`` per variable ``X_i``, each fed a *fixed* input, the gradient of the meta-loss at the
initial point, ``grad_{X_i^0} L(X^0)`` (complex entries flattened as ``[Re, Im]``, seed 000 after eq. (9)),
and outputting an increment:

    X_i^{t+1} = Omega_i(X_i^0 + G_i(grad_{X_i^0} L(X^0)))                       (eqs. (9)-(11))
    theta_i^{t+1} = theta_i^t + beta_i Adam(grad_{theta_i} L(X^{t+1}))           (eq. (12))

``Omega_i`` is the projection onto the variable's set for projected variables (eq. (11) for the power
ball) and the identity for the others, which are penalised instead (eqs. (32)-(33)):
``L(X) = loss_torch(X) + penalty * sum(set penalties)``. One Adam step per network and iteration on the
meta-loss of the new iterate; the best iterate (lowest meta-loss, starting from ``L(X^0)``) is returned.
The loop itself is :mod:`wbench.solvers.common.gradient_loop`, shared with the ``adam`` ablation.

Defaults (seed 000, section IV-C): three hidden layers of 400 units with sigmoid, tanh, tanh
activations and a linear output layer, Adam with learning rate ``1e-3`` for every network (``lr_by_var``
sets per-variable rates, e.g. ``Phi:1e-4;P:1e-3`` as in section VI-C). Weights are drawn like
``torch.nn.Linear``'s default (uniform in ``+-1/sqrt(fan_in)``) from a generator seeded by ``ctx.rng``.

Choices the paper leaves open, with their defaults (the paper's own setting stays available):

* ``input_norm=rms`` divides the fixed input by its RMS entry. The raw gradient's scale depends on the
  scenario's units (``miso`` at 0 dB vs 30 dB, RIS links with -80 dBm noise), and sigmoid units
  saturate on a huge input or see a constant on a tiny one. ``input_norm=raw`` feeds the gradient as the
  paper does; ``input_norm=max`` divides by the largest entry.
* ``output_scale=init`` multiplies the network output by the RMS entry of ``X_i^0`` (1 if ``X_i^0`` is
  zero), so that the increments live on the variable's own scale: with a fixed Adam rate in weight space
  the distance the output can travel per step is fixed, and without this a precoder with entries of
  size 30 (30 dB) would need many more iterations than one with entries of size 1 (0 dB).
  ``output_scale=unit`` is the paper's unscaled output.
* ``iters=300`` (the paper runs 25 000 at ``B = 200``): on ``miso`` with ``Nt = K = 4`` the best iterate
  stops improving after 100-300 iterations (about 4 ms each on one CPU thread). From MRT (the default
  initial point, as in the paper) it converges to the local optimum of MRT's basin, the one single-start
  WMMSE from MRT finds: over 30 channels 99.7%, 97.6% and 94.7% of the mean WSR of 10-start WMMSE at
  10, 20 and 30 dB; from ``init=rzf`` 99.6%, 97.7% and 99.8%. More iterations do not change this.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ...hookspecs import hookimpl
from ...params import Param
from ...problem import Problem, UnitModulus
from ...solver import RunContext, Solution, Solver
from ..common import gradient_loop as gl

if TYPE_CHECKING:  # torch is imported inside solve
    import torch

ACTIVATIONS = ("sigmoid", "tanh", "relu", "elu", "gelu", "linear")


def parse_hidden(text: str) -> tuple[int, ...]:
    """``400x400x400`` -> ``(400, 400, 400)``; ``0`` or empty -> no hidden layer (a linear map)."""
    text = str(text).strip().lower()
    if text in ("", "0", "none"):
        return ()
    sizes = tuple(int(s) for s in text.split("x"))
    if any(s < 1 for s in sizes):
        raise ValueError(text)
    return sizes


def parse_activations(text: str) -> tuple[str, ...]:
    """``sigmoid-tanh-tanh`` -> ``("sigmoid", "tanh", "tanh")``."""
    text = str(text).strip().lower()
    if text in ("", "none"):
        return ()
    acts = tuple(a.strip() for a in text.split("-"))
    bad = [a for a in acts if a not in ACTIVATIONS]
    if bad:
        raise ValueError(f"unknown activation(s) {', '.join(bad)}; valid: {', '.join(ACTIVATIONS)}")
    return acts


def parse_lr_by_var(text: str) -> dict[str, float]:
    """``Phi:1e-4;P:1e-3`` -> ``{"Phi": 1e-4, "P": 1e-3}`` (keys are variable names or roles)."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in str(text).split(";")):
        if not part:
            continue
        name, sep, value = part.partition(":")
        lr = float(value)
        if not sep or not name.strip() or not (math.isfinite(lr) and lr >= 0):
            raise ValueError(part)
        out[name.strip()] = lr
    return out


def _lr_names(problem: Problem, by_key: Mapping[str, float]) -> dict[str, float]:
    """Per-variable rates from ``lr_by_var`` keys that are variable names or roles (a name wins)."""
    out: dict[str, float] = {}
    for key, lr in by_key.items():
        try:
            names = problem.resolve_names(key)
        except ValueError as exc:
            raise ValueError(f"lr_by_var: {exc}") from None
        for name in names:
            if key == name or name not in out:
                out[name] = lr
    return out


def _check(parser, what: str):
    def check(value: str) -> str | None:
        try:
            parser(value)
        except ValueError as exc:
            return f"cannot read {value!r} as {what} ({exc})"
        return None
    return check


class MetaOpt(Solver):
    """Seed 000's meta-learning optimiser: one MLP per variable, fixed gradient input, best iterate."""

    name = "metaopt"
    version = "1"
    description = "meta-learning optimiser of seed 000 (Alg. 1/3): an MLP per variable on a fixed gradient input"
    tags = frozenset({"meta"})
    scenarios = None
    uses_torch = True
    gpu = True
    multi_start = True
    options = {
        **gl.loop_options(300, "meta-learning iterations T (one Adam step per network each)"),
        "hidden": Param("400x400x400", "hidden layer sizes, e.g. 400x400x400",
                        check=_check(parse_hidden, "sizes like 400x400x400")),
        "activations": Param("sigmoid-tanh-tanh", f"one activation per hidden layer ({', '.join(ACTIVATIONS)})",
                             check=_check(parse_activations, "activations like sigmoid-tanh-tanh")),
        "lr": Param(1e-3, "Adam learning rate of every network (beta in eq. (12))", min=0.0),
        "lr_by_var": Param("", "per-variable Adam rates overriding lr, by variable name or role, e.g. "
                           "Phi:1e-4;P:1e-3 or scattering:1e-4;precoder:1e-3",
                           check=_check(parse_lr_by_var, "name:rate pairs separated by ';'")),
        "input_norm": Param("rms", "fixed-input normalisation: rms, max, or raw (the paper's raw gradient)",
                            choices=("rms", "max", "raw")),
        "output_scale": Param("init", "increment scale: init (RMS entry of X0) or unit (the paper's)",
                              choices=("init", "unit")),
    }
    budget_options = ("iters",)

    def supports_problem(self, problem: Problem) -> bool:
        return self.declines(problem, {}) is None

    def declines(self, problem: Problem, options: Mapping[str, Any]) -> str | None:
        opts = self.resolve_options(options)
        try:
            _lr_names(problem, parse_lr_by_var(opts["lr_by_var"]))
        except ValueError as exc:
            return str(exc)
        return gl.declines(problem, opts)

    def memory_bytes(self, problem: Problem, options: Mapping[str, Any]) -> int:
        """The networks dominate: per variable with ``n`` real entries, ``n x h1 + h1 x h2 + ... + hk x n``
        float64 weights, held four times (weights, gradients, Adam's two moments)."""
        opts = self.resolve_options(options)
        hidden = parse_hidden(opts["hidden"])
        weights = 0
        for var in problem.variables.values():
            n = int(np.prod(var.shape)) * (2 if var.complex else 1)
            sizes = (n, *hidden, n)
            weights += sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        return 4 * 8 * weights + super().memory_bytes(problem, options)

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        opts = self.resolve_options(options)
        hidden = parse_hidden(opts["hidden"])
        acts = parse_activations(opts["activations"])
        if len(acts) != len(hidden):
            raise ValueError(f"activations: {len(acts)} given for {len(hidden)} hidden layers")
        _lr_names(problem, parse_lr_by_var(opts["lr_by_var"]))

        return gl.solve_staged(problem, opts, lambda prob, o, stage: self._solve(prob, o, ctx, stage))

    def _solve(self, problem: Problem, opts: Mapping[str, Any], ctx: RunContext, stage: gl.Stage) -> Solution:
        """One stage: fresh networks on the fixed gradient input at this stage's ``X0``."""
        import torch

        from ..common import autodiff

        hidden = parse_hidden(opts["hidden"])
        acts = parse_activations(opts["activations"])
        lr_by_var = _lr_names(problem, parse_lr_by_var(opts["lr_by_var"]))
        setup = gl.prepare(problem, opts, ctx, stage)
        device, x0 = setup.device, setup.x0
        gen = autodiff.torch_generator(ctx)

        # The fixed inputs: gradient of the meta-loss at X0, one per variable (line 4 of Algorithm 1).
        xg = {k: v.clone().requires_grad_(True) for k, v in x0.items()}
        grads = torch.autograd.grad(setup.loss(xg), list(xg.values()), allow_unused=True)
        inputs: dict[str, torch.Tensor] = {}
        for (k, v), g in zip(x0.items(), grads):
            g = torch.zeros_like(v) if g is None else g.detach()
            inputs[k] = _normalise(_flatten(g), opts["input_norm"])

        nets = {k: _mlp_params(inputs[k].numel(), hidden, inputs[k].numel(), gen, device, opts["dtype"])
                for k in x0}
        scales = {k: gl.rms(v) if opts["output_scale"] == "init" else 1.0 for k, v in x0.items()}
        lrs = {k: lr_by_var.get(k, opts["lr"]) for k in x0}
        opt = gl.make_adam([{"params": nets[k], "lr": lrs[k]} for k in x0])
        activations = [_activation(a) for a in acts]

        def step() -> tuple[Mapping[str, torch.Tensor], torch.Tensor]:
            x = {}
            for k, v in x0.items():
                inc = _unflatten(_mlp(nets[k], activations, inputs[k]), v) * scales[k]
                x[k] = setup.omega(k, v + inc)
            x = setup.joint(x)
            loss = setup.loss(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return x, loss.detach()

        setup.info.update(lr=lrs, output_scale=scales)
        return gl.run(setup, ctx, step, opts["iters"], opts["final_project"])

    # -- the batched path (see gradient_loop's batched section) -----------------------------------------
    batched = True

    def solve_batch(self, problems: Sequence[Problem], options: Mapping[str, Any],
                    ctxs: Sequence[RunContext]) -> list[Solution]:
        """Every realisation's :meth:`solve` as one computation: its own networks (same seeds, same
        initial weights as unbatched), stacked, run with batched matrix products and one fused Adam over
        the stacks. Realisations that cannot be stacked (other shapes) go in separate groups; a subclass
        that overrides :meth:`_solve` without a batched :meth:`_solve_batch` runs one by one."""
        problems, ctxs = list(problems), list(ctxs)
        if _defining_class(type(self), "_solve") is not _defining_class(type(self), "_solve_batch"):
            return [self.solve(p, options, c) for p, c in zip(problems, ctxs)]
        opts = self.resolve_options(options)
        hidden = parse_hidden(opts["hidden"])
        if len(parse_activations(opts["activations"])) != len(hidden):
            raise ValueError(f"activations: {len(parse_activations(opts['activations']))} given for "
                             f"{len(hidden)} hidden layers")
        for p in problems:
            _lr_names(p, parse_lr_by_var(opts["lr_by_var"]))

        def group(probs: list[Problem], cs: list[RunContext]) -> list[Solution]:
            return gl.solve_staged_batch(probs, opts, lambda ps, o, stages: self._solve_batch(ps, o, cs, stages))

        return gl.solve_grouped(problems, ctxs, group)

    def _solve_batch(self, problems: list[Problem], opts: Mapping[str, Any], ctxs: list[RunContext],
                     stages: list[gl.Stage]) -> list[Solution]:
        """One stage of :meth:`_solve` for a stack of realisations."""
        import torch

        from ..common import autodiff

        hidden = parse_hidden(opts["hidden"])
        activations = [_activation(a) for a in parse_activations(opts["activations"])]
        bs = gl.prepare_batch(problems, opts, ctxs, stages)
        nets: dict[str, list[list[torch.Tensor]]] = {}
        inputs: dict[str, list[torch.Tensor]] = {}
        scales: dict[str, list[float]] = {}
        lrs: dict[str, float] = {}
        for b, (setup, ctx) in enumerate(zip(bs.setups, ctxs)):
            # per realisation exactly as _solve: its fixed inputs, then its networks from its generator
            gen = autodiff.torch_generator(ctx)
            xg = {k: v.clone().requires_grad_(True) for k, v in setup.x0.items()}
            grads = torch.autograd.grad(setup.loss(xg), list(xg.values()), allow_unused=True)
            lr_by_var = _lr_names(setup.problem, parse_lr_by_var(opts["lr_by_var"]))
            for (k, v), g in zip(setup.x0.items(), grads):
                g = torch.zeros_like(v) if g is None else g.detach()
                inputs.setdefault(k, []).append(_normalise(_flatten(g), opts["input_norm"]))
            for k, v in setup.x0.items():
                n = inputs[k][b].numel()
                nets.setdefault(k, []).append(_mlp_params(n, hidden, n, gen, bs.first.device, opts["dtype"]))
                scales.setdefault(k, []).append(gl.rms(v) if opts["output_scale"] == "init" else 1.0)
            lrs_b = {k: lr_by_var.get(k, opts["lr"]) for k in setup.x0}
            if b and lrs_b != lrs:
                raise ValueError("a batch of realisations with different learning rates")
            lrs = lrs_b
            setup.info.update(lr=lrs_b, output_scale={k: scales[k][b] for k in setup.x0})
        x0 = bs.x0
        z = {k: torch.stack(inputs[k]) for k in x0}
        scale = {k: torch.tensor(scales[k], dtype=x0[k].real.dtype, device=bs.first.device)
                 .reshape(-1, *([1] * (x0[k].dim() - 1))) for k in x0}
        # One parameter group per variable over every realisation's tensors: the fused Adam updates them
        # all in one call, each entry as in its own run.
        opt = gl.make_adam([{"params": [p for net in nets[k] for p in net], "lr": lrs[k]} for k in x0])
        # On the CPU each network is applied on its own (addmv, bitwise the unbatched run; with independent
        # weights a batched product saves no arithmetic); elsewhere as one batched product.
        per_network = bs.first.device.type == "cpu"

        def increments(k: str) -> torch.Tensor:
            if per_network:
                return torch.stack([_mlp(net, activations, zb) for net, zb in zip(nets[k], z[k].unbind(0))])
            stacked = [torch.stack(layer) for layer in zip(*nets[k])]
            return _mlp_batch(stacked, activations, z[k])

        def step() -> tuple[Mapping[str, torch.Tensor], torch.Tensor]:
            x = {}
            for k, v in x0.items():
                x[k] = bs.omega(k, v + _unflatten_batch(increments(k), v) * scale[k])
            x = bs.joint(x)
            loss = bs.loss(x)
            opt.zero_grad(set_to_none=True)
            bs.objective(loss).backward()
            opt.step()
            return x, loss.detach()

        return gl.run_batch(bs, ctxs, step, opts["iters"], opts["final_project"])


class MetaOptAlg3(MetaOpt):
    """``metaopt`` configured as seed 000's Algorithm 3 for the (BD-)RIS of section VI (same code).

    Section VI-B: two networks (``P`` and ``Phi``), each with four hidden layers of 400 units, the first
    three with sigmoid, tanh, tanh and the fourth without activation; Adam rates ``1e-3`` (``P``) and
    ``1e-4`` (``Phi``); ``P0`` = MRT; ``P`` projected onto the power ball (eq. (11)), ``Phi`` only penalised,
    ``L = -SR + lambda ||Phi^H Phi - I||_F^2`` (eqs. (32)-(33)); a BD-RIS starts from the diagonal-RIS meta
    solution (``warm=diagonal``). A diagonal RIS's phases are exact (the paper's variable is ``omega``), so
    a unit-modulus ``Phi`` is projected, in the diagonal stage and for ``architecture=diagonal``.

    Choices: the paper runs ``T = 25000`` iterations and a 1000-iteration diagonal stage; the defaults here
    are 300 and 300 so that the headline command stays within minutes (paper scale:
    ``metaopt-alg3[iters=25000,warm_iters=1000]``). ``lambda`` is not given in the paper: ``penalty=10``.
    A penalty-only ``Phi`` ends about 0.1 (Frobenius) off the unitary group at these budgets, so by default
    the result is projected at the end (``final_project=True``, shown in the budget column); with
    ``final_project=false`` the run is scored as returned: ``infeasible``, with its violation shown.
    """

    name = "metaopt-alg3"
    description = ("seed 000 Algorithm 3 as configured in sec. VI: 4 hidden layers, lr P 1e-3 / Phi 1e-4, "
                   "Phi penalty-only, BD-RIS from the diagonal-RIS meta solution")
    scenarios = ("bdris",)
    options = {
        **MetaOpt.options,
        **{k: dataclasses.replace(MetaOpt.options[k], default=v) for k, v in {
            "iters": 300,
            "hidden": "400x400x400x400",
            "activations": "sigmoid-tanh-tanh-linear",
            "lr_by_var": "precoder:1e-3;scattering:1e-4",
            "init": "mrt",
            "project": "precoder",
            "final_project": True,
            "warm": "diagonal",
            "warm_iters": 300,
        }.items()},
    }
    budget_options = ("iters", "warm_iters", "final_project")

    def _solve(self, problem: Problem, opts: Mapping[str, Any], ctx: RunContext, stage: gl.Stage) -> Solution:
        return super()._solve(problem, _alg3_options(problem, opts), ctx, stage)

    def _solve_batch(self, problems: list[Problem], opts: Mapping[str, Any], ctxs: list[RunContext],
                     stages: list[gl.Stage]) -> list[Solution]:
        return super()._solve_batch(problems, _alg3_options(problems[0], opts), ctxs, stages)


def _alg3_options(problem: Problem, opts: Mapping[str, Any]) -> Mapping[str, Any]:
    """A diagonal RIS's variable is the phase vector (the paper's omega): its constraint is exact, so with
    the default project=precoder a unit-modulus scattering variable is projected, not penalised."""
    scattering = problem.names_with_role("scattering")
    if opts["project"] == "precoder" and scattering and all(
            isinstance(problem.variables[n].constraint, UnitModulus) for n in scattering):
        return dict(opts, project="all")
    return opts


def _defining_class(cls: type, attr: str) -> type | None:
    return next((c for c in cls.__mro__ if attr in c.__dict__), None)


# -- the networks (plain tensors: cheaper than nn.Module for a batch of one) ----------------------------
def _flatten(t: "torch.Tensor") -> "torch.Tensor":
    """A real vector: ``[Re(vec), Im(vec)]`` for complex tensors, ``vec`` for real ones."""
    import torch

    flat = t.reshape(-1)
    return torch.cat([flat.real, flat.imag]) if flat.is_complex() else flat


def _unflatten(z: "torch.Tensor", like: "torch.Tensor") -> "torch.Tensor":
    import torch

    if like.is_complex():
        n = like.numel()
        return torch.complex(z[:n], z[n:]).reshape(like.shape)
    return z.reshape(like.shape)


def _unflatten_batch(z: "torch.Tensor", like: "torch.Tensor") -> "torch.Tensor":
    """:func:`_unflatten` of every row of ``z`` (``like`` stacked along a leading dimension)."""
    import torch

    if like.is_complex():
        n = like[0].numel()
        return torch.complex(z[:, :n], z[:, n:]).reshape(like.shape)
    return z.reshape(like.shape)


def _normalise(z: "torch.Tensor", how: str) -> "torch.Tensor":
    if how == "raw":
        return z
    scale = float(z.abs().max()) if how == "max" else float(z.square().mean().sqrt())
    return z / scale if scale > 0 and math.isfinite(scale) else z


def _mlp_params(n_in: int, hidden: tuple[int, ...], n_out: int, gen: "torch.Generator",
                device: Any, precision: str = "float64") -> list["torch.Tensor"]:
    """Weights and biases ``[W1, b1, ..., Wout, bout]``, uniform in ``+-1/sqrt(fan_in)``.

    Drawn in float64 on the CPU from ``gen``, then rounded to ``precision`` and moved, so a run gives the
    same network on every device (and float32 the float64 network rounded).
    """
    import torch

    params = []
    sizes = (n_in, *hidden, n_out)
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / math.sqrt(fan_in)
        for shape in ((fan_out, fan_in), (fan_out,)):
            w = (torch.rand(shape, generator=gen, dtype=torch.float64) * 2.0 - 1.0) * bound
            params.append(w.to(device=device, dtype=getattr(torch, precision)).requires_grad_(True))
    return params


def _activation(name: str):
    import torch

    return {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
            "elu": torch.nn.functional.elu, "gelu": torch.nn.functional.gelu,
            "linear": lambda z: z}[name]


def _mlp(params: list["torch.Tensor"], activations: list, z: "torch.Tensor") -> "torch.Tensor":
    import torch

    for i, act in enumerate(activations):
        z = act(torch.addmv(params[2 * i + 1], params[2 * i], z))
    return torch.addmv(params[-1], params[-2], z)


def _mlp_batch(params: list["torch.Tensor"], activations: list, z: "torch.Tensor") -> "torch.Tensor":
    """:func:`_mlp` of a stack of networks (weights ``[B, out, in]``, biases ``[B, out]``), inputs ``[B, in]``."""
    import torch

    z = z.unsqueeze(-1)
    for i, act in enumerate(activations):
        z = act(torch.baddbmm(params[2 * i + 1].unsqueeze(-1), params[2 * i], z))
    return torch.baddbmm(params[-1].unsqueeze(-1), params[-2], z).squeeze(-1)


@hookimpl
def wbench_register_solvers(register) -> None:
    register(MetaOpt())
    register(MetaOptAlg3())
    register(MetaOptAlg1())


class MetaOptAlg1(MetaOpt):
    """``metaopt`` configured as seed 000's Algorithm 1 for the H-RSMA precoder of section IV (same code).

    Section IV-C: one network on the precoder ``P = [p_c, p_c1..p_cG, p_1..p_K]``, three hidden layers of 400
    units (sigmoid, tanh, tanh) and a linear output, Adam with learning rate ``1e-3``, the fixed input the
    gradient of the meta-loss at ``P0`` = SVD-MRT (70% / 25% / 5% power split), ``P`` projected onto the power
    ball every iteration (eq. (11)), the best iterate returned (lines 7-9); the meta-loss is the scenario's
    ``loss_torch``, ``-ASR + lambda * QoS shortfall`` (eq. (22) with Algorithm 2's closed form).

    Choices: the paper runs ``T = 7500`` (section V's count; Fig. 4 gives none); the default here is 300 so
    that the ``hrsma`` headline command stays within minutes on a laptop (paper:
    ``metaopt-alg1[iters=7500]``). The fixed input is RMS-normalised and the increment scaled by the RMS
    entry of ``P0`` (``metaopt``'s defaults; ``input_norm=raw,output_scale=unit`` is the paper's literal form).
    """

    name = "metaopt-alg1"
    description = ("seed 000 Algorithm 1 as configured in sec. IV: one 3x400 sigmoid/tanh/tanh network, lr 1e-3, "
                   "SVD-MRT start, QoS penalty in the meta-loss")
    scenarios = ("hrsma", "isac")
    options = {
        **MetaOpt.options,
        **{k: dataclasses.replace(MetaOpt.options[k], default=v) for k, v in {
            "iters": 300,
            "hidden": "400x400x400",
            "activations": "sigmoid-tanh-tanh",
            "lr": 1e-3,
            "init": "svd-mrt",
            "project": "all",
        }.items()},
    }
