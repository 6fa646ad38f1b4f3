"""Time per iteration of ``metaopt`` and ``adam`` against a bare torch loop doing the same arithmetic.

Run: ``python -m pytest benchmarks/test_bench_metaopt.py``. ``miso`` at 20 dB, ``Nt = K = 4`` and
``Nt = 64, K = 32``, one torch thread. The bare loops below are written without any framework code: the
same MLPs (default architecture, float64), the same fixed input, the same ``-WSR`` loss and power-ball
projection ``Omega``, the same fused Adam, reading the loss value each iteration (as any loop that keeps
the best iterate must). The ratio framework / bare is reported in ``extra_info`` (target: within 1.5x);
timings are never asserted.
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
from wbench.scenarios.miso import Miso, MisoProblem
from wbench.solver import RunContext
from wbench.solvers.gradient.adam import Adam
from wbench.solvers.gradient.metaopt import MetaOpt

SIZES = {"4x4": (4, 4, 300), "64x32": (64, 32, 40)}  # Nt, K, iterations timed
HIDDEN = (400, 400, 400)

TORCH_THREADS = 1  # the torch threads of every benchmark here (benchmarks/conftest.py)


def make(nt: int, k: int) -> MisoProblem:
    sc = Miso()
    params = sc.resolve_params({"Nt": nt, "K": k, "snr_db": 20.0})
    return sc.problem(params, sc.draw(params, realisation_rng(0, "miso", 0)))


def neg_wsr(H: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    g = (H.conj() @ V).abs() ** 2
    s = torch.diagonal(g)
    return -torch.log2(1.0 + s / (g.sum(dim=1) - s + 1.0)).sum()


def omega(V: torch.Tensor, power: float) -> torch.Tensor:
    p = (V.abs() ** 2).sum()
    return V * torch.sqrt(power / torch.clamp(p, min=power))


def bare_metaopt(prob: MisoProblem, iters: int) -> float:
    """Seconds per iteration of Algorithm 1 written directly in torch."""
    H = torch.as_tensor(prob.H)
    V0 = torch.as_tensor(prob.initial("mrt")["V"])
    v = V0.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(neg_wsr(H, v), v)
    z = torch.cat([g.reshape(-1).real, g.reshape(-1).imag])
    z = z / z.square().mean().sqrt()
    scale = float(V0.abs().square().mean().sqrt())
    gen = torch.Generator().manual_seed(0)
    sizes = (z.numel(), *HIDDEN, z.numel())
    params = []
    for fi, fo in zip(sizes[:-1], sizes[1:]):
        for shape in ((fo, fi), (fo,)):
            params.append(((torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) / math.sqrt(fi))
                          .requires_grad_(True))
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    acts = (torch.sigmoid, torch.tanh, torch.tanh)
    n = V0.numel()
    t0 = time.perf_counter()
    for _ in range(iters):
        h = z
        for i, act in enumerate(acts):
            h = act(torch.addmv(params[2 * i + 1], params[2 * i], h))
        out = torch.addmv(params[-1], params[-2], h)
        V = omega(V0 + torch.complex(out[:n], out[n:]).reshape(V0.shape) * scale, prob.power)
        loss = neg_wsr(H, V)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        float(loss.detach())
    return (time.perf_counter() - t0) / iters


def bare_adam(prob: MisoProblem, iters: int) -> float:
    """Seconds per iteration of Adam on z with X = Omega(z), written directly in torch."""
    H = torch.as_tensor(prob.H)
    V0 = torch.as_tensor(prob.initial("mrt")["V"])
    z = V0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=3e-2 * float(V0.abs().square().mean().sqrt()))
    loss = neg_wsr(H, omega(z, prob.power))
    t0 = time.perf_counter()
    for _ in range(iters):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        bool(torch.isfinite(z.grad).all())  # the framework checks this too (unitary sets)
        opt.step()
        loss = neg_wsr(H, omega(z, prob.power))
        float(loss.detach())
    return (time.perf_counter() - t0) / iters


def framework(solver, prob: MisoProblem, iters: int) -> float:
    ctx = RunContext(np.random.default_rng(0))
    ctx.start()
    sol = solver.solve(prob, {"iters": iters}, ctx)
    assert sol.iterations == iters
    return ctx.elapsed() / iters


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("name", ["metaopt", "adam"])
def test_time_per_iteration_vs_bare_torch(benchmark, name, size):
    nt, k, iters = SIZES[size]
    if name == "adam":
        iters *= 5
    prob = make(nt, k)
    solver, bare = (MetaOpt(), bare_metaopt) if name == "metaopt" else (Adam(), bare_adam)
    framework(solver, prob, 5)  # warm-up (allocator, first-call costs)
    bare(prob, 5)
    fw_times: list[float] = []
    benchmark.pedantic(lambda: fw_times.append(framework(solver, prob, iters)), rounds=3, iterations=1)
    bare_times = [bare(prob, iters) for _ in range(3)]
    fw, bt = float(np.median(fw_times)), float(np.median(bare_times))
    benchmark.extra_info.update(
        iterations=iters, seconds_per_iteration=fw, bare_seconds_per_iteration=bt, ratio_vs_bare=fw / bt,
    )
    print(f"\n{name} miso {size}: {fw * 1e3:.3f} ms/iteration, bare torch {bt * 1e3:.3f} ms, "
          f"ratio {fw / bt:.2f}")
