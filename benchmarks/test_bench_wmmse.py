"""WMMSE speed: the batched path against a plain per-channel loop (1000 channels, 4x4, 20 dB).

Run: ``python -m pytest benchmarks/test_bench_wmmse.py``. Budget ``max_iter=100, tol=1e-4, starts=1,
init=mrt``; one BLAS thread for both. The reference below is the algorithm of
:mod:`wbench.solvers.wmmse.wmmse` written the obvious way, one channel at a time (bisection on ``mu`` with an
upper bracket found by doubling); both must give the same mean WSR, which is checked, while timings are
only reported (``extra_info``), never asserted.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("WBENCH_LOAD_PLUGINS", "")

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from wbench.channels.channelset import realisation_rng
from wbench.scenarios.miso import Miso, MisoProblem, wsr
from wbench.solver import RunContext
from wbench.solvers.wmmse.wmmse import Wmmse

N, OPTIONS = 1000, {"max_iter": 100, "tol": 1e-4, "starts": 1, "init": "mrt"}
EPS = np.finfo(float).eps


def reference_wmmse(prob: MisoProblem, max_iter: int, tol: float) -> np.ndarray:
    """Plain WMMSE (Shi et al. 2011) on one channel from MRT; see the solver module for the equations."""
    H, alpha, P, s2 = prob.H, prob.weights, prob.power, prob.sigma2
    nt, k = H.shape[1], H.shape[0]
    V = prob.initial("mrt")["V"]
    rate = wsr(H, V, alpha, s2)
    for _ in range(max_iter):
        G = H.conj() @ V  # G[k, j] = h_k^H v_j
        g2 = np.abs(G) ** 2
        interference = g2.sum(axis=1) - np.diag(g2) + s2
        total = interference + np.diag(g2)
        u = np.diag(G) / total
        w = total / interference
        A = np.zeros((nt, nt), dtype=complex)
        B = np.zeros((nt, k), dtype=complex)
        for j in range(k):
            A += alpha[j] * w[j] * abs(u[j]) ** 2 * np.outer(H[j], H[j].conj())
            B[:, j] = alpha[j] * w[j] * u[j] * H[j]
        lam, U = np.linalg.eigh(A)
        C = U.conj().T @ B
        d = np.sum(np.abs(C) ** 2, axis=1)
        lam = np.where(lam <= lam.max() * nt * EPS, 0.0, np.maximum(lam, 0.0))
        d = np.where((lam == 0) & (d <= (1e3 * EPS * nt) ** 2 * d.sum()), 0.0, d)

        d_on, lam_on = d[d > 0], lam[d > 0]

        def power(mu: float) -> float:
            x = 1.0 / (lam_on + mu)
            return float(d_on @ (x * x))

        if np.all((lam > 0) | (d == 0)) and power(0.0) <= P:
            mu = 0.0
        else:
            lo, hi = 0.0, 1.0
            while power(hi) > P:
                lo, hi = hi, 2 * hi
            while hi - lo > 1e-13 * hi:
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if power(mid) > P else (lo, mid)
            mu = hi
        inv = np.divide(1.0, lam + mu, out=np.zeros_like(lam), where=(lam + mu) > 0)
        V = U @ (C * inv[:, None])
        pw = np.sum(np.abs(V) ** 2)
        if mu > 0 or pw > P:
            V *= np.sqrt(P / pw)
        new = wsr(H, V, alpha, s2)
        done = abs(new - rate) <= tol
        rate = new
        if done:
            break
    return V


@pytest.fixture(scope="module")
def problems() -> list[MisoProblem]:
    sc = Miso()
    params = sc.resolve_params({"Nt": 4, "K": 4, "snr_db": 20.0})
    return [sc.problem(params, sc.draw(params, realisation_rng(0, "miso", i))) for i in range(N)]


def run_batched(problems: list[MisoProblem]) -> float:
    ctxs = [RunContext(np.random.default_rng(i)) for i in range(len(problems))]
    with threadpool_limits(1):
        sols = Wmmse().solve_batch(problems, OPTIONS, ctxs)
    return float(np.mean([p.utility(s.x) for p, s in zip(problems, sols)]))


def run_loop(problems: list[MisoProblem]) -> float:
    with threadpool_limits(1):
        Vs = [reference_wmmse(p, OPTIONS["max_iter"], OPTIONS["tol"]) for p in problems]
    return float(np.mean([p.utility({"V": V}) for p, V in zip(problems, Vs)]))


def test_wmmse_batched(benchmark, problems):
    mean = benchmark.pedantic(run_batched, args=(problems,), rounds=3, iterations=1)
    benchmark.extra_info["mean_wsr"] = mean


def test_wmmse_loop_reference(benchmark, problems):
    mean = benchmark.pedantic(run_loop, args=(problems,), rounds=3, iterations=1)
    benchmark.extra_info["mean_wsr"] = mean


def test_wmmse_speedup_vs_loop(benchmark, problems):
    batched_mean = benchmark.pedantic(run_batched, args=(problems,), rounds=3, iterations=1)
    t0 = time.perf_counter()
    loop_mean = run_loop(problems)
    loop_s = time.perf_counter() - t0
    speedup = loop_s / benchmark.stats.stats.mean
    benchmark.extra_info.update(speedup_vs_loop=speedup, loop_seconds=loop_s, mean_wsr=batched_mean)
    print(f"\nWMMSE, {N} channels 4x4 at 20 dB: batched {benchmark.stats.stats.mean:.3f} s, "
          f"loop {loop_s:.3f} s, speedup {speedup:.1f}x; mean WSR {batched_mean:.6f} / {loop_mean:.6f}")
    assert batched_mean == pytest.approx(loop_mean, abs=1e-6)  # same algorithm: a correctness check
