"""Cascaded channels of several active STAR-RISs on a line, with second-order reflections (seed 003).

Javadi, Farhadi, Robat Mili, Jorswieck, Al-Dhahir, "Meta-learning for resource allocation in uplink
multi-active STAR-RIS-aided NOMA system", eq. (10) as corrected in SCENARIOS.md section 7.

Indexing (0-based here, ``n = 1..N`` in the paper): RIS ``n`` is at ``20 (N - n)`` m from the BS on a line,
so RIS 0 is the *farthest* and RIS ``N - 1`` the closest (the paper's ``d_1 > ... > d_N``). Arrays:

* ``F`` ``(N, N_BS, M)``: RIS ``n`` to the BS (the paper's ``F_{n,BS}^H``);
* ``G`` ``(N, N, M, M)``: ``G[n, n']`` RIS ``n`` to RIS ``n'`` (only ``n < n'`` is used: a signal leaves a
  farther RIS towards a closer one);
* ``f`` ``(K, M)``: user ``k`` to its RIS.

With the RIS coefficients ``c[s, n] = sqrt(delta^s_n alpha^s_n) e^{j theta^s_n}`` (``s = 0`` reflection,
``s = 1`` transmission; ``alpha^t = 1 - alpha^r``), the *route* of RIS ``n`` to the BS is

    A_n = F_n + sum_{n' > n} F_{n'} diag(c[s2, n']) G[n, n']      (second order; A_n = F_n without it)

(``s2`` the side the second RIS uses, reflection by default) and user ``k`` of RIS ``n`` on side ``s_k`` has
``h_k = A_n diag(c[s_k, n]) f_k`` (eq. (10) with its two coefficient matrices swapped back: the user's own RIS
acts first). An element's amplifier noise leaves it on both outputs, so RIS ``n`` adds noise of covariance
``sigma_r^2 A_n diag(|c[0, n]|^2 + |c[1, n]|^2) A_n^H`` at the BS (:func:`ris_noise_covariance`).

Every function takes ``lib`` (``numpy`` or ``torch``) and computes the same expression in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .pathloss import path_loss
from .rayleigh import cn

#: Spacing of the RISs on their line and the BS-to-closest-RIS distance (m); users lie within
#: ``[USER_MIN, USER_MAX]`` m of their RIS (choices: the paper gives no geometry).
RIS_SPACING = 20.0
USER_MIN = 1.0
USER_MAX = 5.0
#: Path loss ``C0 d^-2.2`` with ``C0 = -30 dB`` (choices).
C0_DB = -30.0
PL_EXPONENT = 2.2


@dataclass(frozen=True)
class StarLayout:
    """Which RIS and side each user has (fixed by geometry: a user is drawn next to its RIS)."""

    n_ris: int
    assoc: tuple[int, ...]  # RIS of user k
    side: tuple[int, ...]  # 0 reflection, 1 transmission

    @classmethod
    def even(cls, n_ris: int, k: int, sides: str = "split") -> "StarLayout":
        """``K / N`` consecutive users per RIS; ``sides=split``: the first ``ceil(K_n / 2)`` of each RIS on the
        reflection side and the rest on the transmission side; ``r`` / ``t``: all on one side."""
        per = k // n_ris
        assoc = tuple(i // per for i in range(k))
        if sides == "r":
            side = (0,) * k
        elif sides == "t":
            side = (1,) * k
        else:
            half = -(-per // 2)
            side = tuple(0 if (i % per) < half else 1 for i in range(k))
        return cls(n_ris, assoc, side)

    def decoding_groups(self) -> list[list[int]]:
        """Users by RIS in decoding order: the closest RIS (``N - 1``) first, the farthest last."""
        return [[k for k, n in enumerate(self.assoc) if n == r] for r in range(self.n_ris - 1, -1, -1)]


def ris_bs_distance(n_ris: int) -> np.ndarray:
    """``20 (N - n)`` m for ``n = 0..N-1``."""
    return RIS_SPACING * (n_ris - np.arange(n_ris, dtype=np.float64))


def draw_star(rng: np.random.Generator, n_bs: int, n_ris: int, m: int, k: int) -> dict[str, np.ndarray]:
    """Small-scale fading ``CN(0, 1)`` of ``F``, ``G``, ``f`` and the user-to-RIS distances (uniform in
    ``[USER_MIN, USER_MAX]`` m; only distances enter the model)."""
    return {
        "F": cn(rng, (n_ris, n_bs, m)),
        "G": cn(rng, (n_ris, n_ris, m, m)),
        "f": cn(rng, (k, m)),
        "d_user": rng.uniform(USER_MIN, USER_MAX, k),
    }


def large_scale(n_ris: int, d_user: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Path-loss power gains ``(PL_F (N,), PL_G (N, N), PL_f (K,))`` (``PL_G`` is 1 on the diagonal, unused)."""
    def pl(d: Any) -> Any:
        return path_loss(d, C0_DB, 1.0, PL_EXPONENT)
    d_bs = ris_bs_distance(n_ris)
    idx = np.arange(n_ris)
    d_rr = RIS_SPACING * np.abs(idx[:, None] - idx[None, :]).astype(np.float64)
    pl_g = np.where(d_rr > 0, pl(np.where(d_rr > 0, d_rr, 1.0)), 1.0)
    return pl(d_bs), pl_g, pl(np.asarray(d_user, dtype=np.float64))


def coefficients(lib: Any, delta: Any, alpha: Any, theta: Any) -> Any:
    """``c[s, n, m] = sqrt(delta[s, n, m] alpha^s[n, m]) theta[s, n, m]`` (``alpha^0 = alpha``,
    ``alpha^1 = 1 - alpha``; ``theta`` unit-modulus complex), shape ``(2, N, M)``."""
    split = lib.stack([alpha, 1.0 - alpha])
    amp = lib.sqrt(lib.clip(delta * split, 0.0, None)) if lib is np else (delta * split).clamp(min=1e-300).sqrt()
    return amp * theta


def routes(lib: Any, F: Any, G: Any, c: Any, second_order: bool, second_side: int) -> Any:
    """``A_n`` for every RIS, ``(N, N_BS, M)`` (module docstring)."""
    n_ris = F.shape[0]
    out = []
    for n in range(n_ris):
        a = F[n]
        if second_order:
            for n2 in range(n + 1, n_ris):
                a = a + (F[n2] * c[second_side, n2][None, :]) @ G[n, n2]
        out.append(a)
    return lib.stack(out)


def user_channels(lib: Any, A: Any, c: Any, f: Any, layout: StarLayout) -> Any:
    """``h_k = A_{n_k} diag(c[s_k, n_k]) f_k`` for every user, ``(K, N_BS)``."""
    assoc, side = list(layout.assoc), list(layout.side)
    ck = c[side, assoc]  # (K, M)
    return (A[assoc] @ (ck * f)[:, :, None])[:, :, 0]


def ris_noise_covariance(lib: Any, A: Any, c: Any) -> Any:
    """``sum_n A_n diag(|c[0, n]|^2 + |c[1, n]|^2) A_n^H`` ``(N_BS, N_BS)``: the BS covariance of unit-power
    amplifier noise at every element (scale by ``sigma_r^2``)."""
    gain = (c.real ** 2 + c.imag ** 2).sum(0)  # (N, M)
    return lib.einsum("nbm,nm,ncm->bc", A, gain.to(A.dtype) if lib is not np else gain, A.conj())
