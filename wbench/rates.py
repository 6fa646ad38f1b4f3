"""Achievable rates of linear precoding with single-antenna receivers: the one implementation of the formula.

With ``gains[k, j] = h_k^H v_j`` (the effective channel of user ``k`` times precoder column ``j``):

    SINR_k = |g_kk|^2 / (sum_{j != k} |g_kj|^2 + sigma2),     WSR = sum_k alpha_k log2(1 + SINR_k)

(M. Xia, D. Gunduz, "Meta-learning based beamforming design for MISO downlink" (seed 001), eqs. (2)-(3);
Cerna Loli & Clerckx (seed 000), eq. (30), with the effective channel ``h_k^H Phi G``). The interference is
summed over ``j != k`` directly (not as the row total minus the signal, which cancels at high SINR) and the
logarithm is ``log1p(SINR) / ln 2`` (exact for small SINR).

Every evaluation of the formula in wbench goes through here: NumPy for a single ``K x K`` gain matrix
(:func:`weighted_sum_rate`, the authoritative score) or a stack ``(..., K, K)``
(:func:`weighted_sum_rate_stack`, used by the vectorised WMMSE, together with :func:`sinr_parts`), and
torch, differentiable, for either (:func:`weighted_sum_rate_torch`, :func:`sinr_parts_torch`). The torch
and NumPy versions are the same expression, so they cannot drift.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_LN2 = math.log(2.0)


def sinr_parts(gains: np.ndarray, sigma2: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """``(signal, interference + noise)``, each ``(..., K)``, from gains ``(..., K, K)``.

    ``sigma2`` is a scalar, one value per matrix of the stack (shape ``gains.shape[:-2]``), or one value per
    user (shape ``gains.shape[:-1]``, e.g. when the power of fixed streams acts as extra noise).
    """
    g2 = gains.real**2 + gains.imag**2
    signal = np.diagonal(g2, axis1=-2, axis2=-1)
    off = g2 * (1.0 - np.eye(g2.shape[-1]))
    s2 = np.asarray(sigma2, dtype=np.float64)
    noise_int = off.sum(axis=-1) + (s2 if s2.ndim == gains.ndim - 1 and s2.ndim > 0 else s2[..., None])
    return signal, noise_int


def weighted_sum_rate_stack(gains: np.ndarray, weights: np.ndarray | float,
                            sigma2: np.ndarray | float) -> np.ndarray:
    """WSR in bit/s/Hz of each matrix of a stack ``(..., K, K)``: an array of shape ``gains.shape[:-2]``.

    ``weights`` broadcasts against ``(..., K)``; ``sigma2`` as in :func:`sinr_parts`.
    """
    signal, noise_int = sinr_parts(np.asarray(gains), sigma2)
    return (weights * np.log1p(signal / noise_int)).sum(axis=-1) / _LN2


def weighted_sum_rate(gains: np.ndarray, weights: np.ndarray | float, sigma2: float) -> float:
    """WSR in bit/s/Hz from one ``K x K`` gain matrix."""
    return float(weighted_sum_rate_stack(gains, weights, sigma2))


def sinr_parts_torch(gains: Any, sigma2: Any) -> tuple[Any, Any]:
    """:func:`sinr_parts` on torch tensors (``sigma2`` a number or a tensor of shape ``gains.shape[:-2]``)."""
    import torch

    g2 = gains.real**2 + gains.imag**2
    signal = torch.diagonal(g2, dim1=-2, dim2=-1)
    eye = torch.eye(g2.shape[-1], dtype=g2.dtype, device=g2.device)
    noise_int = (g2 * (1.0 - eye)).sum(dim=-1)
    return signal, noise_int + (sigma2[..., None] if torch.is_tensor(sigma2) else sigma2)


def weighted_sum_rate_torch(gains: Any, weights: Any, sigma2: Any) -> Any:
    """The same as :func:`weighted_sum_rate_stack` on torch tensors (differentiable; smooth in the gains).

    A single ``K x K`` matrix gives a 0-d tensor.
    """
    import torch

    signal, noise_int = sinr_parts_torch(gains, sigma2)
    return (weights * torch.log1p(signal / noise_int)).sum(dim=-1) / _LN2
