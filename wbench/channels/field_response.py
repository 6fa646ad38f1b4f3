"""Field-response channel of movable antennas (Zhu, Ma, Zhang, "Modeling and performance analysis for
movable antenna enabled wireless communication systems"), as used by seed 004 (Amhaz, Khisa, Elhattab, Assi,
Sharafeddine, "Enhancing CoMP-RSMA performance with movable antennas: a meta-learning optimization
framework", eqs. (1)-(5); SCENARIOS.md section 6).

Between BS ``n`` (``I`` fixed antennas at positions ``t_{n,i}``) and user ``k`` (one movable antenna at ``r_k``)
there are ``L`` transmit and ``Q`` receive paths. With positions in wavelengths,

    rho(p; theta, phi) = x cos(theta) sin(phi) + y sin(theta)                    (eqs. (1) and (4))
    f_k(r)  = [exp(j 2 pi rho(r; theta^r_q, phi^r_q))]_q              (Q,)       (eq. (3))
    G_{n,k} = [exp(j 2 pi rho(t_{n,i}; theta^t_l, phi^t_l))]_{l,i}    (L x I)    (eq. (2), stacked over i)
    h_{n,k}^H = f_k(r_k)^H Sigma_{n,k} G_{n,k}                        (1 x I)    (eq. (5))

``Sigma_{n,k}`` is the path-response matrix, ``Q x L`` (the paper writes ``L x Q``, which does not fit the
product). Only the phases of ``f_k`` depend on the antenna position (far field).

Choices where the paper is silent (SCENARIOS.md section 6): angles i.i.d. per link and path with
``sin(theta) ~ U(-1, 1)`` and ``phi ~ U(-pi/2, pi/2)``; ``Sigma`` diagonal (paired paths) with ``CN(0, g/L)``
entries when ``L = Q``, else i.i.d. ``CN(0, g/(L Q))``, so that ``E|[h_{n,k}]_i|^2 = g`` for every antenna and
position; BS antennas a ULA along x with spacing ``1/2`` wavelength centred on the BS.

The stacked effective channel of user ``k`` is the row ``a_k = [h_{1,k}^H, ..., h_{N,k}^H]`` (``N I`` entries), so
that the received gain of a precoder column ``p`` (stacked over the BSs) is ``a_k p``. :func:`effective_rows`
computes it in NumPy, :func:`effective_rows_torch` in torch (differentiable in the positions); both evaluate
the same expression.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def ula_positions(n_antennas: int, spacing: float = 0.5) -> np.ndarray:
    """``(I, 2)`` positions (in wavelengths) of a uniform linear array along x, centred on the origin."""
    x = (np.arange(n_antennas) - (n_antennas - 1) / 2.0) * spacing
    return np.stack([x, np.zeros(n_antennas)], axis=1)


def path_phase(pos: Any, theta: Any, phi: Any) -> Any:
    """``rho = x cos(theta) sin(phi) + y sin(theta)`` for positions ``(..., 2)`` against paths ``(P,)``:
    shape ``(..., P)`` (eqs. (1)/(4)); works on NumPy arrays and torch tensors alike."""
    lib = _lib(pos)
    return pos[..., 0:1] * (lib.cos(theta) * lib.sin(phi)) + pos[..., 1:2] * lib.sin(theta)


def _lib(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return np
    import torch

    return torch


@dataclass(frozen=True)
class FieldResponseDraw:
    """The position-independent parts of the channels of ``N`` BSs to ``K`` users (one realisation).

    Shapes: ``theta_t, phi_t`` ``(N, K, L)``; ``theta_r, phi_r`` ``(N, K, Q)``; ``sigma`` ``(N, K, Q, L)``
    complex; ``tx`` ``(I, 2)`` the BS antenna positions in wavelengths (the same array at every BS).
    """

    theta_t: np.ndarray
    phi_t: np.ndarray
    theta_r: np.ndarray
    phi_r: np.ndarray
    sigma: np.ndarray
    tx: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        """``(N, K, I, L, Q)``."""
        n, k, q, l_ = self.sigma.shape
        return n, k, self.tx.shape[0], l_, q

    def transmit_matrix(self) -> np.ndarray:
        """``G_{n,k}`` for every link: ``(N, K, L, I)``."""
        # rho[n, k, i, l] for antenna i and path l, then moved to (n, k, l, i)
        rho = path_phase(self.tx[None, None], self.theta_t[:, :, None, :], self.phi_t[:, :, None, :])
        return np.exp(2j * np.pi * np.swapaxes(rho, -1, -2))

    def sigma_g(self) -> np.ndarray:
        """``Sigma_{n,k} G_{n,k}``: ``(N, K, Q, I)``, the position-independent factor of ``h_{n,k}^H``."""
        return self.sigma @ self.transmit_matrix()


def draw_field_response(rng: np.random.Generator, n_bs: int, n_users: int, n_tx: int, n_paths_t: int,
                        n_paths_r: int, gain: np.ndarray, spacing: float = 0.5) -> FieldResponseDraw:
    """Angles and path responses of every link (the documented choices above); ``gain`` ``(N, K)`` is the
    average power gain ``g`` of each link (``E|[h_{n,k}]_i|^2 = g``)."""
    gain = np.broadcast_to(np.asarray(gain, dtype=np.float64), (n_bs, n_users))
    if np.any(gain < 0) or not np.all(np.isfinite(gain)):
        raise ValueError("field response: path gains must be finite and non-negative")
    shape_t = (n_bs, n_users, n_paths_t)
    shape_r = (n_bs, n_users, n_paths_r)
    theta_t = np.arcsin(rng.uniform(-1.0, 1.0, shape_t))
    phi_t = rng.uniform(-np.pi / 2, np.pi / 2, shape_t)
    theta_r = np.arcsin(rng.uniform(-1.0, 1.0, shape_r))
    phi_r = rng.uniform(-np.pi / 2, np.pi / 2, shape_r)
    z = (rng.standard_normal((n_bs, n_users, n_paths_r, n_paths_t))
         + 1j * rng.standard_normal((n_bs, n_users, n_paths_r, n_paths_t))) / np.sqrt(2.0)
    if n_paths_t == n_paths_r:
        z = z * np.eye(n_paths_t) * np.sqrt(1.0 / n_paths_t)  # paired paths: diagonal, CN(0, g/L)
    else:
        z = z * np.sqrt(1.0 / (n_paths_t * n_paths_r))
    sigma = z * np.sqrt(gain)[:, :, None, None]
    return FieldResponseDraw(theta_t, phi_t, theta_r, phi_r, sigma, ula_positions(n_tx, spacing))


def receive_vector(r: Any, theta_r: Any, phi_r: Any) -> Any:
    """``f_k(r_k)`` for every link: positions ``r`` ``(K, 2)``, angles ``(N, K, Q)`` -> ``(N, K, Q)``."""
    lib = _lib(r)
    rho = path_phase(r[None], theta_r, phi_r)
    return lib.exp(2j * np.pi * rho) if lib is np else lib.polar(lib.ones_like(rho), 2 * np.pi * rho)


def effective_rows(draw: FieldResponseDraw, r: np.ndarray | None = None) -> np.ndarray:
    """The stacked channels ``A`` ``(K, N I)`` with row ``k`` = ``[h_{1,k}^H, ..., h_{N,k}^H]`` at positions ``r``
    ``(K, 2)`` in wavelengths (``None``: every antenna at its reference point, the fixed-position channel)."""
    n, k, i, _, q = draw.shape
    r = np.zeros((k, 2)) if r is None else np.asarray(r, dtype=np.float64)
    if r.shape != (k, 2):
        raise ValueError(f"field response: positions have shape {r.shape}, expected {(k, 2)}")
    f = receive_vector(r, draw.theta_r, draw.phi_r)  # (N, K, Q)
    h = np.einsum("nkq,nkqi->kni", f.conj(), draw.sigma_g())
    return h.reshape(k, n * i)


def effective_rows_torch(draw: FieldResponseDraw, r: Any, sigma_g: Any | None = None) -> Any:
    """:func:`effective_rows` in torch, differentiable in ``r`` (a real ``(K, 2)`` tensor); ``sigma_g`` may pass
    ``draw.sigma_g()`` as a tensor already built (it does not depend on ``r``). complex128 for a float64 ``r``,
    complex64 for a float32 one."""
    import torch

    n, k, i, _, q = draw.shape
    cplx = torch.complex64 if r.dtype == torch.float32 else torch.complex128
    sg = torch.as_tensor(draw.sigma_g() if sigma_g is None else sigma_g, dtype=cplx, device=r.device)
    th = torch.as_tensor(draw.theta_r, dtype=r.dtype, device=r.device)
    ph = torch.as_tensor(draw.phi_r, dtype=r.dtype, device=r.device)
    f = receive_vector(r, th, ph)
    h = torch.einsum("nkq,nkqi->kni", f.conj(), sg)
    return h.reshape(k, n * i)
