"""``wbench.rates``: the one implementation of the weighted-sum-rate formula.

Oracles: a per-user loop over the received-signal model (signal power over interference plus noise, written
out independently), the stack form equal to the single form matrix by matrix, torch equal to NumPy, and the
regimes where a careless formula loses digits (interference far below the noise at high SINR; tiny SINR).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wbench.channels.rayleigh import cn
from wbench.rates import (sinr_parts, sinr_parts_torch, weighted_sum_rate, weighted_sum_rate_stack,
                          weighted_sum_rate_torch)


def loop_wsr(G: np.ndarray, w: np.ndarray, sigma2: float) -> float:
    total = 0.0
    for k in range(G.shape[0]):
        interference = sum(abs(G[k, j]) ** 2 for j in range(G.shape[1]) if j != k)
        total += w[k] * math.log2(1.0 + abs(G[k, k]) ** 2 / (interference + sigma2))
    return total


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 6), n=st.integers(1, 5),
       log_sigma2=st.floats(-4.0, 2.0))
def test_single_and_stack_forms_equal_the_received_signal_model(seed, k, n, log_sigma2):
    rng = np.random.default_rng(seed)
    G = cn(rng, (n, k, k))
    w = rng.uniform(0.1, 3.0, (n, k))
    sigma2 = 10.0 ** (log_sigma2 + rng.uniform(-1, 1, n))
    stack = weighted_sum_rate_stack(G, w, sigma2)
    assert stack.shape == (n,)
    for i in range(n):
        single = weighted_sum_rate(G[i], w[i], float(sigma2[i]))
        assert single == pytest.approx(loop_wsr(G[i], w[i], float(sigma2[i])), rel=1e-12)
        assert stack[i] == pytest.approx(single, rel=1e-14)
    # common weights and noise broadcast over the stack
    np.testing.assert_allclose(weighted_sum_rate_stack(G, w[0], 0.5),
                               [weighted_sum_rate(g, w[0], 0.5) for g in G], rtol=1e-14)


def test_torch_equals_numpy_single_and_stacked():
    import torch

    rng = np.random.default_rng(1)
    G, w, s2 = cn(rng, (3, 4, 4)), rng.uniform(0.5, 2, (3, 4)), rng.uniform(0.1, 1, 3)
    got = weighted_sum_rate_torch(torch.tensor(G), torch.tensor(w), torch.tensor(s2)).numpy()
    np.testing.assert_allclose(got, weighted_sum_rate_stack(G, w, s2), rtol=1e-14)
    one = weighted_sum_rate_torch(torch.tensor(G[0]), torch.tensor(w[0]), float(s2[0]))
    assert one.dim() == 0 and float(one) == pytest.approx(weighted_sum_rate(G[0], w[0], float(s2[0])), rel=1e-14)
    for a, b in zip(sinr_parts_torch(torch.tensor(G), torch.tensor(s2)), sinr_parts(G, s2)):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-14)


def test_interference_far_below_the_noise_and_tiny_sinr_keep_their_digits():
    """Diagonal gains (zero-forcing): the interference is exactly zero, so WSR = sum log2(1 + |g_kk|^2 / sigma2)
    even when sigma2 is 1e-20 of the signal (the row total minus the signal would leave round-off of the
    signal's size there); and an SINR of 1e-20 gives alpha SINR / ln 2, not 0 (log2(1 + x) would round it away)."""
    g = np.array([30.0, 2.0, 0.7]) * np.exp(1j * np.array([0.3, -1.0, 2.0]))
    sigma2 = 1e-20
    expected = float(np.sum(np.log2(np.abs(g) ** 2 / sigma2 + 1.0)))
    assert weighted_sum_rate(np.diag(g), 1.0, sigma2) == pytest.approx(expected, rel=1e-15)
    signal, noise_int = sinr_parts(np.diag(g), sigma2)
    np.testing.assert_array_equal(noise_int, sigma2)
    tiny = np.array([[1e-10]], dtype=complex)
    assert weighted_sum_rate(tiny, 2.0, 1.0) == pytest.approx(2.0 * 1e-20 / math.log(2.0), rel=1e-12)
