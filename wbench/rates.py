"""Achievable rates of linear precoding with single-antenna receivers, shared by the scenarios.

With ``gains[k, j] = h_k^H v_j`` (the effective channel of user ``k`` times precoder column ``j``):

    SINR_k = |g_kk|^2 / (sum_{j != k} |g_kj|^2 + sigma2),     WSR = sum_k alpha_k log2(1 + SINR_k)

(seed 001 eqs. (2)-(3); seed 000 eq. (30) with the effective channel ``h_k^H Phi G``). One formula for NumPy
(float64, the authoritative score) and one for torch (the differentiable loss), so the two cannot drift.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def weighted_sum_rate(gains: np.ndarray, weights: np.ndarray | float, sigma2: float) -> float:
    """WSR in bit/s/Hz from the ``K x K`` gain matrix."""
    g = np.abs(gains) ** 2
    signal = np.diag(g)
    interference = g.sum(axis=1) - signal
    return float(np.sum(weights * np.log2(1.0 + signal / (interference + sigma2))))


def weighted_sum_rate_torch(gains: Any, weights: Any, sigma2: float) -> Any:
    """The same as :func:`weighted_sum_rate` on torch tensors (differentiable)."""
    import torch

    g = gains.abs() ** 2
    signal = torch.diagonal(g)
    interference = g.sum(dim=1) - signal
    return (weights * torch.log2(1.0 + signal / (interference + sigma2))).sum()
