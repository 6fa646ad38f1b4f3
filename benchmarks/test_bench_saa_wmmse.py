"""SAA-WMMSE: the QCQP in hand-written conic form (``conic``, the default backend), re-solved through cvxpy
Parameters (DPP) and rebuilt every iteration, and the time per iteration at the small ``hrsma`` config.

Run: ``python -m pytest benchmarks/test_bench_saa_wmmse.py``. Random SAA data (one estimate plus ``M`` error
draws, ``se2 = 0.5``, 20 dB, ``R_th = 0.25``), one BLAS thread.

* ``test_qcqp_solve``: one QCQP (the surrogate at a random start) at ``Nt = K = 4, G = 2, M = 50``, solved in
  conic form straight by Clarabel (``conic``), by the already-compiled cvxpy problem (``dpp``) or built and
  compiled afresh with constants (``rebuild``); the optima must agree (checked). ``extra_info`` holds the
  ratios of the medians to ``conic``'s.
* ``test_iteration_time``: a whole run at ``Nt = 8, K = 6, G = 2, M = 200`` to the default stopping rule;
  ``extra_info`` holds the iterations, the first iteration and the time per later iteration (default, conic,
  backend; with ``backend="cvxpy"`` the first iteration carries cvxpy's one-off DPP compilation). Timings are reported, never asserted.
"""

from __future__ import annotations

import os

os.environ.setdefault("WBENCH_LOAD_PLUGINS", "")

import time

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from wbench.rsma import RsmaLayout, SaaData
from wbench.solvers.convex.saa_wmmse import SaaQcqp, saa_wmmse, surrogate

SCHEMES = ("sdma", "rsma", "hrsma")
_MEDIANS: dict[str, dict[str, float]] = {}
_VALUES: dict[str, dict[str, float]] = {}


def _data(scheme: str, Nt: int, K: int, G: int, M: int, seed: int = 0) -> tuple[SaaData, np.ndarray]:
    rng = np.random.default_rng(seed)

    def cn(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)

    H = np.sqrt(0.5) * cn(K, Nt)[None] + np.sqrt(0.5) * cn(M, K, Nt)
    data = SaaData(H, RsmaLayout(scheme, np.arange(K) * G // K), 100.0, 1.0, 0.25)
    P0 = cn(Nt, data.layout.n_streams)
    return data, P0 * np.sqrt(data.power) / np.linalg.norm(P0)


@pytest.mark.parametrize("mode", ["conic", "dpp", "rebuild"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_qcqp_solve(benchmark, scheme, mode):
    data, P0 = _data(scheme, 4, 4, 2, 50)
    sur = surrogate(data, P0)
    args = (data.layout, data.Nt, data.power, data.R_th)
    if mode in ("conic", "dpp"):
        qcqp = SaaQcqp(*args, backend="conic" if mode == "conic" else "cvxpy")
        with threadpool_limits(1):
            qcqp.solve(sur)  # the one-off compilation, not timed

        def once():
            with threadpool_limits(1):
                return qcqp.solve(sur)
    else:
        def once():
            with threadpool_limits(1):
                return SaaQcqp(*args, parametric=False, backend="cvxpy").solve(sur)

    result = benchmark.pedantic(once, rounds=5, iterations=1, warmup_rounds=1)
    value = sur.value(result.P, data.layout, data.R_th, 100.0)
    _MEDIANS.setdefault(scheme, {})[mode] = benchmark.stats.stats.median
    _VALUES.setdefault(scheme, {})[mode] = value
    benchmark.extra_info["surrogate_value"] = value
    if mode != "conic" and "conic" in _VALUES[scheme]:
        assert value == pytest.approx(_VALUES[scheme]["conic"], rel=1e-7, abs=1e-7)
        benchmark.extra_info[f"{mode}_over_conic"] = _MEDIANS[scheme][mode] / _MEDIANS[scheme]["conic"]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_iteration_time(benchmark, scheme):
    data, P0 = _data(scheme, 8, 6, 2, 200)
    stamps: list[float] = []

    def once():
        stamps.clear()
        stamps.append(time.perf_counter())
        with threadpool_limits(1):
            return saa_wmmse(data, P0, on_iteration=lambda t, P: stamps.append(time.perf_counter()))

    P, trace = benchmark.pedantic(once, rounds=1, iterations=1)
    assert np.all(np.diff(trace.merit) >= -1e-6 * (np.abs(trace.merit).max() + 1))
    assert trace.deficit[-1] <= 1e-3
    steps = np.diff(stamps)
    benchmark.extra_info.update({
        "iterations": trace.iterations,
        "status": trace.status,
        "first_iteration_s": float(steps[0]),
        "ms_per_later_iteration": float(1e3 * steps[1:].mean()) if steps.size > 1 else None,
        "asr_start": trace.asr[0],
        "asr_end": trace.asr[-1],
    })
