"""``ggml``: gradient-guided meta-learning for hybrid precoding (seed 002; SCENARIOS.md section 5).

The paper's method (its section III, eqs. (15)-(21), Algorithm 1; the formulas were lost in extraction, so
the loop follows the authors' public code, github mistybeep/GGML, read and re-written, not copied). One
network per variable, the digital precoding network (DPN) for ``F_BB`` and the analog one (APN) for
``F_RF``, each an MLP ``in -> hidden -> ReLU -> in`` fed a gradient flattened as ``[Re | Im]`` (``2 N_RF K`` and
``2 Nt N_RF`` reals) and returning an increment of the same size. Every epoch restarts from the initial point
``(F_RF^0, F_BB^0)`` (random phases, ZF digital at full power, the scenario's ``random-zf``):

    F_RF = (F_RF^0 + APN(g_RF)) / |F_RF^0 + APN(g_RF)|            (eqs. (17)-(18): one projected step)
        g_RF = grad_{F_RF} L(F_BB^prev, F_RF^0), F_BB^prev the previous epoch's digital part, detached
    F_BB = F_BB^0 + DPN(g_BB)                                      (eq. (15))
        g_BB = grad_{F_BB} L(F_BB^0, F_RF), F_RF detached
    F_BB <- sqrt(P) F_BB / ||F_RF F_BB||_F                         (eq. (16))

then one Adam step on both networks' weights (learning rates ``lr_digital = 1e-3``, ``lr_analog = 1.5e-3``,
eqs. (20)-(21)) on the meta-loss ``L(F_BB, F_RF)`` of the new point, differentiated through both networks
(and through the power normalisation), and the best point by sum rate over the epochs is returned. The loss
is the code's, ``L = -(1/K) sum_k R_k + variance_weight * var_k R_k`` (eq. (19): a fairness penalty; ``var`` with
the ``K - 1`` denominator as ``torch.std``; 0 for ``K = 1``); ``variance_weight=0`` is the pure sum rate. The
utility reported is the sum rate whatever the loss. 500 epochs of one inner step, hidden width 200.

Choices and departures, documented:

* ``grad_input=fresh`` (default) feeds the gradient at the point the paper names (eq. (15): "the gradient with
  respect to the initialized or updated precoding matrix"). The authors' code never zeroes the ``.grad`` of
  its initial points, so its networks see the running sum over epochs of those gradients plus the
  meta-loss's own gradients with respect to the initial points: ``grad_input=accumulated`` reproduces that.
* float64 / complex128 throughout by default (the code uses complex64: ``dtype=float32`` runs the networks,
  channel and precoders in float32 / complex64); networks initialised like ``torch.nn.Linear`` (uniform in
  ``+-1/sqrt(fan_in)``) from a CPU generator seeded by the run's ``ctx.rng``, drawn in float64 and then moved
  to the run's device and precision, so every device and precision starts from the same networks (float32
  from the float64 weights rounded). ``device`` (default the run's ``--device``) holds the channel, the
  precoders and the networks; the best iterate is copied to the host when it improves.
* ``net=mlp`` only: the code's KAN (``efficient_kan``, commented out there) is not a maintained package in
  this environment's pins, so no ``net=kan`` is offered.
* ``robust=true`` is GGML-ImCSI (section IV, reconstructed as SCENARIOS.md section 5): the problem is solved on
  ``h~_k = (1 - eps_k / ||h^_k||)^+ h^_k`` with ``eps_k`` the ``1 - outage`` quantile of ``||e_k||``,
  ``e_k ~ CN(0, delta ||h_k||^2 / Nt I)`` (``||e_k||^2 (2 Nt / (delta ||h_k||^2 / Nt))`` is chi-square with ``2 Nt``
  degrees of freedom, so ``eps_k^2 = delta ||h_k||^2 / Nt * Gamma^{-1}(Nt, 1 - outage)``), with the estimate's
  norm ``||h^_k||`` in place of the unknown ``||h_k||``. The best iterate is chosen on ``h~``.

Batched (:meth:`Ggml.solve_batch`, the harness's path for several realisations of one configuration): the
same runs, bitwise on the CPU (float64), with the channels, precoders and meta-losses stacked; the steps whose
stacked form would round differently (the phase normalisation's complex division, the power normalisation's
norm and the per-user mean and variance) stay per realisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ...hookspecs import hookimpl
from ...params import Param
from ...problem import Problem, Vars
from ...rates import sinr_parts_torch
from ...solver import RunContext, Solution, Solver, check_device


def robust_channel(H_hat: np.ndarray, delta: float, outage: float = 0.05) -> np.ndarray:
    """``h~_k = (1 - eps_k / ||h^_k||)^+ h^_k`` (module docstring), rows ``h^_k`` of ``H_hat``."""
    from scipy.special import gammaincinv

    nt = H_hat.shape[1]
    norms = np.linalg.norm(H_hat, axis=1)
    eps = np.sqrt(delta * norms ** 2 / nt * gammaincinv(nt, 1.0 - outage))
    shrink = np.clip(1.0 - eps / np.where(norms > 0, norms, 1.0), 0.0, None)
    return H_hat * shrink[:, None]


def _rates(H: Any, F_RF: Any, F_BB: Any, sigma2: float) -> Any:
    import torch

    signal, rest = sinr_parts_torch(H.conj() @ (F_RF @ F_BB), sigma2)
    return torch.log1p(signal / rest) / math.log(2.0)


def meta_loss(rates: Any, variance_weight: float) -> Any:
    """``-mean_k R_k + variance_weight * var_k R_k`` (unbiased variance; none for one user)."""
    loss = -rates.mean()
    if variance_weight and rates.numel() > 1:
        loss = loss + variance_weight * rates.var(unbiased=True)
    return loss


def _mlp(n: int, hidden: int, gen: Any, device: Any = "cpu", real: Any = None) -> Any:
    """``n -> hidden -> ReLU -> n``, drawn in float64 from the CPU generator ``gen``, then moved to ``device``
    in the real dtype ``real`` (default float64: no conversion)."""
    import torch

    net = torch.nn.Sequential(torch.nn.Linear(n, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, n)).double()
    with torch.no_grad():
        for layer in (net[0], net[2]):
            bound = 1.0 / math.sqrt(layer.in_features)
            for p in (layer.weight, layer.bias):
                p.copy_((torch.rand(p.shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound)
    return net.to(device=device, dtype=real or torch.float64)


def _host(t: Any) -> np.ndarray:
    """A copy of ``t`` on the host in complex128 (scored in float64 whatever the run's precision)."""
    return t.detach().cpu().numpy().astype(np.complex128)


def _flat(g: Any) -> Any:
    import torch

    return torch.cat((g.real, g.imag), dim=1).reshape(-1)


def _unflat(z: Any, shape: tuple[int, int]) -> Any:
    z = z.reshape(shape[0], 2 * shape[1])
    return z[:, : shape[1]] + 1j * z[:, shape[1]:]


class Ggml(Solver):
    """GGML (module docstring)."""

    name = "ggml"
    version = "1"
    description = "gradient-guided meta-learning, APN/DPN MLPs on raw gradients, 500 epochs (seed 002, GGML)"
    tags = frozenset({"meta"})
    scenarios = ("hybrid",)
    uses_torch = True
    gpu = True
    multi_start = True
    options = {
        "epochs": Param(500, "outer epochs (one inner step each, from the initial point)", min=1),
        "hidden": Param(200, "hidden units of each MLP", min=1),
        "lr_digital": Param(1e-3, "Adam learning rate of the digital network (DPN)", min=0),
        "lr_analog": Param(1.5e-3, "Adam learning rate of the analog network (APN)", min=0),
        "variance_weight": Param(0.2, "weight of var_k R_k in the loss (0: pure sum rate)", min=0),
        "grad_input": Param("fresh", "network input: fresh (the gradient at the point) or accumulated "
                            "(the authors' code: .grad never zeroed)", choices=("fresh", "accumulated")),
        "robust": Param(False, "GGML-ImCSI: design on the worst-case shrunk channel h~"),
        "outage": Param(0.05, "robust: outage probability of the error-norm bound eps_k", min=1e-9, max=0.999),
        "init": Param("random-zf", "initial point (random-zf: the authors' start; phase-zf; random)"),
        "device": Param(None, "torch device: cpu, cuda, auto (cuda when available, else cpu); default: the "
                        "run's --device", nullable=True, check=check_device),
        "dtype": Param("float64", "torch precision of the channel, precoders and networks (results are scored "
                       "in float64)", choices=("float64", "float32")),
    }
    budget_options = ("epochs",)

    def memory_bytes(self, problem: Problem, options: Mapping[str, Any]) -> int:
        opts = self.resolve_options(options)
        n = sum(2 * int(np.prod(v.shape)) for v in problem.variables.values())
        return 8 * 4 * 2 * n * opts["hidden"] + super().memory_bytes(problem, options)  # weights, grads, Adam

    def _start(self, problem: Problem, opts: Mapping[str, Any], ctx: RunContext) -> "_Start":
        """One run's channel, initial point and networks, drawn from ``ctx`` (the same draws batched or not)."""
        import torch

        from ..common import autodiff

        device = autodiff.device_for(ctx, opts["device"])
        real, cplx = autodiff.PRECISIONS[opts["dtype"]]
        H_np = problem.H
        if opts["robust"] and getattr(problem, "csi_error", 0.0) > 0:
            H_np = robust_channel(problem.H, problem.csi_error, opts["outage"])
        H = torch.as_tensor(H_np, dtype=torch.complex128).to(device=device, dtype=cplx)
        x0 = ctx.initial(problem, opts["init"])
        gen = torch.Generator().manual_seed(int(ctx.rng.integers(2**63 - 1)))
        rf0 = torch.as_tensor(x0["F_RF"], dtype=torch.complex128).to(device=device, dtype=cplx).clone()
        bb0 = torch.as_tensor(x0["F_BB"], dtype=torch.complex128).to(device=device, dtype=cplx).clone()
        apn = _mlp(2 * rf0.numel(), opts["hidden"], gen, device, real)
        dpn = _mlp(2 * bb0.numel(), opts["hidden"], gen, device, real)
        return _Start(H, x0, rf0, bb0, apn, dpn)

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        import torch

        opts = self.resolve_options(options)
        start = self._start(problem, opts, ctx)
        H, x0, rf0, bb0, apn, dpn = start.H, start.x0, start.rf0, start.bb0, start.apn, start.dpn
        sigma2, power, vw = float(problem.sigma2), float(problem.power), float(opts["variance_weight"])
        accumulate = opts["grad_input"] == "accumulated"
        if accumulate:
            rf0.requires_grad_(True)
            bb0.requires_grad_(True)
        adam_a = torch.optim.Adam(apn.parameters(), lr=opts["lr_analog"])
        adam_d = torch.optim.Adam(dpn.parameters(), lr=opts["lr_digital"])

        def grad_at(f: Any, leaf: Any) -> Any:
            """The network input: the gradient of ``f`` at ``leaf`` (fresh) or ``leaf``'s running ``.grad``."""
            if accumulate:
                f.backward()
                return leaf.grad.detach().clone()
            return torch.autograd.grad(f, leaf)[0]

        bb_prev = bb0.detach()
        best, best_rate, rates_trace = None, -math.inf, []
        epoch = 0
        for epoch in range(1, opts["epochs"] + 1):
            rf_in = rf0 if accumulate else rf0.detach().requires_grad_(True)
            g_rf = grad_at(meta_loss(_rates(H, rf_in, bb_prev, sigma2), vw), rf_in)
            z = rf0 + _unflat(apn(_flat(g_rf)), tuple(rf0.shape))
            F_RF = z / z.abs().clamp(min=1e-30)
            bb_in = bb0 if accumulate else bb0.detach().requires_grad_(True)
            g_bb = grad_at(meta_loss(_rates(H, F_RF.detach(), bb_in, sigma2), vw), bb_in)
            F_BB = bb0 + _unflat(dpn(_flat(g_bb)), tuple(bb0.shape))
            F_BB = F_BB * math.sqrt(power) / torch.linalg.norm(F_RF @ F_BB)
            rates = _rates(H, F_RF, F_BB, sigma2)
            loss = meta_loss(rates, vw)
            rate = float(rates.detach().sum())
            rates_trace.append(rate)
            if rate > best_rate and math.isfinite(rate):
                best_rate = rate
                best = {"F_RF": _host(F_RF), "F_BB": _host(F_BB)}
            if ctx.wants(epoch) and best is not None:
                ctx.checkpoint(best, epoch)
            adam_a.zero_grad()
            adam_d.zero_grad()
            loss.backward()
            adam_a.step()
            adam_d.step()
            bb_prev = F_BB.detach()
            if ctx.expired():
                break
        return _finish(problem, ctx, x0, best, best_rate, rates_trace, epoch)

    # -- the batched path ----------------------------------------------------------------------------------
    batched = True

    def solve_batch(self, problems: Sequence[Problem], options: Mapping[str, Any],
                    ctxs: Sequence[RunContext]) -> list[Solution]:
        """Every realisation's :meth:`solve` as one computation (same seeds, same results; realisations of
        other shapes in separate groups): channels, precoders and the meta-losses stacked along a leading
        dimension (:func:`wbench.linalg.stacked_matmul`: per-realisation products on the CPU), one
        ``autograd.grad`` per gradient input and one backward pass for the whole stack, one Adam over every
        realisation's networks. Each realisation keeps its own networks (applied one by one: independent
        weights, no arithmetic to share), best iterate, trace and checkpoints; the realisations share one
        clock (the batch stops when any ``ctx``'s seconds budget is spent)."""
        from ..common.gradient_loop import solve_grouped

        opts = self.resolve_options(options)
        return solve_grouped(list(problems), list(ctxs), lambda ps, cs: self._solve_batch(ps, opts, cs))

    def _solve_batch(self, problems: list[Problem], opts: Mapping[str, Any],
                     ctxs: list[RunContext]) -> list[Solution]:
        import torch

        from ...linalg import stack_rows, stacked_matmul

        starts = [self._start(p, opts, c) for p, c in zip(problems, ctxs)]
        n = len(starts)
        H = stack_rows([s.H for s in starts])
        sigma2 = torch.tensor([float(p.sigma2) for p in problems], dtype=H.real.dtype, device=H.device)
        root_p = [math.sqrt(float(p.power)) for p in problems]
        vw = float(opts["variance_weight"])
        rf0 = stack_rows([s.rf0 for s in starts])
        bb0 = stack_rows([s.bb0 for s in starts])
        accumulate = opts["grad_input"] == "accumulated"
        if accumulate:
            rf0.requires_grad_(True)
            bb0.requires_grad_(True)
        apns, dpns = [s.apn for s in starts], [s.dpn for s in starts]
        adam = torch.optim.Adam([
            {"params": [p for net in apns for p in net.parameters()], "lr": opts["lr_analog"]},
            {"params": [p for net in dpns for p in net.parameters()], "lr": opts["lr_digital"]},
        ])
        rf_shape, bb_shape = tuple(rf0.shape[1:]), tuple(bb0.shape[1:])

        def rates_of(F_RF: Any, F_BB: Any) -> Any:
            signal, rest = sinr_parts_torch(stacked_matmul(H.conj(), stacked_matmul(F_RF, F_BB)), sigma2)
            return torch.log1p(signal / rest) / math.log(2.0)

        def losses(rates: Any) -> Any:
            return torch.stack([meta_loss(r, vw) for r in rates.unbind(0)])

        def grad_at(f: Any, leaf: Any) -> Any:
            if accumulate:
                f.backward()
                return leaf.grad.detach().clone()
            return torch.autograd.grad(f, leaf)[0]

        def apply(nets: list, g: Any, shape: tuple[int, int]) -> Any:
            flat = torch.cat((g.real, g.imag), dim=-1).reshape(n, -1)
            out = torch.stack([net(z.clone()) for net, z in zip(nets, flat.unbind(0))])
            out = out.reshape(n, shape[0], 2 * shape[1])
            return out[..., : shape[1]] + 1j * out[..., shape[1]:]

        budgeted = [c for c in ctxs if c.budget_seconds is not None]
        bb_prev = bb0.detach()
        best: list[dict | None] = [None] * n
        best_rate = [-math.inf] * n
        traces: list[list[float]] = [[] for _ in range(n)]
        epoch = 0
        for epoch in range(1, opts["epochs"] + 1):
            rf_in = rf0 if accumulate else rf0.detach().requires_grad_(True)
            g_rf = grad_at(losses(rates_of(rf_in, bb_prev)).sum(), rf_in)
            z = rf0 + apply(apns, g_rf, rf_shape)
            # eq. (18) per realisation: a vectorised complex division rounds differently in SIMD lanes and in
            # the scalar tail, so a stacked one would not reproduce the unbatched rounding
            F_RF = stack_rows([zb / zb.abs().clamp(min=1e-30) for zb in z.unbind(0)])
            bb_in = bb0 if accumulate else bb0.detach().requires_grad_(True)
            g_bb = grad_at(losses(rates_of(F_RF.detach(), bb_in)).sum(), bb_in)
            F_BB = bb0 + apply(dpns, g_bb, bb_shape)
            # eq. (16) per realisation: a stacked norm's gradient would be reduced in another order
            F_BB = stack_rows([fb * rp / torch.linalg.norm(fr @ fb)
                               for fr, fb, rp in zip(F_RF.unbind(0), F_BB.unbind(0), root_p)])
            rates = rates_of(F_RF, F_BB)
            loss = losses(rates)
            done = rates.detach()
            for b in range(n):
                rate = float(done[b].sum())
                traces[b].append(rate)
                if rate > best_rate[b] and math.isfinite(rate):
                    best_rate[b] = rate
                    best[b] = {"F_RF": _host(F_RF[b]), "F_BB": _host(F_BB[b])}
                if ctxs[b].wants(epoch) and best[b] is not None:
                    ctxs[b].checkpoint(best[b], epoch)
            adam.zero_grad()
            loss.sum().backward()
            adam.step()
            bb_prev = F_BB.detach()
            if any(c.expired() for c in budgeted):
                break
        sols = [_finish(p, c, s.x0, bx, br, tr, epoch)
                for p, c, s, bx, br, tr in zip(problems, ctxs, starts, best, best_rate, traces)]
        for sol in sols:
            sol.info["batch"] = n
        return sols


@dataclass
class _Start:
    H: Any
    x0: Vars
    rf0: Any
    bb0: Any
    apn: Any
    dpn: Any


def _finish(problem: Problem, ctx: RunContext, x0: Vars, best: Vars | None, best_rate: float,
            rates_trace: list[float], epoch: int) -> Solution:
    if best is None:  # every epoch non-finite: return the start
        best = {k: np.asarray(v) for k, v in x0.items()}
    x = problem.project(best)  # the rescaling of eq. (16) in float64 (round-off only)
    ctx.checkpoint(x, epoch, force=True)
    return Solution(x=x, iterations=epoch, info={"rate_trace": rates_trace, "design_rate": best_rate})


@hookimpl
def wbench_register_solvers(register) -> None:
    register(Ggml())
