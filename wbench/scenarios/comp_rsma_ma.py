"""``comp-rsma-ma``: CoMP rate splitting with movable antennas (seed 004; SCENARIOS.md section 6).

Amhaz, Khisa, Elhattab, Assi, Sharafeddine, "Enhancing CoMP-RSMA performance with movable antennas: a
meta-learning optimization framework". ``N`` BSs with ``I`` fixed antennas each jointly (coherently) serve ``K``
users with one movable antenna each, at ``r_k`` in the square ``[-A/2, A/2]^2`` (wavelengths) around the user's
reference point. The channel is the field-response model (:mod:`wbench.channels.field_response`, eqs. (1)-(5)):
``h_{n,k}^H = f_k(r_k)^H Sigma_{n,k} G_{n,k}``; stacked over BSs, user ``k`` sees the row ``a_k`` (``N I``
entries) and a precoder column ``p`` (stacked over BSs, BS ``n`` transmits rows ``n I .. n I + I - 1``) arrives
with gain ``a_k p``.

Variables (roles in brackets):

* ``P`` (precoder): ``(N I) x S`` complex, one column per stream; ``scheme=rsma``: column 0 the common stream
  ``p_c``, columns ``1..K`` the private streams ``p_k`` (``S = K + 1``); ``scheme=sdma``: the ``K`` private
  streams only (``S = K``; :class:`wbench.rsma.RsmaLayout`). Per-BS budget
  ``sum_k ||p_{k,n}||^2 + ||p_{c,n}||^2 <= P_M`` (eq. (15b)): :class:`~wbench.problem.BlockPowerBall` on the
  rows, one block of ``I`` rows per BS.
* ``c`` (split; ``rsma`` only): the common-rate portions, ``c_k >= 0`` (eq. (15d); ``Box(0, inf)``).
* ``r`` (positions; ``antennas=ma`` with ``region > 0`` only): ``(K, 2)`` real, ``Box(-A/2, A/2)`` in
  wavelengths (eq. (15f)). Fixed antennas (``fpa``, or ``region = 0``) have no position variable: every
  antenna stays at its reference point, ``r = 0``.

Rates (noise-normalised, ``sigma2 = 1``; ``gains[k, j] = a_k p_j``), default ``sinr=coherent``, the SINRs of the
received signal ``y_k = sum_n h_{n,k}^H x_n + n_k`` (eqs. (6)-(7)) with SIC of the common stream:

    SINR_ck = |a_k p_c|^2 / (sum_j |a_k p_j|^2 + 1),  SINR_pk = |a_k p_k|^2 / (sum_{j != k} |a_k p_j|^2 + 1)

``sinr=paper`` keeps eqs. (8) and (10) as printed: the numerators coherent, the denominators summed per BS
over the users with the summation index standing for the interferer everywhere in the summand (the only
well-formed reading of the bound ``k`` in eq. (8)):
``sum_n sum_{k'} |h_{n,k'}^H p_{k',n}|^2`` (eq. (8); ``k' != k`` in eq. (10)) -- the interferer's own
channel, not user ``k``'s. ``R = log2(1 + SINR)`` (eqs. (9), (11)).

Problem (15): maximise ``sum_k (c_k + R_pk)`` subject to the per-BS budgets, QoS ``c_k + R_pk >= R_th``
(15c), ``c >= 0`` (15d), ``sum c <= R_c = min_k R_ck`` (15e, written smoothly as ``R_ck - sum c >= 0`` for
every k), positions in the box (15f). ``sdma``: ``sum_k R_pk`` subject to ``R_pk >= R_th``. The scenario
constraints (:meth:`CompRsmaMaProblem.constraints`, ``>= 0`` when satisfied): ``qos`` (K) and ``common``
(K, rsma only); tolerance :attr:`constraint_tol` = 1e-3 bit/s/Hz (a penalty solver's quadratic penalty
ends a binding constraint off by about ``lambda / (2 weight)``; with the default weight 1e3 and multipliers of
order one that is ~5e-4). A point violating QoS is scored ``infeasible``.

Choices where the paper is silent (SCENARIOS.md section 6): angles, path responses and ULA as in
:mod:`wbench.channels.field_response`; BS ``n`` at 60 m from the origin at angle ``2 pi n / N``; user reference
points uniform in a 10 m disc at the origin; ``g = (lambda / (4 pi))^2 d^-3.9`` with ``lambda = 0.01 m`` (Table
I's ``alpha = 3.9`` read as the path-loss exponent); noise ``-100 dBm`` in total (Table I's "/Hz" has no
bandwidth). Numerics: the channel arrays are stored small-scale and ``sqrt(g / sigma2)`` enters the path
responses, so that nothing is of order 1e-13 (the model is the same).

Initial points: ``paper`` (``P`` random at full power per BS, ``c = 0``, ``r = 0``: seed 004), ``mrt`` (private
columns the matched filters ``a_k^H`` at ``r = 0``, the common column their normalised sum, every BS at full
power, ``c = 0``, ``r = 0``), ``random`` (as ``paper`` with ``r`` uniform in the box). Warm-start stages
(:meth:`CompRsmaMaProblem.warm_start`): ``ma`` starts from ``fpa`` on the same channel (``r = 0``), an ``fpa``
``rsma`` problem from ``sdma`` (zero common stream, ``c = 0``); both embeddings keep the utility.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..channels.field_response import (FieldResponseDraw, draw_field_response, effective_rows,
                                       effective_rows_torch, ula_positions)
from ..channels.pathloss import dbm_to_watt
from ..hookspecs import hookimpl
from ..params import Param
from ..problem import BlockPowerBall, Box, Problem, Variable, Vars, WarmStart
from ..rsma import RsmaLayout
from ..scenario import Channel, Scenario

_LN2 = math.log(2.0)
#: Carrier wavelength in m (Table I).
WAVELENGTH = 0.01
#: Path-loss exponent (Table I's alpha).
PATH_LOSS_EXPONENT = 3.9
#: Distance of every BS from the origin, radius of the users' disc (m): choices, the paper gives no geometry.
BS_DISTANCE = 60.0
USER_RADIUS = 10.0
SINR_FORMS = ("coherent", "paper")


def rates(lib: Any, A: Any, P: Any, layout: RsmaLayout, n_bs: int, sinr: str) -> tuple[Any, Any]:
    """``(R_c, R_p)``, each ``(K,)`` (``R_c`` ``None`` without a common stream), in bit/s/Hz, for the stacked
    channel rows ``A`` ``(K, N I)`` and precoder ``P`` ``(N I, S)`` (noise-normalised). ``lib`` is ``numpy`` or
    ``torch``: the same expression in both."""
    k = A.shape[0]
    eye = lib.eye(k, dtype=lib.float64)
    off = 1.0 - eye
    gains = A @ P  # (K, S): a_k p_j
    pw = gains.real ** 2 + gains.imag ** 2
    first = layout.first_private
    priv = pw[:, first:first + k]  # (K, K): user k's received power of private stream j
    signal = (priv * eye).sum(-1)
    if sinr == "coherent":
        total = priv.sum(-1)
        interference = (priv * off).sum(-1)
    elif sinr == "paper":
        i = A.shape[1] // n_bs
        per_bs = lib.einsum("kni,nis->nks", A.reshape(k, n_bs, i), P.reshape(n_bs, i, P.shape[1]))
        own = per_bs[:, :, first:first + k]
        own = ((own.real ** 2 + own.imag ** 2) * eye).sum(-1).sum(0)  # sum_n |h_{n,k'}^H p_{k',n}|^2, (K,)
        total = own.sum() + 0.0 * signal
        interference = off @ own
    else:
        raise ValueError(f"sinr must be one of {', '.join(SINR_FORMS)}, not {sinr!r}")
    r_p = lib.log1p(signal / (interference + 1.0)) / _LN2
    if not layout.has_common:
        return None, r_p
    r_c = lib.log1p(pw[:, 0] / (total + 1.0)) / _LN2
    return r_c, r_p


@dataclass
class CompRsmaMaProblem(Problem):
    """One realisation of problem (15) (maximise :meth:`utility`)."""

    draw: FieldResponseDraw = None  # type: ignore[assignment]  (noise-normalised path responses)
    layout: RsmaLayout = None  # type: ignore[assignment]
    n_bs: int = 1
    power: float = 1.0  # P_M per BS in W
    r_th: float = 0.0
    region: float = 0.0  # A in wavelengths; 0 when the antennas are fixed
    sinr: str = "coherent"
    constraint_tol: float = 1e-3

    def __post_init__(self) -> None:
        self._sg = self.draw.sigma_g()  # (N, K, Q, I): does not depend on the positions
        self._sg_t = None

    @property
    def movable(self) -> bool:
        return "r" in self.variables

    @property
    def K(self) -> int:
        return self.layout.K

    # -- the model -------------------------------------------------------------------------------
    def channel_rows(self, r: np.ndarray | None = None) -> np.ndarray:
        """The stacked, noise-normalised channel rows ``a_k`` ``(K, N I)`` at positions ``r`` (default 0)."""
        if r is None:
            n, k, q, i = self._sg.shape
            return np.einsum("nkqi->kni", self._sg).reshape(k, n * i)
        return effective_rows(self.draw, r)

    def _rows(self, x: Mapping[str, Any]) -> np.ndarray:
        return self.channel_rows(np.asarray(x["r"], dtype=np.float64) if self.movable else None)

    def rate_parts(self, x: Mapping[str, Any]) -> tuple[np.ndarray | None, np.ndarray]:
        """``(R_ck, R_pk)`` at ``x`` in NumPy float64."""
        return rates(np, self._rows(x), np.asarray(x["P"], dtype=np.complex128), self.layout, self.n_bs,
                     self.sinr)

    def utility(self, x: Vars) -> float:
        _, r_p = self.rate_parts(x)
        c = np.asarray(x["c"], dtype=np.float64) if self.layout.has_common else 0.0
        return float(np.sum(c + r_p))

    def constraints(self, x: Vars) -> dict[str, np.ndarray]:
        r_c, r_p = self.rate_parts(x)
        if not self.layout.has_common:
            return {"qos": r_p - self.r_th}
        c = np.asarray(x["c"], dtype=np.float64)
        return {"qos": c + r_p - self.r_th, "common": r_c - c.sum()}

    # -- torch -------------------------------------------------------------------------------------
    def _rows_torch(self, x: Mapping[str, Any]) -> Any:
        import torch

        P = x["P"]
        if self._sg_t is None or self._sg_t.device != P.device or self._sg_t.dtype != P.dtype:
            self._sg_t = torch.as_tensor(self._sg, dtype=P.dtype, device=P.device)  # complex64 for a float32 run
        if self.movable:
            return effective_rows_torch(self.draw, x["r"], self._sg_t)
        n, k, q, i = self._sg.shape
        return self._sg_t.sum(2).permute(1, 0, 2).reshape(k, n * i)

    def rate_parts_torch(self, x: Mapping[str, Any]) -> tuple[Any, Any]:
        import torch

        return rates(torch, self._rows_torch(x), x["P"], self.layout, self.n_bs, self.sinr)

    def loss_torch(self, x: Mapping[str, Any]) -> Any:
        """``-sum_k (c_k + R_pk)`` (differentiable in ``P``, ``c`` and ``r``); constraints are left to
        :meth:`constraints_torch`."""
        _, r_p = self.rate_parts_torch(x)
        total = r_p.sum()
        if self.layout.has_common:
            total = total + x["c"].sum()
        return -total

    def constraints_torch(self, x: Mapping[str, Any]) -> dict[str, Any]:
        r_c, r_p = self.rate_parts_torch(x)
        if not self.layout.has_common:
            return {"qos": r_p - self.r_th}
        c = x["c"]
        return {"qos": c + r_p - self.r_th, "common": r_c - c.sum()}

    # -- stages ----------------------------------------------------------------------------------
    def variant(self, scheme: str | None = None, movable: bool | None = None) -> "CompRsmaMaProblem":
        """This problem on the same channel with another scheme and/or fixed antennas."""
        scheme = self.layout.scheme if scheme is None else scheme
        movable = self.movable if movable is None else movable
        layout = RsmaLayout(scheme, np.zeros(self.K, dtype=int))
        variables = _variables(self.n_bs, self.draw.tx.shape[0], self.K, self.power, layout,
                               self.region if movable else 0.0)
        params = dict(self.params, scheme=scheme)
        if not movable:
            params["antennas"] = "fpa"
        return dataclasses.replace(self, variables=variables, layout=layout, params=params,
                                   region=self.region if movable else 0.0)

    def warm_start(self) -> WarmStart | None:
        """``ma`` from ``fpa`` (stage ``fpa``, embedded at ``r = 0``); ``fpa`` ``rsma`` from ``sdma`` (stage
        ``sdma``, zero common column and ``c = 0``). Both embeddings keep the utility."""
        if self.movable:
            k = self.K
            return WarmStart("fpa", self.variant(movable=False), lambda x: dict(x, r=np.zeros((k, 2))))
        if self.layout.has_common:
            return WarmStart("sdma", self.variant(scheme="sdma"), self.embed_sdma)
        return None

    def embed_sdma(self, x: Mapping[str, np.ndarray]) -> Vars:
        """An ``sdma`` point as an ``rsma`` point with a zero common stream and ``c = 0``."""
        P = np.asarray(x["P"], dtype=np.complex128)
        out = dict(x, P=np.concatenate([np.zeros((P.shape[0], 1), complex), P], axis=1), c=np.zeros(self.K))
        return out

    # -- initial points ----------------------------------------------------------------------------
    def _initial(self, method: str, rng: np.random.Generator) -> Vars:
        var = self.variables["P"]
        block: BlockPowerBall = var.constraint  # type: ignore[assignment]
        if method == "mrt":
            A = self.channel_rows()
            priv = A.conj().T / np.maximum(np.linalg.norm(A, axis=1), 1e-300)
            cols = [priv.sum(axis=1, keepdims=True)] if self.layout.has_common else []
            P = np.concatenate(cols + [priv], axis=1)
        else:
            P = (rng.standard_normal(var.shape) + 1j * rng.standard_normal(var.shape)) / np.sqrt(2.0)
        out: Vars = {"P": block.full_power(P)}
        if self.layout.has_common:
            out["c"] = np.zeros(self.K)
        if self.movable:
            half = self.region / 2.0
            out["r"] = rng.uniform(-half, half, (self.K, 2)) if method == "random" else np.zeros((self.K, 2))
        return out


def _variables(n_bs: int, n_tx: int, k: int, power: float, layout: RsmaLayout, region: float
               ) -> dict[str, Variable]:
    out = {"P": Variable((n_bs * n_tx, layout.n_streams), BlockPowerBall.uniform(power, n_bs, n_tx),
                         role="precoder")}
    if layout.has_common:
        out["c"] = Variable((k,), Box(0.0, math.inf), complex=False, role="split")
    if region > 0:
        out["r"] = Variable((k, 2), Box(-region / 2.0, region / 2.0), complex=False, role="positions")
    return out


class CompRsmaMa(Scenario):
    name = "comp-rsma-ma"
    description = "CoMP rate splitting with movable antennas, per-BS budgets and QoS (seed 004, Amhaz et al.)"
    params = {
        "N": Param(2, "BSs", min=1, max=64),
        "I": Param(4, "antennas per BS", min=1, max=256),
        "K": Param(4, "users (one movable antenna each)", min=1, max=64),
        "L": Param(6, "transmit paths per link", min=1, max=64),
        "Q": Param(6, "receive paths per link", min=1, max=64),
        "pt_dbm": Param(33.0, "power budget P_M of every BS in dBm", min=-50, max=80),
        "noise_dbm": Param(-100.0, "noise power sigma2 in dBm", min=-200, max=50),
        "R_th": Param(0.6, "QoS: minimum rate c_k + R_pk of every user in bit/s/Hz", min=0),
        "region": Param(2.0, "side A of the square moving region in wavelengths (0 = fixed antennas)", min=0),
        "scheme": Param("rsma", "rsma (common + private streams) | sdma (private only)", choices=("rsma", "sdma")),
        "antennas": Param("ma", "ma (movable) | fpa (fixed at the reference point)", choices=("ma", "fpa")),
        "sinr": Param("coherent", "coherent (received-signal SINRs) | paper (eqs. (8)/(10) as printed)",
                      choices=SINR_FORMS),
    }
    # small default: the headline compare (meta + conventional) in a few minutes on a laptop; the paper's
    # Fig. 3 axis is --sweep pt_dbm=25,29,33,37 and its Table I setting the defaults with --instances 150
    default_sweep = {"pt_dbm": [33.0]}
    default_instances = 3
    generator_version = "1"

    def draw(self, params: Mapping[str, Any], rng: np.random.Generator) -> Channel:
        n, k = params["N"], params["K"]
        angle = 2 * np.pi * np.arange(n) / n
        bs = BS_DISTANCE * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        rad = USER_RADIUS * np.sqrt(rng.uniform(0.0, 1.0, k))
        phi = rng.uniform(0.0, 2 * np.pi, k)
        users = np.stack([rad * np.cos(phi), rad * np.sin(phi)], axis=1)
        d = np.linalg.norm(bs[:, None, :] - users[None, :, :], axis=-1)  # (N, K)
        gain = (WAVELENGTH / (4 * np.pi)) ** 2 * d ** (-PATH_LOSS_EXPONENT)
        fr = draw_field_response(rng, n, k, params["I"], params["L"], params["Q"], np.ones((n, k)))
        return {"theta_t": fr.theta_t, "phi_t": fr.phi_t, "theta_r": fr.theta_r, "phi_r": fr.phi_r,
                "sigma": fr.sigma, "gain": gain}

    def problem(self, params: Mapping[str, Any], channel: Channel) -> CompRsmaMaProblem:
        n, i, k = params["N"], params["I"], params["K"]
        scale = np.sqrt(np.asarray(channel["gain"], dtype=np.float64) / dbm_to_watt(params["noise_dbm"]))
        fr = FieldResponseDraw(
            theta_t=np.asarray(channel["theta_t"], dtype=np.float64),
            phi_t=np.asarray(channel["phi_t"], dtype=np.float64),
            theta_r=np.asarray(channel["theta_r"], dtype=np.float64),
            phi_r=np.asarray(channel["phi_r"], dtype=np.float64),
            sigma=np.asarray(channel["sigma"], dtype=np.complex128) * scale[:, :, None, None],
            tx=ula_positions(i),
        )
        layout = RsmaLayout(params["scheme"], np.zeros(k, dtype=int))
        region = float(params["region"]) if params["antennas"] == "ma" else 0.0
        power = dbm_to_watt(params["pt_dbm"])
        return CompRsmaMaProblem(
            variables=_variables(n, i, k, power, layout, region),
            scenario=self.name,
            params=dict(params),
            init_methods=("paper", "mrt", "random"),
            draw=fr,
            layout=layout,
            n_bs=n,
            power=power,
            r_th=float(params["R_th"]),
            region=region,
            sinr=params["sinr"],
        )


@hookimpl
def wbench_register_scenarios(register) -> None:
    register(CompRsmaMa())
