"""SAA-WMMSE: sample-average WMMSE for (hierarchical) rate splitting under imperfect CSIT, one convex QCQP
per iteration, solved with cvxpy.

Method: H. Joudeh, B. Clerckx, "Sum-rate maximization for linearly precoded downlink multiuser MISO systems
with partial CSIT: a rate-splitting approach", IEEE Trans. Commun. 64(11), pp. 4847-4861, 2016 (ref. [13] of
seed 000: the rate-WMSE relationship averaged over the SAA draws and the alternating optimisation it gives,
one convex QCQP per iteration), extended to the H-RSMA streams of Cerna Loli & Clerckx, "Meta-learning for
large-scale H-RSMA, ISAC and BD-RIS", section IV (SCENARIOS.md section 3; that paper cites its cost,
``O(T (Nt K)^3.5)``, but never runs it). Equation numbers of ref. [13] are not quoted here: the derivation
below is self-contained and tested.

**Streams and stages** (:mod:`wbench.rsma`). User ``k`` of group ``g`` decodes, in turn, the global common
stream (stage ``c``, desired column ``p_c``), its group's common stream (stage ``cg``, ``p_cg``) and its private
stream (stage ``p``, ``p_k``); ``sdma`` has the stage ``p`` only, ``rsma`` the stages ``c`` and ``p``. Stage
``s`` of user ``k`` sees the total ``T_ks = sum_{j in A_ks} |h_k^H p_j|^2 + sigma2`` over the streams

* ``A_kc``: every stream;
* ``A_kcg``: every stream but ``p_c`` (already decoded);
* ``A_kp``: the privates and the *other* groups' commons (the own group's common is decoded),

its interference ``I_ks = T_ks - |h_k^H p_d|^2`` (summed without the desired term, not by subtraction) and the
rate ``R_ks = ln(T_ks / I_ks)`` (nats). The SAA rates (SCENARIOS.md section 3) are
``min_k mean_m R_kc``, ``min_{k in g} mean_m R_kcg`` and ``mean_m R_kp``; the ASR is their sum.

**The rate-WMSE relationship** (Joudeh & Clerckx 2016; Shi, Razaviyayn, Luo, He 2011 for one draw). With
the scalar equaliser ``g`` (estimate ``g y`` of the desired symbol) the MSE is
``e(g, P) = |g|^2 T(P) - 2 Re(g h^H p_d) + 1``; the MMSE equaliser ``g* = (h^H p_d)^* / T`` gives
``e* = I / T``, so ``R = -ln e*``. Since ``-ln e = max_{u > 0} (ln u - u e + 1)`` (attained at ``u = 1/e``),

    R(P) = max_{u, g} (ln u - u e(g, P) + 1)        (in nats: with log2 the "+1" and "u" do not match),

and for fixed ``(u, g)`` the bracket is a concave quadratic in ``P`` that lower-bounds ``R(P)`` everywhere
and equals it where ``(u, g)`` are the optimal ones, ``g = g*(P_cur)``, ``u = T/I`` (``= 1/e*``). Writing
``t = u |g|^2`` and averaging over the ``M`` draws, ``mean_m (ln u - u e + 1) = 1 - xi_ks(P)`` with the
augmented WMSE

    xi_ks(P) = sum_{j in A_ks} p_j^H Psi_ks p_j - 2 Re(f_ks^H p_d) + sigma2 t_bar + u_bar - v_bar,
    Psi_ks = mean_m t h h^H,  f_ks = mean_m u g^* h,  t_bar = mean t,  u_bar = mean u,  v_bar = mean ln u.

So ``1 - xi_ks(P) <= mean_m R_ks(P)`` for every ``P``, with equality at ``P_cur`` (tested). The constant
``u_bar - v_bar + sigma2 t_bar`` is exactly what makes the bound tight.

**The QCQP** of one iteration (Joudeh & Clerckx's, with H-RSMA's group commons; common-rate variables ``C``,
in nats):

    maximise   sum_k (1 - xi_kp) + sum_k C_k^c + sum_k C_k^g - rho sum_k s_k
    s.t.       sum_k C_k^c <= 1 - xi_kc               for every k,
               sum_{j in g} C_j^g <= 1 - xi_kcg        for every k in g,
               C_k^c + C_k^g + 1 - xi_kp + s_k >= R_th ln 2    (only when R_th > 0),
               C >= 0,  s >= 0,  ||P||_F^2 <= P_t.

**Probing term (``isac``, SCENARIOS.md section 4).** With ``SaaData.probing = A = sum_n a_n a_n^H`` and
``radar_weight = lambda_r`` the objective gains ``lambda_r tr(P^H A P)`` (bit/s/Hz; seed 000, eq. (23)). It is
convex in ``P``, so maximising it is not a convex step: the QCQP gets its linearisation at the current point,
``lambda_r (2 Re tr(P_cur^H A P) - tr(P_cur^H A P_cur))`` (times ln 2 in nats), a minorant tight at ``P_cur``
(the gap is ``lambda_r tr((P - P_cur)^H A (P - P_cur)) >= 0``); the merit ``ASR + lambda_r probing`` stays
non-decreasing (tested).

**Elastic QoS (choice).** The paper's hard QoS constraint makes the QCQP infeasible from a start that misses
the targets (SVD-MRT often does). The slack ``s`` with the exact penalty ``rho`` (option ``qos_penalty``,
default 100 per nat) keeps every QCQP feasible; where the targets can be met the optimum has ``s = 0`` once
``rho`` exceeds the QoS multipliers, and from a QoS-feasible point the iterates then stay QoS-feasible (the
current point, with ``s = 0``, is feasible for the next QCQP). Without
QoS there is no slack. The monotone quantity is the *merit* ``ASR - rho * deficit``, with ``deficit`` the
smallest total shortfall below ``R_th`` that any split of the common rates leaves (the closed form of
SCENARIOS.md section 3, Algorithm 2's penalty without ``lambda``); with no QoS, or once met, merit = ASR.

**Monotonicity.** Let ``v_t`` be the surrogate's optimum at iteration ``t`` (built at ``P_{t-1}``). For fixed
``P`` the best ``(C, s)`` hands every common rate out (``rho >= 1``), so the surrogate's value at ``P`` is
``sum_k (1 - xi_kp) + caps - rho * deficit`` on the surrogate rates, which is ``<= merit(P)`` (each surrogate
rate is a lower bound, the deficit is non-increasing in the rates) and ``= merit(P_{t-1})`` at ``P_{t-1}``.
Hence ``merit(P_{t-1}) <= v_t <= merit(P_t) <= v_{t+1}``: the surrogate optimum and the true SAA merit (the
ASR without QoS) are both non-decreasing, up to the conic solver's tolerance. A step whose merit falls by more
than ``1e-6`` relative (an inaccurate solve) is not taken: the last good point is returned.

**Conic form (default, ``backend="conic"``).** The QCQP below is written out once per layout in Clarabel's
conic form (:mod:`wbench.solvers.convex.saa_conic`: a fixed sparsity pattern, numpy fills its values each
iteration) and handed to Clarabel, then the same fallbacks. It solves the same problem as the cvxpy form (tested:
the same optimum) without cvxpy's compilation. Measured on one core for ``hrsma`` at the default config (``Nt, K,
G = 8, 6, 2``, ``M = 200``, 30 dB, ``se2 = 0.8``, QoS): about 0.1-0.15 CPU-s per iteration (Clarabel's
interior-point solve is most of it), 10-14 CPU-s for the 100 iterations of the cap, against about 5 CPU-s per
iteration through cvxpy (its parameter mapping and compilation; there the run also ended after 15 iterations when
an SCS fallback step lowered the merit).

**cvxpy form** (``backend="cvxpy"``). ``P = sqrt(P_t) X`` with ``||X||_F <= 1``, ``X`` a complex variable; each quadratic is
``cp.sum_squares(B_ks @ X[:, A_ks])`` with ``B_ks = sqrt(P_t) Lambda^{1/2} U^H`` from ``eigh(Psi_ks)`` (negative
round-off eigenvalues clipped to 0), so ``B^H B = P_t Psi``. The problem is built once per layout with cvxpy
Parameters (``B_ks``, ``f``, the constants: DPP, ``problem.is_dpp()`` is tested) and re-solved every iteration;
cvxpy then reuses its canonicalisation (``rebuild=True`` builds a fresh problem with constants every
iteration, for the benchmark). Conic solver Clarabel at its defaults; where it fails or ends non-optimal, Clarabel
again at tolerance 1e-7 (near a stream switching off it can close the gap to 1e-8 and then lose primal
feasibility, "InsufficientProgress"), then SCS (``eps 1e-8``); when all fail the run stops at its last good point.
At Clarabel's default gap the iterate is accurate to about 1e-5 relative (tested against WMMSE's exact step).

**Stopping.** Relative change of the surrogate optimum ``|v_t - v_{t-1}| <= tol |v_t|`` (``v_0`` = merit at
the start) or ``max_iter`` iterations.

**Size (choice).** The QCQP has up to ``3K`` second-order cones of dimension about ``2 Nt (K + G + 1)``; an
interior-point solve grows like ``(Nt K)^3.5``. What limits it in practice is cvxpy's one-off DPP compilation
of the ``3K`` parametrised products ``B_ks X``: measured on one core for ``hrsma`` (``M = 200``, QoS) it took
3-6 s and 0.55 GB at ``Nt, K = 8, 6``; 30 s and 3.6 GB at ``12, 8``; 61 s and 8.1 GB at ``16, 8``; at ``20, 10``
(``Nt K = 200``) it ran out of a 23 GB machine. A re-solve then costs 0.1-0.25 s, 1.1-1.5 s and 2.2 s.
Rebuilding every iteration (``dpp=false``) needs little memory (0.3 GB at ``Nt K = 200``) but recompiles each
time (6.5 s per iteration at ``16, 8``; 23 s at ``20, 10``). The solver therefore declines ``Nt K > max_size``
(default 100) with the reason; the conic backend keeps that cap, now for the interior-point cost (about 0.1 s a
solve at ``Nt K = 48``, growing as ``(Nt K)^3.5``). Other DPP forms did not lower the compilation's memory at ``Nt, K = 16, 8``: real
stacking, one stacked parameter ``[B_1; ..; B_R] @ X``, cvxpy's COO and SCIPY backends; the per-draw form
``sum_m t_m |h_m^H p|^2`` with the weights as parameters ran out of memory already at ``Nt, K = 8, 6``.

A start above the power budget is scaled onto it (choice). As in WMMSE, a stream with no power at the start stays
off (its equaliser, weight and hence its surrogate rate's slope vanish): start from a point that uses every
stream (``svd-mrt``, the default, does).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from ...hookspecs import hookimpl
from ...params import Param
from ...problem import Problem
from ...rsma import RsmaLayout, SaaData
from ...solver import RunContext, Solution, Solver
from .saa_conic import ConicQcqp

if TYPE_CHECKING:  # cvxpy is imported where the cvxpy backend is built: it costs ~0.8 s on every registry load
    import cvxpy as cp

LN2 = math.log(2.0)
STAGES = ("c", "cg", "p")
DEFAULT_MAX_SIZE = 100
BACKENDS = ("conic", "cvxpy")
_REJECT_RTOL = 1e-6  # relative fall of the merit beyond which a step is treated as a failed solve
_LOOSE = 1e-7
#: Clarabel at its defaults (1e-8); again at 1e-7 (near a stream switching off, Clarabel can reach 1e-8 in the gap
#: but lose primal feasibility in the last steps and end "InsufficientProgress"); then SCS.
_ATTEMPTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("CLARABEL", {}),
    ("CLARABEL", {"tol_gap_abs": _LOOSE, "tol_gap_rel": _LOOSE, "tol_feas": _LOOSE, "max_iter": 400}),
    ("SCS", {"eps_abs": 1e-8, "eps_rel": 1e-8, "max_iters": 20_000}),
)


# -- stages ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StageRows:
    """The decoding stages a scheme has: for each stage, the desired column of every user and which
    columns make up its total ``T`` (``mask[s][k, j]``; the desired column included)."""

    stages: tuple[str, ...]
    desired: dict[str, np.ndarray]
    mask: dict[str, np.ndarray]


def stage_rows(layout: RsmaLayout) -> StageRows:
    """The stages of ``layout.scheme`` and their stream sets ``A_ks`` (module docstring)."""
    K, S, groups = layout.K, layout.n_streams, layout.groups
    stages = tuple(s for s, on in zip(STAGES, (layout.has_common, layout.has_group_commons, True)) if on)
    private_cols = np.array([layout.private(k) for k in range(K)])
    desired: dict[str, np.ndarray] = {}
    mask: dict[str, np.ndarray] = {}
    everything = np.ones((K, S), dtype=bool)
    if "c" in stages:
        desired["c"] = np.full(K, layout.common, dtype=int)
        mask["c"] = everything.copy()
    if "cg" in stages:
        desired["cg"] = np.array([layout.group_common(int(g)) for g in groups])
        m = everything.copy()
        m[:, layout.common] = False
        mask["cg"] = m
    desired["p"] = private_cols
    m = np.zeros((K, S), dtype=bool)
    m[:, private_cols] = True
    if layout.has_group_commons:
        for g in range(layout.G):
            m[groups != g, layout.group_common(g)] = True
    mask["p"] = m
    return StageRows(stages, desired, mask)


def _stage_terms(data: SaaData, P: np.ndarray, rows: StageRows
                 ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per stage: desired gains ``h^H p_d`` (M, K), desired powers and interference-plus-noise (M, K)."""
    G = data.H.conj() @ P  # (M, K, S), entry [m, k, j] = h_k^H p_j
    pw = G.real**2 + G.imag**2
    users = np.arange(data.layout.K)
    out = {}
    for s in rows.stages:
        d = rows.desired[s]
        others = rows.mask[s].copy()
        others[users, d] = False
        gd = G[:, users, d]
        out[s] = (gd, pw[:, users, d], (pw * others[None]).sum(axis=-1) + data.sigma2)
    return out


# -- true SAA rates ----------------------------------------------------------------------------------------
def qos_deficit(layout: RsmaLayout, private: np.ndarray, group_rate: np.ndarray, common_rate: float,
                R_th: float) -> float:
    """Smallest total shortfall below ``R_th`` left by the best split of the common rates:
    ``( sum_g ( sum_{k in g} (R_th - R_pk)_+ - R_cg )_+ - R_c )_+`` (SCENARIOS.md section 3, Algorithm 2's
    penalty without ``lambda``); ``group_rate`` has one entry per group (0 where the scheme has none)."""
    if R_th <= 0:
        return 0.0
    short = np.maximum(R_th - private, 0.0)
    per_group = np.bincount(layout.groups, weights=short, minlength=layout.G)
    return float(max(np.maximum(per_group - group_rate, 0.0).sum() - common_rate, 0.0))


@dataclass(frozen=True)
class SaaRates:
    """SAA rates of a precoder in bit/s/Hz: per-user means of each stage's rate over the draws, the
    scheme's common rates, the ASR and the QoS deficit (0 when ``R_th = 0``)."""

    private: np.ndarray
    common_user: np.ndarray | None
    group_user: np.ndarray | None
    common: float
    group: np.ndarray
    asr: float
    deficit: float
    #: ``lambda_r tr(P^H A P)`` of an ``isac`` problem (0 without a probing term).
    radar: float = 0.0

    def merit(self, qos_penalty: float) -> float:
        return self.asr + self.radar - qos_penalty * self.deficit


def _group_mins(layout: RsmaLayout, per_user: np.ndarray) -> np.ndarray:
    """``min_{k in g}`` of a per-user vector, per group (0 for a group without users)."""
    out = np.zeros(layout.G)
    for g in range(layout.G):
        members = per_user[layout.groups == g]
        out[g] = members.min() if members.size else 0.0
    return out


def saa_rates(data: SaaData, P: np.ndarray) -> SaaRates:
    """The true SAA rates of ``P`` on ``data``'s draws (bit/s/Hz; SCENARIOS.md section 3)."""
    rows = stage_rows(data.layout)
    terms = _stage_terms(data, np.asarray(P, dtype=np.complex128), rows)
    mean = {s: np.log1p(sig / noise).mean(axis=0) / LN2 for s, (_, sig, noise) in terms.items()}
    layout = data.layout
    common = float(mean["c"].min()) if "c" in mean else 0.0
    group = _group_mins(layout, mean["cg"]) if "cg" in mean else np.zeros(layout.G)
    private = mean["p"]
    asr = float(private.sum() + common + group.sum())
    deficit = qos_deficit(layout, private, group, common, data.R_th)
    return SaaRates(private, mean.get("c"), mean.get("cg"), common, group, asr, deficit, radar_term(data, P))


def radar_term(data: SaaData, P: np.ndarray) -> float:
    """``lambda_r tr(P^H A P)`` (bit/s/Hz units of the merit; 0 without a probing matrix)."""
    if data.probing is None or data.radar_weight == 0:
        return 0.0
    P = np.asarray(P, dtype=np.complex128)
    return float(data.radar_weight * np.real(np.sum(P.conj() * (data.probing @ P))))


def radar_minorant(data: SaaData, P_cur: np.ndarray, P: np.ndarray) -> float:
    """The linearisation of :func:`radar_term` at ``P_cur``, ``lambda_r (2 Re tr(P_cur^H A P) - tr(P_cur^H A
    P_cur))``: a lower bound of the convex ``lambda_r tr(P^H A P)`` (``A`` PSD, ``lambda_r >= 0``), equal at
    ``P_cur`` (the difference is ``lambda_r tr((P - P_cur)^H A (P - P_cur)) >= 0``)."""
    if data.probing is None or data.radar_weight == 0:
        return 0.0
    AP = data.probing @ np.asarray(P_cur, dtype=np.complex128)
    return float(data.radar_weight * (2.0 * np.real(np.sum(AP.conj() * P)) - np.real(np.sum(AP.conj() * P_cur))))


# -- the surrogate -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Surrogate:
    """The augmented WMSEs ``xi_ks`` built at one point (module docstring): per stage ``Psi`` (K, Nt, Nt),
    ``f`` (K, Nt) and the constant ``sigma2 t_bar + u_bar - v_bar`` (K,)."""

    rows: StageRows
    Psi: dict[str, np.ndarray]
    f: dict[str, np.ndarray]
    const: dict[str, np.ndarray]

    def xi(self, P: np.ndarray) -> dict[str, np.ndarray]:
        """``xi_ks(P)`` per stage, shape (K,)."""
        out = {}
        for s in self.rows.stages:
            PsiP = self.Psi[s] @ P  # (K, Nt, S)
            quad = (P.conj()[None] * PsiP).real.sum(axis=1)  # (K, S): p_j^H Psi_k p_j
            lin = (self.f[s].conj() * P[:, self.rows.desired[s]].T).real.sum(axis=1)
            out[s] = (quad * self.rows.mask[s]).sum(axis=1) - 2.0 * lin + self.const[s]
        return out

    def rates(self, P: np.ndarray) -> dict[str, np.ndarray]:
        """The surrogate rates ``1 - xi_ks(P)`` (nats), lower bounds of ``mean_m R_ks(P)``."""
        return {s: 1.0 - x for s, x in self.xi(P).items()}

    def value(self, P: np.ndarray, layout: RsmaLayout, R_th: float, qos_penalty: float) -> float:
        """The QCQP objective at ``P`` with the best common-rate split (nats): private surrogate rates plus the
        common caps, minus ``qos_penalty`` times the deficit on the surrogate rates (needs ``qos_penalty >= 1``)."""
        r = self.rates(P)
        common = max(float(r["c"].min()), 0.0) if "c" in r else 0.0
        group = np.maximum(_group_mins(layout, r["cg"]), 0.0) if "cg" in r else np.zeros(layout.G)
        deficit = qos_deficit(layout, r["p"], group, common, R_th * LN2)
        return float(r["p"].sum() + common + group.sum() - qos_penalty * deficit)


def surrogate(data: SaaData, P: np.ndarray) -> Surrogate:
    """The SAA-WMMSE surrogate at ``P``: MMSE equalisers ``g = (h^H p_d)^* / T``, weights ``u = T / I``,
    ``t = u |g|^2`` per draw, user and stage, averaged over the draws (module docstring)."""
    rows = stage_rows(data.layout)
    P = np.asarray(P, dtype=np.complex128)
    H = data.H
    Psi, f, const = {}, {}, {}
    for s, (gd, sig, noise) in _stage_terms(data, P, rows).items():
        total = sig + noise
        u = total / noise
        t = sig / (total * noise)  # u |g|^2
        ug_conj = gd / noise  # u g^* = u (h^H p_d) / T
        Psi[s] = np.einsum("mk,mki,mkj->kij", t, H, H.conj(), optimize=True) / data.M
        f[s] = np.einsum("mk,mki->ki", ug_conj, H) / data.M
        const[s] = data.sigma2 * t.mean(axis=0) + u.mean(axis=0) - np.log1p(sig / noise).mean(axis=0)
    return Surrogate(rows, Psi, f, const)


def _factor(Psi: np.ndarray) -> np.ndarray:
    """``B`` with ``B^H B = Psi`` for a stack of Hermitian PSD matrices: ``Lambda^{1/2} U^H`` of ``eigh``, round-off
    negative eigenvalues clipped to 0."""
    lam, U = np.linalg.eigh(Psi)
    return np.sqrt(np.maximum(lam, 0.0))[..., :, None] * U.conj().swapaxes(-1, -2)


# -- the QCQP ----------------------------------------------------------------------------------------------
@dataclass
class QcqpResult:
    P: np.ndarray
    solver: str
    status: str


class SaaQcqp:
    """The per-iteration QCQP of one layout and budget, built once with cvxpy Parameters (``parametric``)
    and re-solved with each new surrogate (module docstring). With ``parametric=False`` every
    :meth:`solve` builds a fresh problem with constants (the benchmark's reference)."""

    def __init__(self, layout: RsmaLayout, Nt: int, power: float, R_th: float = 0.0,
                 qos_penalty: float = 100.0, parametric: bool = True, radar: bool = False,
                 backend: str = "conic") -> None:
        if qos_penalty < 1.0:
            raise ValueError(f"qos_penalty must be >= 1 (it is {qos_penalty})")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
        self.layout, self.Nt, self.power = layout, int(Nt), float(power)
        self.R_th, self.qos_penalty, self.parametric = float(R_th), float(qos_penalty), parametric
        self.backend = backend
        self.rows = stage_rows(layout)
        self.problem: cp.Problem | None = None
        self.radar = radar
        self._L = None
        self._conic: ConicQcqp | None = None
        if backend == "conic":
            self._conic = ConicQcqp(layout, self.rows, self.Nt, self.R_th, self.qos_penalty)
        elif parametric:
            import cvxpy as cp

            K, n = layout.K, self.Nt
            if radar:
                self._L = cp.Parameter((self.Nt, layout.n_streams), complex=True)
            self._B = {s: [cp.Parameter((n, n), complex=True) for _ in range(K)] for s in self.rows.stages}
            self._f = {s: cp.Parameter((n, K), complex=True) for s in self.rows.stages}
            self._c = {s: cp.Parameter(K) for s in self.rows.stages}
            self.problem, self._X = self._build(self._B, self._f, self._c, self._L)

    def _build(self, B: Mapping[str, Any], f: Mapping[str, Any], c: Mapping[str, Any], L: Any = None
               ) -> tuple[cp.Problem, cp.Variable]:
        import cvxpy as cp

        layout, rows, K = self.layout, self.rows, self.layout.K
        X = cp.Variable((self.Nt, layout.n_streams), complex=True)
        xi = {}
        for s in rows.stages:
            cols = [np.flatnonzero(rows.mask[s][k]).tolist() for k in range(K)]
            quad = cp.hstack([cp.sum_squares(B[s][k] @ X[:, cols[k]]) for k in range(K)])
            lin = cp.real(cp.sum(cp.multiply(cp.conj(f[s]), X[:, rows.desired[s].tolist()]), axis=0))
            xi[s] = quad - 2 * lin + c[s]
        objective = cp.sum(1 - xi["p"])
        if L is not None:  # isac: the probing term's linearisation (the constant part dropped)
            objective += cp.real(cp.sum(cp.multiply(cp.conj(L), X)))
        constraints = [cp.norm(X, "fro") <= 1]
        served = 1 - xi["p"]
        if "c" in rows.stages:
            Cc = cp.Variable(K, nonneg=True)
            objective += cp.sum(Cc)
            constraints.append(cp.sum(Cc) <= 1 - xi["c"])
            served = served + Cc
        if "cg" in rows.stages:
            Cg = cp.Variable(K, nonneg=True)
            same = (layout.groups[:, None] == layout.groups[None, :]).astype(float)
            objective += cp.sum(Cg)
            constraints.append(same @ Cg <= 1 - xi["cg"])
            served = served + Cg
        if self.R_th > 0:
            slack = cp.Variable(K, nonneg=True)
            objective -= self.qos_penalty * cp.sum(slack)
            constraints.append(served + slack >= self.R_th * LN2)
        return cp.Problem(cp.Maximize(objective), constraints), X

    def _data(self, sur: Surrogate) -> tuple[dict, dict, dict]:
        root = math.sqrt(self.power)
        B = {s: root * _factor(sur.Psi[s]) for s in self.rows.stages}
        f = {s: root * sur.f[s].T for s in self.rows.stages}  # (Nt, K): column k is f_k
        return B, f, sur.const

    def solve(self, sur: Surrogate, radar_grad: np.ndarray | None = None) -> QcqpResult | None:
        """Maximise the surrogate; ``None`` when neither Clarabel nor SCS returns an optimal point.
        ``radar_grad`` (with ``radar=True``): ``lambda_r A P_cur``, the probing term's linear part is
        ``2 Re tr(radar_grad^H P)`` bit/s/Hz, i.e. ``2 ln2 sqrt(P_t) Re tr(radar_grad^H X)`` nats."""
        B, f, c = self._data(sur)
        L = None
        if self.radar:
            L = 2.0 * LN2 * math.sqrt(self.power) * np.asarray(radar_grad, dtype=np.complex128)
        if self._conic is not None:
            out = self._conic.solve(B, f, c, _ATTEMPTS, lin=L)
            if out is None:
                return None
            Xv, name, status = out
            norm = np.linalg.norm(Xv)
            if norm > 1.0:  # the solver's tolerance: put the point back on the ball
                Xv = Xv / norm
            return QcqpResult(math.sqrt(self.power) * Xv, name, status)
        if self.parametric:
            for s in self.rows.stages:
                for k, par in enumerate(self._B[s]):
                    par.value = B[s][k]
                self._f[s].value = f[s]
                self._c[s].value = c[s]
            if self._L is not None:
                self._L.value = L
            problem, X = self.problem, self._X
        else:
            problem, X = self._build({s: list(B[s]) for s in B}, f, c, L)
        import cvxpy as cp

        for name, kwargs in _ATTEMPTS:
            try:
                with warnings.catch_warnings():  # "solution may be inaccurate": the status says so
                    warnings.simplefilter("ignore", UserWarning)
                    problem.solve(solver=name, **kwargs)
            except cp.error.SolverError:
                continue
            if problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) and X.value is not None \
                    and np.all(np.isfinite(X.value)):
                Xv = np.asarray(X.value, dtype=np.complex128)
                norm = np.linalg.norm(Xv)
                if norm > 1.0:  # the solver's tolerance: put the point back on the ball
                    Xv = Xv / norm
                return QcqpResult(math.sqrt(self.power) * Xv, name, problem.status)
        return None


# -- the iteration -----------------------------------------------------------------------------------------
@dataclass
class SaaTrace:
    """Per iteration (index 0: the start), in bit/s/Hz: the true SAA ASR, QoS deficit and merit
    ``asr - qos_penalty * deficit``; per iteration ``t >= 1`` the surrogate's optimum (the QCQP objective over
    ln 2, built at iterate ``t - 1``) and the conic solver used. ``status``: converged, max_iter, stopped
    (time budget), solver failed, or rejected (a step that lowered the merit)."""

    asr: list[float] = field(default_factory=list)
    deficit: list[float] = field(default_factory=list)
    merit: list[float] = field(default_factory=list)
    surrogate: list[float] = field(default_factory=list)
    solver: list[str] = field(default_factory=list)
    status: str = ""

    @property
    def iterations(self) -> int:
        return len(self.surrogate)


def check_data(data: SaaData, P0: np.ndarray) -> None:
    """One-line ValueError for data and a start that do not fit together."""
    H = np.asarray(data.H)
    if H.ndim != 3 or H.shape[1] != data.layout.K:
        raise ValueError(f"SaaData.H must have shape (M, K={data.layout.K}, Nt), not {H.shape}")
    if np.shape(P0) != (H.shape[2], data.layout.n_streams):
        raise ValueError(f"the start must have shape (Nt, n_streams) = {(H.shape[2], data.layout.n_streams)}, "
                         f"not {np.shape(P0)}")
    if not data.power > 0 or not data.sigma2 > 0:
        raise ValueError(f"power and sigma2 must be positive (power={data.power}, sigma2={data.sigma2})")
    if data.R_th < 0:
        raise ValueError(f"R_th must be >= 0, not {data.R_th}")
    if data.radar_weight < 0:
        raise ValueError(f"radar_weight must be >= 0, not {data.radar_weight}")


def saa_wmmse(
    data: SaaData,
    P0: np.ndarray,
    max_iter: int = 100,
    tol: float = 1e-4,
    *,
    qos_penalty: float = 100.0,
    rebuild: bool = False,
    backend: str = "conic",
    on_iteration: Callable[[int, np.ndarray], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> tuple[np.ndarray, SaaTrace]:
    """Run SAA-WMMSE from ``P0`` (Nt, n_streams) on ``data``; returns the last accepted precoder and the trace.

    ``qos_penalty`` is ``rho`` of the elastic QoS (per nat of shortfall); ``rebuild=True`` builds the QCQP
    afresh every iteration instead of re-solving the parametrised one; ``on_iteration(t, P)`` is called
    after each accepted iteration, ``stop()`` is checked before each."""
    check_data(data, P0)
    P = np.array(P0, dtype=np.complex128)
    pw = float(np.sum(np.abs(P) ** 2))
    if pw > data.power:
        P *= math.sqrt(data.power / pw)
    radar = data.probing is not None and data.radar_weight > 0
    qcqp = SaaQcqp(data.layout, data.Nt, data.power, data.R_th, qos_penalty, parametric=not rebuild,
                   radar=radar, backend=backend)
    trace = SaaTrace()

    def record(rates: SaaRates) -> None:
        trace.asr.append(rates.asr)
        trace.deficit.append(rates.deficit)
        trace.merit.append(rates.merit(qos_penalty))

    record(saa_rates(data, P))
    previous = trace.merit[0]
    trace.status = "max_iter"
    for t in range(1, max_iter + 1):
        if stop is not None and stop():
            trace.status = "stopped"
            break
        sur = surrogate(data, P)
        result = qcqp.solve(sur, data.radar_weight * (data.probing @ P) if radar else None)
        if result is None:
            trace.status = "solver failed"
            break
        rates = saa_rates(data, result.P)
        merit = rates.merit(qos_penalty)
        if not math.isfinite(merit) or merit < trace.merit[-1] - _REJECT_RTOL * (abs(trace.merit[-1]) + 1.0):
            trace.status = "rejected"
            break
        value = sur.value(result.P, data.layout, data.R_th, qos_penalty) / LN2 + radar_minorant(data, P, result.P)
        P = result.P
        record(rates)
        trace.surrogate.append(value)
        trace.solver.append(result.solver)
        if on_iteration is not None:
            on_iteration(t, P)
        if abs(value - previous) <= tol * max(abs(value), 1e-12):
            trace.status = "converged"
            break
        previous = value
    return P, trace


# -- the solver plugin -------------------------------------------------------------------------------------
class SaaWmmse(Solver):
    """SAA-WMMSE (Joudeh & Clerckx 2016) on a problem that offers ``saa_data()`` (``hrsma``): all three
    schemes, elastic QoS, one parametrised cvxpy QCQP re-solved per iteration (module docstring)."""

    name = "saa-wmmse"
    version = "2"
    description = "SAA-WMMSE (Joudeh & Clerckx 2016): one cvxpy QCQP per iteration, rate splitting with QoS"
    tags = frozenset({"conventional"})
    scenarios = ("hrsma", "isac")
    multi_start = True
    options = {
        "max_iter": Param(100, "SAA-WMMSE iterations (one QCQP each)", min=1),
        "tol": Param(1e-4, "stop when the surrogate optimum changes by <= tol relative", min=0),
        "init": Param("svd-mrt", "start: a named initial point of the scenario (hrsma: svd-mrt, mrt, random)"),
        "qos_penalty": Param(100.0, "exact penalty per nat of QoS shortfall (elastic QoS; >= 1)", min=1.0),
        "max_size": Param(DEFAULT_MAX_SIZE, "decline when Nt K exceeds this (cvxpy's DPP compilation: ~3.6 GB and "
                          "30 s at Nt K = 96, 8 GB at 128)", min=1),
        "backend": Param("conic", "conic: the QCQP's conic form assembled with numpy and handed to Clarabel "
                         "directly (saa_conic); cvxpy: modelled with cvxpy (see dpp)", choices=BACKENDS),
        "dpp": Param(True, "backend=cvxpy: build the QCQP once with cvxpy Parameters and re-solve it (false: "
                     "rebuild it every iteration, slower but little memory)"),
    }
    budget_options = ("max_iter", "tol", "init")

    def supports_problem(self, problem: Problem) -> bool:
        return hasattr(problem, "saa_data")

    def declines(self, problem: Problem, options: Mapping[str, Any]) -> str | None:
        if not self.supports_problem(problem):
            return "the problem offers no SAA data (no saa_data())"
        opts = self.resolve_options(options)
        data = problem.saa_data()
        size = data.Nt * data.layout.K
        if size > opts["max_size"]:
            if opts["backend"] == "conic":
                return (f"Nt K = {size} exceeds max_size={opts['max_size']}: each interior-point solve of the QCQP "
                        f"grows as (Nt K)^3.5, times up to max_iter iterations (set max_size to run it anyway)")
            return (f"Nt K = {size} exceeds max_size={opts['max_size']}: cvxpy's compilation of the QCQP needs "
                    f"about 3.6 GB at Nt K = 96 and 8 GB at 128, and each solve grows as (Nt K)^3.5 (set max_size "
                    f"to run it anyway; dpp=false trades memory for a recompilation every iteration)")
        return None

    def memory_bytes(self, problem: Problem, options: Mapping[str, Any]) -> int:
        """The draws' gains and weights (a few ``M K S`` arrays) plus cvxpy's compilation, dominated by the
        parametrised products ``B_ks X``: a fit to the peak memory measured for ``hrsma`` (0.55, 3.6, 8.1 GB at
        ``Nt, K = 8, 6; 12, 8; 16, 8``) in ``n = (stages K) Nt^2 S``, about ``n^1.6``; without DPP about 0.3 GB
        at ``Nt K = 200``."""
        opts = self.resolve_options(options)
        data = problem.saa_data()
        rows = len(stage_rows(data.layout).stages) * data.layout.K
        n = rows * data.Nt**2 * data.layout.n_streams
        arrays = 16 * 8 * data.M * data.layout.K * (data.layout.n_streams + data.Nt)
        if opts["backend"] == "conic":  # A has about 4 n entries; Clarabel's KKT factor a small multiple
            return int(150e6 + arrays + 400 * n)
        compile_ = 3.45e9 * (n / 38016) ** 1.6 if opts["dpp"] else 2e3 * n
        return int(150e6 + arrays + compile_)

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        opts = self.resolve_options(options)
        data = problem.saa_data()
        var = problem.role_variable("precoder") or "P"
        x0 = ctx.initial(problem, opts["init"])
        ctx.checkpoint(x0, 0)

        def point(P: np.ndarray) -> dict[str, Any]:
            return {**x0, var: P}

        P, trace = saa_wmmse(
            data, np.asarray(x0[var]), opts["max_iter"], opts["tol"], qos_penalty=opts["qos_penalty"],
            rebuild=not opts["dpp"], backend=opts["backend"], on_iteration=lambda t, P: ctx.checkpoint(point(P), t), stop=ctx.expired,
        )
        x = point(P)
        n = trace.iterations
        if not ctx.checkpoints or ctx.checkpoints[-1][1] != n:
            ctx.checkpoint(x, n, force=True)
        info = {
            "status": trace.status,
            "asr_trace": trace.asr,
            "surrogate_trace": trace.surrogate,
            "deficit": trace.deficit[-1],
            "solvers": sorted(set(trace.solver)),
        }
        return Solution(x=x, iterations=n, info=info)


@hookimpl
def wbench_register_solvers(register) -> None:
    register(SaaWmmse())
