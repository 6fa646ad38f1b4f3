"""``star-ris-noma``: uplink NOMA through several active STAR-RISs with second-order reflections (seed 003).

Javadi, Farhadi, Robat Mili, Jorswieck, Al-Dhahir, "Meta-learning for resource allocation in uplink
multi-active STAR-RIS-aided NOMA system" (SCENARIOS.md section 7). ``K`` single-antenna users send to an
``N_BS``-antenna BS through ``N`` active STAR-RISs of ``M`` elements each (no direct link, as the paper); the
cascaded channels, geometry and path loss are those of :mod:`wbench.channels.star_ris` (eq. (10), with its
coefficient matrices swapped back; RIS 0 the farthest, RIS ``N - 1`` the closest).

Variables (roles in brackets; all found by the generic solvers through their sets):

* ``p`` (power): ``(K,)`` transmit powers in W, ``p >= 0``, ``sum p <= P_max`` (problem P1, C5-C6: one sum
  budget over all users, as printed; a :class:`~wbench.problem.Simplex` of total ``P_max``).
* ``delta`` (other): ``(2, N, M)`` amplification power gains ``delta^r`` (``[0]``) and ``delta^t`` (``[1]``)
  per element, :class:`~wbench.problem.Box` ``[0, delta_max]`` (C10; ``delta_max = 10^(delta_max_db / 10)``).
* ``alpha`` (other): ``(N, M)`` the energy split ``alpha^r`` in ``Box(0, 1)``; ``alpha^t = 1 - alpha^r``,
  so ``alpha^r + alpha^t = 1`` (C7-C8) holds by construction.
* ``theta`` (scattering): ``(2, N, M)`` unit-modulus phase factors ``e^{j theta^r}``, ``e^{j theta^t}`` (C9).

Choices where the paper is silent or inconsistent (SCENARIOS.md section 7; each also in the README table):

* association ``beta`` (C2-C4) is *fixed by geometry*, not a variable: ``K / N`` consecutive users per RIS (``K`` a
  multiple of ``N``), drawn ``1..5`` m from it; ``sides=split`` puts the first ``ceil(K/(2N))`` of each RIS on
  the reflection side, the rest on the transmission side (``r`` / ``t``: all on one side);
* receive beamformers are not variables: the BS uses MMSE-SIC receivers computed from the rest,
  ``w_k = (C + sum_{j decoded after k} p_j h_j h_j^H)^{-1} h_k``, which maximise every SINR of eq. (12)
  (corrected: ``SINR_k = p_k |w_k^H h_k|^2 / (sum_{j after k} p_j |w_k^H h_j|^2 + w_k^H C w_k)``), so
  ``R_k = log2 det(C + S_k) - log2 det(C + S_{k+1})`` with ``S_k`` the sum of ``p_j h_j h_j^H`` over ``k`` and
  the users decoded after it, and the sum rate is ``log2 det(I + C^{-1} sum_k p_k h_k h_k^H)`` whatever
  the order (the MMSE-SIC sum-capacity identity);
* decoding order (eqs. (11)-(12)): the users of the closest RIS first, then RIS by RIS outwards (user ``k``
  hears the weaker users of its own RIS and every user of the farther RISs); inside a RIS, *strongest first*
  by the large-scale gain, i.e. the user nearest to its RIS first (``sic_order=distance``, default: a fixed
  order, so every rate is a smooth function of the variables), or by the effective channel gain
  ``||h_k||^2`` at the current point (``sic_order=gain``, closer to eq. (11)'s ordering of the effective gains;
  ties broken by the user index). With ``gain`` the order changes with the RIS variables and the per-user
  rates jump where two gains cross: optimisers then settle on such ties, where a round-off change of the
  phases swaps the order and the QoS verdict (seen with ``ao-star``), hence not the default. The sum rate does
  not depend on the order; the per-user rates and the QoS constraints do;
* second-order paths (``second_order``, default on) go through the closer RISs on side ``second_side``
  (``r`` default); ``second_order=false`` is the single-reflection baseline (``A_n = F_n``);
* noise: ``C = sigma2 I + sigma_r^2 sum_n A_n diag(delta^r alpha^r + delta^t alpha^t)_n A_n^H`` with
  ``sigma2 = -114 dBm`` (-174 dBm/Hz over 1 MHz); the paper has no amplifier noise (``ris_noise_dbm=none``,
  the default): then ``delta = delta_max`` is trivially optimal. ``ris_noise_dbm`` (per element) and
  ``ris_power_budget`` (W per RIS) make the active-RIS trade-off real. The budget counts the amplified
  first-order incident signals and the amplifier noise,
  ``sum_m sum_s delta^s alpha^s (sum_{k on side s of RIS n} p_k |f_{k,m}|^2 + sigma_r^2) <= P_RIS``
  (second-order incident signals are neglected: they are smaller by the RIS-to-RIS path loss);
* baselines are configurations: passive STAR-RIS ``delta_max_db=0`` (amplitudes ``sqrt(alpha)``, no amplifier
  noise), single active STAR-RIS ``N=1``, single reflection ``second_order=false``.

Problem P1: maximise the sum rate ``sum_k R_k`` (bit/s/Hz, eq. (13)) subject to the sets and the scenario
constraints (:meth:`StarRisNomaProblem.constraints`, ``>= 0`` when satisfied): ``qos`` ``R_k - R_min`` (C1,
``K``) and, with a budget, ``ris_power`` ``1 - P_out,n / P_RIS`` (``N``); tolerance 1e-3 (bit/s/Hz for QoS).

Initial points: ``uniform`` (default: ``p = P_max / K``, ``delta = delta_max`` -- scaled down per RIS onto
its budget when there is one --, ``alpha = 1/2``, ``theta = 1``) and ``random`` (``p`` uniform on the face
``sum p = P_max``, ``delta``, ``alpha`` and the phases uniform in their sets).

Numerics: the channels are stored small-scale; ``sqrt(PL / sigma2)`` is folded into ``f`` and ``sqrt(PL)`` into
``F`` and ``G``, so that ``h_k`` is noise-normalised (``C = I + (sigma_r^2 / sigma2) ...``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..channels.pathloss import db_to_linear, dbm_to_watt
from ..channels.star_ris import (StarLayout, coefficients, draw_star, large_scale, ris_noise_covariance, routes,
                                 user_channels)
from ..hookspecs import hookimpl
from ..params import Param
from ..problem import Box, Problem, Simplex, UnitModulus, Variable, Vars
from ..scenario import Channel, Scenario

_LN2 = math.log(2.0)
#: Receiver noise: -174 dBm/Hz over a 1 MHz bandwidth (choice).
NOISE_DBM = -174.0 + 60.0
SIC_ORDERS = ("distance", "gain")


def _logdet(lib: Any, X: Any) -> Any:
    if lib is np:
        return np.linalg.slogdet(X)[1]
    import torch

    return torch.linalg.slogdet(X)[1]


@dataclass
class StarRisNomaProblem(Problem):
    """One realisation (maximise :meth:`utility`); see the module docstring."""

    F: np.ndarray = None  # type: ignore[assignment]  (N, N_BS, M), sqrt(PL) folded in
    G: np.ndarray = None  # type: ignore[assignment]  (N, N, M, M), sqrt(PL) folded in
    f: np.ndarray = None  # type: ignore[assignment]  (K, M), sqrt(PL / sigma2) folded in
    layout: StarLayout = None  # type: ignore[assignment]
    p_max: float = 20.0
    r_min: float = 1.0
    second_order: bool = True
    second_side: int = 0
    ris_noise: float = 0.0  # sigma_r^2 / sigma2
    ris_budget: float | None = None  # W per RIS
    sigma2: float = 1.0  # W
    sic_order: str = "distance"
    d_user: np.ndarray = None  # type: ignore[assignment]
    constraint_tol: float = 1e-3

    def __post_init__(self) -> None:
        self._torch: dict[str, Any] = {}

    @property
    def K(self) -> int:
        return self.f.shape[0]

    # -- the model (NumPy or torch) ----------------------------------------------------------------
    def _arrays(self, lib: Any, ref: Any) -> tuple[Any, Any, Any]:
        if lib is np:
            return self.F, self.G, self.f
        import torch

        if not self._torch or self._torch["F"].device != ref.device:
            self._torch = {k: torch.as_tensor(getattr(self, k), dtype=torch.complex128, device=ref.device)
                           for k in ("F", "G", "f")}
        return self._torch["F"], self._torch["G"], self._torch["f"]

    def channel_parts(self, lib: Any, x: Mapping[str, Any]) -> tuple[Any, Any, Any]:
        """``(h (K, N_BS), C (N_BS, N_BS), c (2, N, M))``: the noise-normalised user channels, the noise
        covariance ``I + (sigma_r^2 / sigma2) sum_n A_n D_n A_n^H`` and the RIS coefficients."""
        F, G, f = self._arrays(lib, x["theta"])
        c = coefficients(lib, x["delta"], x["alpha"], x["theta"])
        A = routes(lib, F, G, c, self.second_order, self.second_side)
        h = user_channels(lib, A, c, f, self.layout)
        n_bs = F.shape[1]
        eye = np.eye(n_bs, dtype=np.complex128) if lib is np else lib.eye(n_bs, dtype=h.dtype, device=h.device)
        C = eye
        if self.ris_noise > 0:
            C = C + self.ris_noise * ris_noise_covariance(lib, A, c)
        return h, C, c

    def decoding_order(self, h: np.ndarray) -> list[int]:
        """Users in SIC decoding order: closest RIS first; inside a RIS strongest first (module docstring)."""
        if self.sic_order == "gain":
            strength = np.sum(np.abs(np.asarray(h)) ** 2, axis=1)
        else:
            strength = -np.asarray(self.d_user, dtype=np.float64)
        order: list[int] = []
        for group in self.layout.decoding_groups():
            order += sorted(group, key=lambda k: (-strength[k], k))
        return order

    def rates_lib(self, lib: Any, x: Mapping[str, Any]) -> Any:
        """Per-user MMSE-SIC rates ``(K,)`` in bit/s/Hz."""
        h, C, _ = self.channel_parts(lib, x)
        hd = h.detach().cpu().numpy() if lib is not np else h
        order = self.decoding_order(hd)
        p = x["p"]
        ho = h[order]
        po = p[order]
        outer = po[:, None, None] * (ho[:, :, None] * ho.conj()[:, None, :])  # (K, B, B)
        # S_i = sum_{j >= i} (in decoding order): reversed cumulative sum
        if lib is np:
            tail = np.cumsum(outer[::-1], axis=0)[::-1]
        else:
            tail = outer.flip(0).cumsum(0).flip(0)
        ld = _logdet(lib, C[None] + tail)  # (K,)
        ld0 = _logdet(lib, C)
        nxt = lib.concatenate([ld[1:], ld0.reshape(1)]) if lib is np else lib.cat([ld[1:], ld0.reshape(1)])
        r_ordered = (ld - nxt) / _LN2
        inv = np.argsort(order)
        return r_ordered[list(inv)]

    def sum_rate_lib(self, lib: Any, x: Mapping[str, Any]) -> Any:
        """``log2 det(C + sum_k p_k h_k h_k^H) - log2 det(C)`` (order-free)."""
        h, C, _ = self.channel_parts(lib, x)
        S = (x["p"][:, None, None] * (h[:, :, None] * h.conj()[:, None, :])).sum(0)
        return (_logdet(lib, C + S) - _logdet(lib, C)) / _LN2

    def ris_output_power(self, lib: Any, x: Mapping[str, Any]) -> Any:
        """``P_out,n`` in W per RIS (the budget's left side; module docstring)."""
        _, _, f = self._arrays(lib, x["theta"])
        c = coefficients(lib, x["delta"], x["alpha"], x["theta"])
        gain = c.real ** 2 + c.imag ** 2  # (2, N, M)
        fpow = f.real ** 2 + f.imag ** 2  # (K, M), noise-normalised
        n_ris = c.shape[1]
        incident = []
        for s in (0, 1):
            rows = []
            for n in range(n_ris):
                users = [k for k in range(self.K) if self.layout.assoc[k] == n and self.layout.side[k] == s]
                if users:
                    rows.append((x["p"][users][:, None] * fpow[users]).sum(0))
                else:
                    rows.append(fpow[0] * 0.0)
            incident.append(lib.stack(rows))
        incident = lib.stack(incident)  # (2, N, M), in units of sigma2
        return self.sigma2 * (gain * (incident + self.ris_noise)).sum(0).sum(-1)

    def fit_budget(self, x: Mapping[str, np.ndarray]) -> Vars:
        """``x`` with the amplification ``delta`` of every RIS over its budget scaled down onto it (``P_out,n``
        is linear in ``delta_n``); unchanged without a budget."""
        out = dict(x)
        if self.ris_budget is not None:
            power = np.asarray(self.ris_output_power(np, _np(x)))
            scale = np.where(power > self.ris_budget, self.ris_budget / np.where(power > 0, power, 1.0), 1.0)
            out["delta"] = np.asarray(x["delta"]) * scale[None, :, None]
        return out

    def _constraints(self, lib: Any, x: Mapping[str, Any]) -> dict[str, Any]:
        out = {"qos": self.rates_lib(lib, x) - self.r_min}
        if self.ris_budget is not None:
            out["ris_power"] = 1.0 - self.ris_output_power(lib, x) / self.ris_budget
        return out

    def utility(self, x: Vars) -> float:
        return float(self.sum_rate_lib(np, _np(x)))

    def rates(self, x: Vars) -> np.ndarray:
        return np.asarray(self.rates_lib(np, _np(x)))

    def constraints(self, x: Vars) -> dict[str, np.ndarray]:
        return self._constraints(np, _np(x))

    def extra_metrics(self, x: Vars) -> dict[str, float]:
        """``reward``: the DDPG reward of eq. (29) at ``x`` with ``c1 = c2 = c3 = 1`` (:func:`reward_of_rates`),
        recorded for every solver, since seed 003's Fig. 2 compares the agents by reward."""
        return {"reward": reward_of_rates(self.rates(x), self.r_min)}

    def loss_torch(self, x: Mapping[str, Any]) -> Any:
        """``-sum_k R_k`` (the order-free log-det form); constraints are left to :meth:`constraints_torch`."""
        return -self.sum_rate_lib(_torch(), x)

    def constraints_torch(self, x: Mapping[str, Any]) -> dict[str, Any]:
        return self._constraints(_torch(), x)

    # -- initial points ----------------------------------------------------------------------------
    def _initial(self, method: str, rng: np.random.Generator) -> Vars:
        n_ris, m = self.F.shape[0], self.F.shape[2]
        delta_max = self.variables["delta"].constraint.hi  # type: ignore[attr-defined]
        if method == "uniform":
            x = {"p": np.full(self.K, self.p_max / self.K), "delta": np.full((2, n_ris, m), delta_max),
                 "alpha": np.full((n_ris, m), 0.5), "theta": np.ones((2, n_ris, m), dtype=np.complex128)}
            return self.fit_budget(x)
        x = self.random_feasible(rng)
        # uniform on the face sum p = P_max (every p_k > 0: a projected uniform draw would silence users, and
        # with a silent user the log-det's unit eigenvalue makes the float64 sum rate sensitive to round-off)
        x["p"] = self.p_max * rng.dirichlet(np.ones(self.K))
        x["delta"] = rng.uniform(0.0, delta_max, (2, n_ris, m))
        x["alpha"] = rng.uniform(0.0, 1.0, (n_ris, m))
        return x


def reward_of_rates(rates: np.ndarray, r_min: float, c1: float = 1.0, c2: float = 1.0, c3: float = 1.0) -> float:
    """Seed 003's reward, eq. (29) as corrected in SCENARIOS.md section 7: ``c1 sum_k R_k + c2 sum_k min(0, R_k -
    R_min) - c3 #{k: R_k = 0}`` (a rate below 1e-9 bit/s/Hz counts as zero)."""
    r = np.asarray(rates, dtype=np.float64)
    return float(c1 * r.sum() + c2 * np.minimum(0.0, r - r_min).sum() - c3 * np.sum(r < 1e-9))


def action_size(problem: StarRisNomaProblem) -> int:
    """Length of the real action vector of :func:`action_to_vars`: ``K + 5 N M``."""
    n_ris, m = problem.F.shape[0], problem.F.shape[2]
    return problem.K + 5 * n_ris * m


def action_to_vars(problem: StarRisNomaProblem, a: Any) -> dict[str, Any]:
    """The DDPG action mapping of SCENARIOS.md section 7 (seed 003, eqs. (16)-(17)) for the variables of this
    scenario: a real vector ``a`` (NumPy or torch, length :func:`action_size`) split into ``(K | 2NM | NM | 2NM)``
    scores, mapped to ``p = P_max softmax``, ``delta = delta_max sigmoid``, ``alpha^r = sigmoid``,
    ``theta = e^{j 2 pi sigmoid}``. Every image lies in the variables' sets (C5-C10), whatever ``a``; the
    association and the receivers are not actions here (fixed by geometry, MMSE-SIC; module docstring).
    Differentiable in torch (for an actor trained through the scenario's loss)."""
    n_ris, m = problem.F.shape[0], problem.F.shape[2]
    k, nm = problem.K, n_ris * m
    if len(a) != action_size(problem):
        raise ValueError(f"star-ris-noma action: length {len(a)}, expected {action_size(problem)} (K + 5 N M)")
    delta_max = problem.variables["delta"].constraint.hi  # type: ignore[attr-defined]
    if hasattr(a, "detach"):
        import torch

        sig = torch.sigmoid
        p = problem.p_max * torch.softmax(a[:k], 0)
        theta = torch.exp(2j * math.pi * sig(a[k + 3 * nm:]).to(torch.complex128))
    else:
        a = np.asarray(a, dtype=np.float64)

        def sig(v: np.ndarray) -> np.ndarray:
            return 0.5 * (1.0 + np.tanh(0.5 * v))  # the logistic function without overflow

        z = np.exp(a[:k] - np.max(a[:k]))
        p = problem.p_max * z / z.sum()
        theta = np.exp(2j * np.pi * sig(a[k + 3 * nm:]))
    return {"p": p, "delta": (delta_max * sig(a[k:k + 2 * nm])).reshape(2, n_ris, m),
            "alpha": sig(a[k + 2 * nm:k + 3 * nm]).reshape(n_ris, m), "theta": theta.reshape(2, n_ris, m)}


def _np(x: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {"p": np.asarray(x["p"], dtype=np.float64), "delta": np.asarray(x["delta"], dtype=np.float64),
            "alpha": np.asarray(x["alpha"], dtype=np.float64),
            "theta": np.asarray(x["theta"], dtype=np.complex128)}


def _torch() -> Any:
    import torch

    return torch


def star_variables(k: int, n_ris: int, m: int, p_max: float, delta_max: float) -> dict[str, Variable]:
    return {
        "p": Variable((k,), Simplex(p_max), complex=False, role="power"),
        "delta": Variable((2, n_ris, m), Box(0.0, delta_max), complex=False, role="other"),
        "alpha": Variable((n_ris, m), Box(0.0, 1.0), complex=False, role="other"),
        "theta": Variable((2, n_ris, m), UnitModulus(), role="scattering"),
    }


class StarRisNoma(Scenario):
    name = "star-ris-noma"
    description = "uplink NOMA via multiple active STAR-RISs, second-order reflections, MMSE-SIC (seed 003)"
    params = {
        "N_BS": Param(4, "BS antennas", min=1, max=64),
        "N": Param(2, "active STAR-RISs on a line (RIS 1 the farthest)", min=1, max=16),
        "M": Param(4, "elements per RIS", min=1, max=256),
        "K": Param(4, "users (a multiple of N: K / N per RIS)", min=1, max=128),
        "sides": Param("split", "users per RIS and side: split (half reflection, half transmission) | r | t",
                       choices=("split", "r", "t")),
        "P_max": Param(20.0, "sum transmit power budget of the users in W", min=1e-9),
        "R_min": Param(1.0, "QoS: minimum rate of every user in bit/s/Hz", min=0),
        "delta_max_db": Param(25.0, "largest amplification power gain delta_max in dB (0: passive)", min=0,
                              max=60),
        "second_order": Param(True, "second-order reflections through the closer RISs (false: single reflection)"),
        "second_side": Param("r", "side the closer RIS uses for a second-order path: r | t", choices=("r", "t")),
        "ris_noise_dbm": Param(None, "amplifier noise power per element in dBm (none: no noise, as the paper)",
                               nullable=True),
        "ris_power_budget": Param(None, "amplified output power budget per RIS in W (none: no budget)",
                                  nullable=True),
        "sic_order": Param("distance", "strongest first inside a RIS by: distance (nearest user first, a "
                                       "fixed order) | gain (||h_k||^2 at the point)", choices=SIC_ORDERS),
    }
    default_sweep = {"P_max": [20.0]}
    default_instances = 3
    generator_version = "1"

    def check_params(self, params: Mapping[str, Any]) -> str | None:
        if params["K"] % params["N"]:
            return f"K={params['K']} must be a multiple of N={params['N']} (K / N users per RIS)"
        for key in ("ris_noise_dbm", "ris_power_budget"):
            v = params[key]
            if v is not None:
                try:
                    v = float(v)
                except (TypeError, ValueError):
                    return f"{key} must be a number or none, got {v!r}"
                if not math.isfinite(v) or (key == "ris_power_budget" and v <= 0):
                    return f"{key} must be finite{' and positive' if key == 'ris_power_budget' else ''}"
        return None

    def draw(self, params: Mapping[str, Any], rng: np.random.Generator) -> Channel:
        return draw_star(rng, params["N_BS"], params["N"], params["M"], params["K"])

    def problem(self, params: Mapping[str, Any], channel: Channel) -> StarRisNomaProblem:
        n_ris, m, k = params["N"], params["M"], params["K"]
        sigma2 = dbm_to_watt(NOISE_DBM)
        d_user = np.asarray(channel["d_user"], dtype=np.float64)
        pl_f, pl_g, pl_u = large_scale(n_ris, d_user)
        F = np.asarray(channel["F"], dtype=np.complex128) * np.sqrt(pl_f)[:, None, None]
        G = np.asarray(channel["G"], dtype=np.complex128) * np.sqrt(pl_g)[:, :, None, None]
        f = np.asarray(channel["f"], dtype=np.complex128) * np.sqrt(pl_u / sigma2)[:, None]
        noise = params["ris_noise_dbm"]
        budget = params["ris_power_budget"]
        delta_max = db_to_linear(params["delta_max_db"])
        return StarRisNomaProblem(
            variables=star_variables(k, n_ris, m, params["P_max"], delta_max),
            scenario=self.name,
            params=dict(params),
            init_methods=("uniform", "random"),
            F=F, G=G, f=f,
            layout=StarLayout.even(n_ris, k, params["sides"]),
            p_max=float(params["P_max"]),
            r_min=float(params["R_min"]),
            second_order=bool(params["second_order"]),
            second_side=0 if params["second_side"] == "r" else 1,
            ris_noise=0.0 if noise is None else dbm_to_watt(float(noise)) / sigma2,
            ris_budget=None if budget is None else float(budget),
            sigma2=sigma2,
            sic_order=params["sic_order"],
            d_user=d_user,
        )


@hookimpl
def wbench_register_scenarios(register) -> None:
    register(StarRisNoma())
