"""R-WMMSE vs WMMSE: time per iteration as the number of BS antennas grows (Nt = 16, 64, 256; K = 8).

Run: ``python -m pytest benchmarks/test_bench_rwmmse.py``. 64 channels at 20 dB from MRT, 20 iterations of
each method (``tol=0``), one BLAS thread, through the public stacked iterations (no trace). R-WMMSE's time
includes forming the Gram matrix and ``V = H^T X`` (both linear in ``Nt``). Both must reach the same WSR
(they follow the same iterates from MRT, which lies in the channel's row span), which is checked; timings are
only reported (``extra_info["ms_per_iteration"]``), never asserted.
"""

from __future__ import annotations

import os

os.environ.setdefault("WBENCH_LOAD_PLUGINS", "")

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from wbench.solvers.wmmse.rwmmse import rwmmse_stack
from wbench.solvers.wmmse.wmmse import wmmse_stack

N, K, ITERS, SNR_DB = 64, 8, 20, 20.0
_WSR: dict[int, dict[str, np.ndarray]] = {}


def _instances(nt: int):
    rng = np.random.default_rng(nt)
    H = (rng.standard_normal((N, K, nt)) + 1j * rng.standard_normal((N, K, nt))) / np.sqrt(2)
    power = np.full(N, 10 ** (SNR_DB / 10))
    V0 = H.transpose(0, 2, 1).copy()  # MRT at full power
    V0 *= np.sqrt(power / np.sum(np.abs(V0) ** 2, axis=(1, 2)))[:, None, None]
    return H, np.ones((N, K)), power, np.ones(N), V0


@pytest.mark.parametrize("nt", [16, 64, 256])
@pytest.mark.parametrize("method", ["wmmse", "r-wmmse"])
def test_time_per_iteration(benchmark, method, nt):
    args = _instances(nt)
    run = wmmse_stack if method == "wmmse" else rwmmse_stack

    def once():
        with threadpool_limits(1):
            return run(*args, ITERS, 0.0)

    V, wsr, iters = benchmark.pedantic(once, rounds=3, iterations=1)
    assert np.all(iters == ITERS)
    benchmark.extra_info["ms_per_iteration"] = 1e3 * benchmark.stats.stats.mean / ITERS
    benchmark.extra_info["mean_wsr"] = float(wsr.mean())
    _WSR.setdefault(nt, {})[method] = wsr
    if len(_WSR[nt]) == 2:
        np.testing.assert_allclose(_WSR[nt]["wmmse"], _WSR[nt]["r-wmmse"], rtol=1e-8)
