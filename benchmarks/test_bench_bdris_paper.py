"""One ``metaopt-alg3`` iteration on ``bdris`` at the paper's size against a bare torch loop doing the same
arithmetic (the floor).

Run: ``python -m pytest benchmarks/test_bench_bdris_paper.py -s``. Seed 000 (Cerna Loli & Clerckx), section VI
at its size: a fully-connected BD-RIS with ``B = 200`` elements, ``Nt = 100`` BS antennas, ``K = 10`` users,
30 dBm. Algorithm 3's BD-RIS stage: one network per variable, four hidden layers of 400 units
(sigmoid, tanh, tanh, linear) and a linear output; the scattering matrix ``Phi`` (200 x 200 complex: 80,000
real inputs and outputs, so its network alone has 64 million weights, 0.5 GB in float64) is penalised by
``10 ||Phi^H Phi - I||_F^2`` (eq. (33)), the precoder projected onto the power ball (eq. (11)), Adam with
learning rates 1e-3 (precoder) and 1e-4 (scattering). The work per iteration is dominated by the ``Phi``
network: two matrix-vector products of 80,000 x 400 forward, their transposes backward, and Adam's update of
the 64 million weights and two moments, all memory-bound.

The bare loop below uses no framework code (only the problem's channel arrays): the same networks and
activations, the same fixed inputs' shapes, the same loss written out, ``torch.optim.Adam(fused=True)``, the
loss read each iteration. Both sides are timed in CPU seconds of this process with one torch thread, set-up
excluded on both (the framework's as the difference of a ``1 + n`` and a one-iteration run). The ratio
framework / bare is reported in ``extra_info`` (target: within 2x); timings are never asserted, the two losses
at the same point are checked equal. The per-iteration time, times 25,000 iterations (the paper's count), gives
the extrapolated paper-scale run time in the README.
"""

from __future__ import annotations

import math
import os
import time

os.environ.setdefault("WBENCH_LOAD_PLUGINS", "")

import numpy as np
import pytest
import torch

from wbench.channels.channelset import realisation_rng
from wbench.scenarios.bdris import Bdris, BdrisProblem
from wbench.solver import RunContext
from wbench.solvers.gradient.metaopt import MetaOptAlg3

PAPER = {"Nt": 100, "K": 10, "B": 200, "architecture": "fully", "pt_dbm": 30.0}
ITERS = 3
HIDDEN = (400, 400, 400, 400)
ACTS = (torch.sigmoid, torch.tanh, torch.tanh, lambda z: z)
PENALTY = 10.0
LRS = {"P": 1e-3, "Phi": 1e-4}

TORCH_THREADS = 1  # the torch threads of every benchmark here (benchmarks/conftest.py)


@pytest.fixture(scope="module")
def prob() -> BdrisProblem:
    sc = Bdris()
    params = sc.resolve_params(PAPER)
    return sc.problem(params, sc.draw(params, realisation_rng(0, "bdris", 0)))


def bare_loss_fn(prob: BdrisProblem):
    """``-WSR(sqrt(gain) H^H Phi G P) + penalty ||Phi^H Phi - I||_F^2`` written out (unit weights, noise
    normalised to one)."""
    G = torch.as_tensor(prob.G)
    Hh = torch.as_tensor(prob.Hr).conj()
    root = math.sqrt(prob.gain)
    eye = torch.eye(G.shape[0], dtype=G.dtype)
    off = 1.0 - torch.eye(Hh.shape[0], dtype=torch.float64)

    def loss(P: torch.Tensor, Phi: torch.Tensor) -> torch.Tensor:
        A = root * (Hh @ Phi @ G) @ P
        g2 = A.real.square() + A.imag.square()
        signal = torch.diagonal(g2)
        rate = torch.log1p(signal / ((g2 * off).sum(-1) + 1.0)).sum() / math.log(2)
        pen = (Phi.conj().T @ Phi - eye).abs().square().sum()
        return -rate + PENALTY * pen

    return loss


def _net(n: int, gen: torch.Generator) -> list[torch.Tensor]:
    sizes = (n, *HIDDEN, n)
    params = []
    for fi, fo in zip(sizes[:-1], sizes[1:]):
        for shape in ((fo, fi), (fo,)):
            params.append(((torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) / math.sqrt(fi))
                          .requires_grad_(True))
    return params


def _flat(t: torch.Tensor) -> torch.Tensor:
    return torch.cat([t.reshape(-1).real, t.reshape(-1).imag])


def bare_alg3(prob: BdrisProblem, iters: int) -> float:
    """CPU seconds per iteration of Algorithm 3's BD-RIS stage written directly in torch (the loop only)."""
    loss_fn = bare_loss_fn(prob)
    x0 = {k: torch.as_tensor(v) for k, v in prob.initial("mrt").items()}
    xg = {k: v.clone().requires_grad_(True) for k, v in x0.items()}
    grads = torch.autograd.grad(loss_fn(xg["P"], xg["Phi"]), [xg["P"], xg["Phi"]])
    inputs = {k: _flat(g) / _flat(g).square().mean().sqrt() for k, g in zip(("P", "Phi"), grads)}
    scales = {k: float(v.abs().square().mean().sqrt()) for k, v in x0.items()}
    gen = torch.Generator().manual_seed(0)
    nets = {k: _net(inputs[k].numel(), gen) for k in ("P", "Phi")}
    opt = torch.optim.Adam([{"params": nets[k], "lr": LRS[k]} for k in nets], fused=True)
    power = prob.power
    t0 = time.process_time()
    for _ in range(iters):
        x = {}
        for k, v in x0.items():
            h = inputs[k]
            params = nets[k]
            for i, act in enumerate(ACTS):
                h = act(torch.addmv(params[2 * i + 1], params[2 * i], h))
            out = torch.addmv(params[-1], params[-2], h)
            n = v.numel()
            x[k] = v + torch.complex(out[:n], out[n:]).reshape(v.shape) * scales[k]
        pw = x["P"].abs().square().sum()
        x["P"] = x["P"] * torch.sqrt(power / torch.clamp(pw, min=power))
        loss = loss_fn(x["P"], x["Phi"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        float(loss.detach())
    return (time.process_time() - t0) / iters


OPTIONS = {"warm": "none", "final_project": False}


def framework_run(prob: BdrisProblem, iters: int) -> float:
    """CPU seconds of a whole ``metaopt-alg3`` run (BD-RIS stage only) of ``iters`` iterations."""
    ctx = RunContext(np.random.default_rng(0))
    t0 = time.process_time()
    sol = MetaOptAlg3().solve(prob, {**OPTIONS, "iters": iters}, ctx)
    assert sol.iterations == iters
    return time.process_time() - t0


def framework(prob: BdrisProblem, iters: int) -> float:
    """CPU seconds per iteration: a run of ``1 + iters`` iterations less a run of one (set-up cancels)."""
    return (framework_run(prob, 1 + iters) - framework_run(prob, 1)) / iters


def test_bare_loss_is_the_solvers_meta_loss(prob):
    """The bare loss equals the scenario's loss plus the solver's unitary penalty at a non-unitary point."""
    from wbench.problem import Unitary

    rng = np.random.default_rng(1)
    x = prob.initial("mrt")
    Phi = torch.as_tensor(x["Phi"] + 0.01 * (rng.standard_normal(x["Phi"].shape)
                                             + 1j * rng.standard_normal(x["Phi"].shape)))
    P = torch.as_tensor(x["P"])
    expected = float(prob.loss_torch({"P": P, "Phi": Phi})) + PENALTY * float(Unitary().penalty_torch(Phi))
    assert float(bare_loss_fn(prob)(P, Phi)) == pytest.approx(expected, rel=1e-10)
    assert MetaOptAlg3().resolve_options(OPTIONS)["penalty"] == PENALTY


def test_alg3_iteration_vs_bare_torch(benchmark, prob):
    framework_run(prob, 1)  # warm-up
    bare_alg3(prob, 1)
    fw_times: list[float] = []
    benchmark.pedantic(lambda: fw_times.append(framework(prob, ITERS)), rounds=2, iterations=1)
    bare_times = [bare_alg3(prob, ITERS) for _ in range(2)]
    fw, bt = float(np.median(fw_times)), float(np.median(bare_times))
    benchmark.extra_info.update(
        iterations=ITERS, seconds_per_iteration=fw, bare_seconds_per_iteration=bt, ratio_vs_bare=fw / bt,
        paper_iterations=25000, paper_run_hours=fw * 25000 / 3600,
    )
    print(f"\nmetaopt-alg3 bdris paper size: {fw:.3f} s/iteration, bare torch {bt:.3f} s, ratio {fw / bt:.2f}; "
          f"25,000 iterations: {fw * 25000 / 3600:.1f} h per channel")
