"""Rate-splitting stream layouts and the sample-average (SAA) data a solver sees.

Hierarchical rate splitting (Cerna Loli & Clerckx, "Meta-learning for large-scale H-RSMA, ISAC and BD-RIS",
section IV; SCENARIOS.md section 3) sends one global common stream ``s_c``, one group common stream ``s_cg`` per
user group and one private stream ``s_k`` per user. The precoder ``P`` has one column per stream, in the order

    [p_c]  [p_c1 .. p_cG]  [p_1 .. p_K]

where a scheme keeps only its streams: ``hrsma`` all three kinds, ``rsma`` (one layer) the global common and the
privates, ``sdma`` the privates only. :class:`RsmaLayout` maps streams to columns; :class:`SaaData` is what a
solver of an SAA-based scenario (``hrsma``, ``isac``) receives besides the variables.

Channel convention (as every wbench scenario): row ``k`` of ``H`` is ``h_k``, so the gains are
``H.conj() @ P`` with entry ``[k, j] = h_k^H p_j``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCHEMES = ("hrsma", "rsma", "sdma")


@dataclass(frozen=True)
class RsmaLayout:
    """Which precoder column carries which stream, for ``scheme`` and the users' group indices ``groups``."""

    scheme: str
    #: Group index ``0 .. G-1`` of each user, shape ``(K,)``.
    groups: np.ndarray

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, not {self.scheme!r}")
        g = np.asarray(self.groups)
        if g.ndim != 1 or g.size == 0 or np.any(g < 0):
            raise ValueError("groups must be a non-empty vector of non-negative group indices")
        object.__setattr__(self, "groups", g.astype(int))

    @property
    def K(self) -> int:
        return int(self.groups.size)

    @property
    def G(self) -> int:
        return int(self.groups.max()) + 1

    @property
    def has_common(self) -> bool:
        return self.scheme in ("hrsma", "rsma")

    @property
    def has_group_commons(self) -> bool:
        return self.scheme == "hrsma"

    @property
    def common(self) -> int | None:
        """Column of ``p_c`` (``None`` when the scheme has no global common stream)."""
        return 0 if self.has_common else None

    def group_common(self, g: int) -> int | None:
        """Column of ``p_cg`` for group ``g`` (``None`` unless the scheme is ``hrsma``)."""
        return (1 + g) if self.has_group_commons else None

    @property
    def first_private(self) -> int:
        return int(self.has_common) + (self.G if self.has_group_commons else 0)

    def private(self, k: int) -> int:
        """Column of ``p_k``."""
        return self.first_private + k

    @property
    def n_streams(self) -> int:
        return self.first_private + self.K


@dataclass(frozen=True)
class SaaData:
    """The sample-average problem a solver sees for one CSIT realisation: ``M`` channel draws consistent with
    the estimate (never the held-out draws the harness scores on), the stream layout and the budget.

    ``H[m]`` is draw ``m`` with rows ``h_k`` (shape ``(M, K, Nt)``); ``power`` is ``P_t`` (``tr(P P^H) <=
    power``), ``sigma2`` the noise variance, ``R_th`` the per-user QoS target in bit/s/Hz (0: none)."""

    H: np.ndarray
    layout: RsmaLayout
    power: float
    sigma2: float = 1.0
    R_th: float = 0.0

    @property
    def M(self) -> int:
        return int(self.H.shape[0])

    @property
    def Nt(self) -> int:
        return int(self.H.shape[2])
