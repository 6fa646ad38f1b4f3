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

import functools
from dataclasses import dataclass
from typing import Any

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
    #: ``isac`` (optional): the probing matrix ``A = sum_n a_n a_n^H`` (``(Nt, Nt)``) and the radar weight
    #: ``lambda_r``; the objective gains ``lambda_r tr(P^H A P)`` (SCENARIOS.md section 4).
    probing: np.ndarray | None = None
    radar_weight: float = 0.0

    @property
    def M(self) -> int:
        return int(self.H.shape[0])

    @property
    def Nt(self) -> int:
        return int(self.H.shape[2])


# -- rates (bit/s/Hz), NumPy float64 or torch, vectorised over draws -------------------------------------
def _is_torch(a: Any) -> bool:
    return type(a).__module__.startswith("torch")


def stage_masks(layout: RsmaLayout) -> dict[str, np.ndarray]:
    """Which columns' received powers make up each stage total of user ``k`` (rows ``k``, ``(K, S)`` 0/1).

    With SIC in the order ``s_c``, ``s_cg``, ``s_k`` (seed 000, eq. (17); SCENARIOS.md §3): ``c`` every stream
    (``Tc``), ``cg`` every stream but ``p_c`` (``Tcg``), ``p`` the privates and the *other* groups' commons
    (``Tp``), ``ip`` those without the user's own private (``Ip``). The noise is added to every total."""
    K, S = layout.K, layout.n_streams
    ones = np.ones((K, S))
    cg = ones.copy()
    if layout.has_common:
        cg[:, layout.common] = 0.0
    p = cg.copy()
    if layout.has_group_commons:
        for k, g in enumerate(layout.groups):
            p[k, layout.group_common(int(g))] = 0.0
    ip = p.copy()
    ip[np.arange(K), layout.first_private + np.arange(K)] = 0.0
    return {"c": ones, "cg": cg, "p": p, "ip": ip}


def received_powers(H: Any, P: Any) -> Any:
    """``|h_k^H p_j|^2`` for every draw, user and column: ``H`` ``(..., K, Nt)`` (rows ``h_k``), ``P``
    ``(Nt, S)``; result ``(..., K, S)`` (NumPy or torch, as given)."""
    if _is_torch(P):
        import torch

        A = H @ torch.conj_physical(P)  # as below: conjugating the small P, not the draws (a lazy H.conj()
        # is materialised by the matmul; a lazy P.conj() would leave the conjugate bit on the gradient)
        return A.real.square() + A.imag.square()
    A = H @ P.conj()  # conj(h_k^H p_j): the same modulus, without copying the (large) draws conjugated
    return A.real ** 2 + A.imag ** 2


def stage_rates(H: Any, P: Any, layout: RsmaLayout, sigma2: float = 1.0) -> tuple[Any, Any, Any]:
    """Per draw and user, ``(R_c, R_cg, R_p)`` in bit/s/Hz (each ``(..., K)``): the rates at which user ``k``
    (group ``g``) decodes ``s_c``, its group's ``s_cg`` and its ``s_k`` (seed 000, eq. (17)).

    Stable form (SCENARIOS.md §3): ``R_c = log2(Tc / Tcg)``, ``R_cg = log2(Tcg / Tp)``, ``R_p = log2(Tp / Ip)``
    with every total summed from its non-negative terms (:func:`stage_masks`), never by subtraction, so a
    dominant term cannot cancel a small interference. A stream the scheme lacks has rate 0."""
    G = received_powers(H, P)
    m = stage_masks(layout)
    if _is_torch(G):
        import torch

        masks = torch.as_tensor(np.stack([m["c"], m["cg"], m["p"], m["ip"]]), dtype=G.dtype, device=G.device)
        totals = torch.einsum("...ks,tks->t...k", G, masks) + sigma2
        log2, zeros = torch.log2, torch.zeros_like
    else:
        totals = np.einsum("...ks,tks->t...k", G, np.stack([m["c"], m["cg"], m["p"], m["ip"]])) + sigma2
        log2, zeros = np.log2, np.zeros_like

    def total(key: str) -> Any:
        return totals[("c", "cg", "p", "ip").index(key)]
    Tcg, Tp, Ip = total("cg"), total("p"), total("ip")
    R_p = log2(Tp / Ip)
    R_c = log2(total("c") / Tcg) if layout.has_common else zeros(R_p)
    R_cg = log2(Tcg / Tp) if layout.has_group_commons else zeros(R_p)
    return R_c, R_cg, R_p


def group_matrix(layout: RsmaLayout) -> np.ndarray:
    """``(G, K)`` 0/1: entry ``[g, k]`` is 1 when user ``k`` is in group ``g``."""
    return (layout.groups[None, :] == np.arange(layout.G)[:, None]).astype(np.float64)


def saa_rates(R_c: Any, R_cg: Any, R_p: Any, layout: RsmaLayout) -> tuple[Any, Any, Any]:
    """The sample-average rates of seed 000 eq. (19)/(21) from per-draw rates ``(M, K)``: the global common rate
    ``min_k mean_m R_ck`` (scalar), the group common rates ``min_{k in g} mean_m R_cgk`` (``(G,)``) and the
    private rates ``mean_m R_pk`` (``(K,)``); 0 for streams the scheme lacks."""
    c, cg, p = R_c.mean(0), R_cg.mean(0), R_p.mean(0)
    member = group_matrix(layout) > 0
    if _is_torch(p):
        import torch

        mask = torch.as_tensor(member, device=p.device)
        inf = torch.tensor(float("inf"), dtype=p.dtype, device=p.device)
        zero = p.new_zeros(())
        Rc = c.min() if layout.has_common else zero
        Rcg = (torch.where(mask, cg[None, :], inf).amin(-1) if layout.has_group_commons
               else p.new_zeros(layout.G))
        return Rc, Rcg, p
    Rc = float(c.min()) if layout.has_common else 0.0
    Rcg = (np.where(member, cg[None, :], np.inf).min(-1) if layout.has_group_commons else np.zeros(layout.G))
    return Rc, Rcg, p


def asr(Rc: Any, Rcg: Any, Rp: Any) -> Any:
    """Average sum rate ``R_c + sum_g R_cg + sum_k R_pk`` (seed 000, eq. (19)) from :func:`saa_rates`."""
    return Rc + Rcg.sum() + Rp.sum()


def saa_asr(H: Any, P: Any, layout: RsmaLayout, sigma2: float = 1.0) -> Any:
    """The ASR of precoder ``P`` over the draws ``H`` ``(M, K, Nt)``: sample-average rates, summed."""
    return asr(*saa_rates(*stage_rates(H, P, layout, sigma2), layout))


def _min_weights(values: np.ndarray) -> np.ndarray:
    """Subgradient weights of ``values.min()``: split evenly over the ties (as torch's ``min``/``amin``)."""
    hit = (values == values.min()).astype(np.float64)
    return hit / hit.sum()


@functools.lru_cache(maxsize=64)
def _user_masks(scheme: str, groups: tuple[int, ...]) -> np.ndarray:
    """:func:`stage_masks` as one ``(K, S, 4)`` array, stages ``c, cg, p, ip`` last (cached per layout)."""
    m = stage_masks(RsmaLayout(scheme, np.asarray(groups)))
    out = np.ascontiguousarray(np.stack([m["c"], m["cg"], m["p"], m["ip"]], axis=-1))
    out.flags.writeable = False
    return out


def saa_asr_and_grad(H: np.ndarray, P: np.ndarray, layout: RsmaLayout, sigma2: float = 1.0
                     ) -> tuple[float, np.ndarray]:
    """The ASR of :func:`saa_asr` (NumPy) and its gradient in ``P``, in torch's convention for a real function
    of a complex variable (``dASR/dRe P + i dASR/dIm P``), written out by hand: the same value and gradient
    as torch autograd through :func:`stage_rates`, :func:`saa_rates` and :func:`asr` (tested), the minima's
    ties split evenly as torch does, without autograd's per-operation overhead, which dominates at small
    sizes (``multistart`` and ``manifold`` evaluate it thousands of times per run).

    Chain rule: with ``A = H conj(P)`` (``(M, K, S)``, as :func:`received_powers`) and ``G = |A|^2``, the
    rates are ``log2`` of ratios of the stage totals ``T_t = sum_s G_s masks_ts + sigma2``
    (:func:`stage_masks`; sums of non-negative terms as in :func:`stage_rates`), so ``dASR/dT_t =
    +-w / (M ln 2 T_t)`` with ``w`` the weight of a user's mean rate in the ASR (1 for a private rate, the
    minimum's subgradient for a common rate), ``dASR/dG_s = sum_t dASR/dT_t masks_ts`` and
    ``grad = 2 sum_{m,k} h_mk (dASR/dG)_mk conj(A_mk)``."""
    M, K, nt = H.shape
    Hf = H.reshape(M * K, nt)
    A = (Hf @ P.conj()).reshape(M, K, -1)
    G = A.real ** 2 + A.imag ** 2
    masks = _user_masks(layout.scheme, tuple(layout.groups.tolist()))  # (K, S, 4)
    T = np.matmul(G.transpose(1, 0, 2), masks) + sigma2  # (K, M, 4): Tc, Tcg, Tp, Ip per user and draw
    # the weight of log2(T_t) / M in the ASR, per user and stage
    w = np.zeros((K, 4))
    w[:, 2] += 1.0
    w[:, 3] -= 1.0
    Rp = np.log2(T[..., 2] / T[..., 3]).mean(1)
    value = float(Rp.sum())
    if layout.has_common:
        Rc = np.log2(T[..., 0] / T[..., 1]).mean(1)
        value += float(Rc.min())
        wc = _min_weights(Rc)
        w[:, 0] += wc
        w[:, 1] -= wc
    if layout.has_group_commons:
        Rcg = np.log2(T[..., 1] / T[..., 2]).mean(1)
        wg = np.zeros(K)
        for g in range(layout.G):
            users = np.flatnonzero(layout.groups == g)
            if users.size == 0:  # as saa_rates: the minimum over no user is +inf
                value = np.inf
                continue
            value += float(Rcg[users].min())
            wg[users] = _min_weights(Rcg[users])
        w[:, 1] += wg
        w[:, 2] -= wg
    dT = w[:, None, :] / (M * np.log(2.0) * T)  # (K, M, 4)
    dG = np.matmul(dT, masks.transpose(0, 2, 1)).transpose(1, 0, 2)  # (M, K, S)
    grad = 2.0 * (Hf.T @ (dG * A.conj()).reshape(M * K, -1))
    return value, grad


def qos_margin(Rc: Any, Rcg: Any, Rp: Any, layout: RsmaLayout, R_th: float) -> Any:
    """``R_c - sum_g (sum_{k in g} (R_th - R_pk)_+ - R_cg)_+``: non-negative exactly when some split of the
    common rates lifts every user to ``R_th`` (then Algorithm 2 of seed 000 does; SCENARIOS.md §3)."""
    short = R_th - Rp
    if _is_torch(Rp):
        import torch

        gm = torch.as_tensor(group_matrix(layout), dtype=Rp.dtype, device=Rp.device)
        return Rc - (gm @ short.clamp(min=0.0) - Rcg).clamp(min=0.0).sum()
    return float(Rc - np.sum(np.maximum(group_matrix(layout) @ np.maximum(short, 0.0) - Rcg, 0.0)))


def qos_shortfall(Rc: Any, Rcg: Any, Rp: Any, layout: RsmaLayout, R_th: float) -> Any:
    """``(sum_g (sum_{k in g} (R_th - R_pk)_+ - R_cg)_+ - R_c)_+``: the total rate by which the users stay
    below ``R_th`` after Algorithm 2 (independent of the user order); times ``lambda`` it is the QoS term of
    the meta-loss, seed 000 eq. (22) (SCENARIOS.md §3)."""
    m = qos_margin(Rc, Rcg, Rp, layout, R_th)
    return (-m).clamp(min=0.0) if _is_torch(m) else max(0.0, -m)


def allocate_common_rates(Rc: float, Rcg: np.ndarray, Rp: np.ndarray, layout: RsmaLayout,
                          R_th: float | np.ndarray) -> np.ndarray:
    """Algorithm 2 of seed 000: share the common rates among the users to meet the QoS targets ``R_th``.

    Start from the private rates. If some user is below target: for each group in order, hand its group
    common rate to the group's users still below target, in user order, each lifted exactly to target; the
    first user that can only be partly served gets what is left and the loop ``break`` s (lines 6-14);
    a leftover is split equally over all ``K_g`` users of the group (line 16), including users already at
    target. Then, if some user is still below target, the global common rate likewise over all users in
    order (lines 19-30), a leftover split over all ``K``; otherwise the global common rate is split equally
    over all ``K`` (line 32). Nobody below target at the start: every common rate is split equally (lines
    34-36). Returns ``R_alloc`` (``(K,)``); ``sum(R_alloc) = R_c + sum_g R_cg + sum_k R_pk``.
    """
    K = layout.K
    th = np.broadcast_to(np.asarray(R_th, dtype=np.float64), (K,))
    alloc = np.array(Rp, dtype=np.float64, copy=True)
    Rcg = np.broadcast_to(np.asarray(Rcg, dtype=np.float64), (layout.G,))
    members = [np.flatnonzero(layout.groups == g) for g in range(layout.G)]

    def share(avail: float, users: np.ndarray) -> float:
        for k in users:
            need = th[k] - alloc[k]
            if need > 0:
                if avail > need:
                    avail -= need
                    alloc[k] += need
                else:
                    alloc[k] += avail
                    avail = 0.0
                    break
        return avail

    if np.any(alloc - th < 0):
        for g, users in enumerate(members):
            avail = share(float(Rcg[g]), users)
            if avail > 0 and users.size:
                alloc[users] += avail / users.size
        if np.any(alloc - th < 0):
            avail = share(float(Rc), np.arange(K))
            if avail > 0:
                alloc += avail / K
        else:
            alloc += float(Rc) / K
    else:
        for g, users in enumerate(members):
            if users.size:
                alloc[users] += float(Rcg[g]) / users.size
        alloc += float(Rc) / K
    return alloc
