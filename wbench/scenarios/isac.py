"""``isac``: H-RSMA integrated sensing and communication (seed 000, section V; SCENARIOS.md section 4).

Cerna Loli & Clerckx, "Meta-learning for large-scale H-RSMA, ISAC and BD-RIS" (seed 000), section V. The
transmitter, users, CSIT, stream layouts and sample-average rates are those of :mod:`wbench.scenarios.hrsma`
(reused: :class:`IsacProblem` subclasses :class:`~wbench.scenarios.hrsma.HrsmaProblem`), without QoS
(``R_th = 0``). The same precoded signal probes ``N`` radar targets at azimuths ``theta_n``; with unit-power
independent streams the transmit covariance is ``P P^H`` and the probing power (eq. (23)) is

    probing(P) = sum_n a(theta_n)^H P P^H a(theta_n) = tr(P^H A P),   A = sum_n a(theta_n) a(theta_n)^H.

The objective of eq. (23) and the meta-loss (eq. (24)) is ``ASR + lambda_r * probing`` (``loss_torch`` is its
negative); ``lambda_r`` is the radar weight, swept.

* **Utility pair.** What the harness scores (:class:`IsacScoringProblem`): ``ESR + lambda_r * probing`` with
  the ESR on ``M_eval`` held-out draws (as ``hrsma``); the probing power does not depend on the draws. Both
  parts are run metrics (:meth:`IsacScoringProblem.extra_metrics`, leaderboard columns ``metric_esr`` and
  ``metric_probing``) together with the share of the probing power each stream group carries
  (``metric_share_common`` ``p_c``, ``metric_share_group`` the group commons, ``metric_share_private`` the
  privates, ``metric_share_top`` the largest single stream): :func:`stream_shares`.
* **Steering vector** (``steering`` parameter). ``uca`` (default): ``a_i(theta) = exp(-j 2 pi psi(theta).r_i /
  lambda)`` on the UCA of the users' channels (:func:`wbench.channels.onering.steering`) -- the vector the
  one-ring correlation eq. (13) is built from, so that a target at a user group's azimuth is probed where that
  group is served (SCENARIOS.md's correction: the paper's form with ``exp(+j ...)`` would mirror a UCA's
  beampattern by ``pi``). ``ula`` (paper-literal, labelled as such): ``a_i(theta) = exp(j 2 pi delta i
  sin(theta))``, ``delta = 1/2``, ``i = 0..Nt-1`` (eq. (23)'s text), although the array is a UCA.

Choices where the paper is silent (also in the README's scenario table):

* Fig. 6 states no SNR, ``M``, number of CSIT realisations or start: 20 dB, SVD-MRT (the ``hrsma`` split
  70/25/5), ``M = 200`` and ``M_eval = 2000`` at the small size (SCENARIOS.md suggests ``M = 1000`` and 15
  realisations at the paper size).
* ``lambda_r`` default sweep ``{1e-5, 10^{-2.5}, 1e-2, 1e-1}`` (four points of the paper's 9-point grid
  ``10^{-5}, 10^{-4.5}, .., 10^{-1}``, :data:`PAPER_LAMBDA_GRID`, so the paper-grid sweep reuses these runs),
  with ``scheme`` ``hrsma`` and ``sdma`` and 3 realisations: 24 runs per solver, so that ``compare --solvers
  meta,conventional`` (7 solvers) fits 5 minutes on 2 cores (3.4 minutes measured on the shared 2-core
  machine; 19-31 CPU-s per H-RSMA realisation for the seven, ``multistart``'s 10 SLSQP starts and
  ``saa-wmmse`` most of it, 5-6 CPU-s per SDMA one). The points are where the small config's trade-off moves:
  the probing power is at most ``N Nt P_t`` (1600 here), so ``lambda_r <= 1e-3`` weighs it by at most
  1.6 bit/s/Hz against an ESR near 17 and gives nearly the designs of ``1e-5`` (measured: probing 290 vs
  260, ESR within 0.03), while ``10^{-2.5}``, ``1e-2`` and ``1e-1`` trace the bend (probing about 500,
  930, 1100 for H-RSMA). At the paper size the bound is ``N Nt P_t = 20000`` (``Nt = 100``) and the full
  grid is wanted: ``--sweep lambda_r=`` the values of :data:`PAPER_LAMBDA_GRID` (README). A ``lambda_r``
  means different trade-offs at different SNRs and sizes: compare trade-off curves.
* Small config (the default): ``Nt = 8, K = 8, G = 4`` at ``azimuths=paper`` (``-pi/2, -pi/6, pi/6, pi/2``),
  ``Delta = pi/8`` (disjoint; ``pi/3`` overlapping), targets ``+-pi/6``, 20 dB, ``se2 = 0.8``.
  Paper config: ``--set Nt=100 --set K=40 --set G=4 --set M=1000 --set M_eval=1000`` (``Delta = pi/8`` or
  ``pi/3``), 15 realisations, ``metaopt-alg1[iters=7500]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..channels import onering
from ..hookspecs import hookimpl
from ..params import Param
from ..problem import Problem, Vars
from ..rsma import RsmaLayout, SaaData, asr, saa_asr_and_grad
from ..scenario import Channel
from .hrsma import Hrsma, HrsmaProblem, HrsmaScoringProblem, parse_angle

STEERINGS = ("uca", "ula")
#: The paper's radar-weight grid (Fig. 6): 10^-5, 10^-4.5, .., 10^-1.
PAPER_LAMBDA_GRID = tuple(float(10.0 ** e) for e in np.arange(-5.0, -0.99, 0.5))
#: The default sweep (module docstring): the comms end and the bend of the trade-off at the small config.
DEFAULT_LAMBDA_GRID = (1e-5, PAPER_LAMBDA_GRID[5], 1e-2, 1e-1)


def parse_targets(text: str | float) -> np.ndarray:
    """The targets' azimuths from ``-pi/6;pi/6`` (radians; ``pi`` expressions and ``deg`` suffixes read)."""
    if isinstance(text, (int, float)):
        return np.array([float(text)])
    parts = [p for p in str(text).split(";") if p.strip()]
    if not parts:
        raise ValueError("targets: give at least one azimuth (e.g. -pi/6;pi/6)")
    return np.array([parse_angle(p) for p in parts])


def steering_vectors(nt: int, angles: np.ndarray | float, kind: str = "uca") -> np.ndarray:
    """Steering vectors ``a(theta)`` (shape ``angles.shape + (Nt,)``, unit-modulus entries; module docstring):
    ``uca`` on the channels' circular array (:func:`wbench.channels.onering.steering`), ``ula`` the paper's
    literal half-wavelength ULA form ``exp(j pi i sin(theta))``."""
    a = np.asarray(angles, dtype=np.float64)
    if kind == "uca":
        return onering.steering(onering.uca_positions(nt), a)
    if kind == "ula":
        return np.exp(1j * np.pi * np.sin(a)[..., None] * np.arange(nt))
    raise ValueError(f"steering must be one of {', '.join(STEERINGS)}, not {kind!r}")


def probing_matrix(steer: np.ndarray) -> np.ndarray:
    """``A = sum_n a_n a_n^H`` from the rows ``a_n`` of ``steer`` (``(N, Nt)``)."""
    return steer.T @ steer.conj()


def probing_power(P: Any, A: Any) -> Any:
    """``tr(P^H A P) = sum_n a_n^H P P^H a_n`` (NumPy or torch ``P``, ``A`` of the same kind)."""
    if type(P).__module__.startswith("torch"):
        import torch

        return torch.view_as_real(P.conj() * (A @ P)).select(-1, 0).sum()
    return float(np.real(np.sum(P.conj() * (A @ P))))


def beampattern(P: np.ndarray, steer: np.ndarray) -> np.ndarray:
    """``|a(theta)^H p_j|^2`` per direction and column (``(n_angles, S)``); the beampattern of ``P`` is the
    sum over columns, ``a^H P P^H a``."""
    G = steer.conj() @ np.asarray(P)
    return G.real ** 2 + G.imag ** 2


def stream_shares(P: np.ndarray, steer: np.ndarray, layout: RsmaLayout) -> dict[str, float]:
    """Share of the probing power at the targets (rows of ``steer``) carried by ``p_c`` (``common``), the
    group commons (``group``), the privates (``private``) and the largest single stream (``top``); all 0 for
    a zero precoder."""
    per = beampattern(P, steer).sum(axis=0)
    total = float(per.sum())
    if total <= 0:
        return {"common": 0.0, "group": 0.0, "private": 0.0, "top": 0.0}
    c = float(per[layout.common]) if layout.has_common else 0.0
    g = float(per[[layout.group_common(i) for i in range(layout.G)]].sum()) if layout.has_group_commons else 0.0
    p = float(per[layout.first_private:].sum())
    return {"common": c / total, "group": g / total, "private": p / total, "top": float(per.max()) / total}


@dataclass
class IsacProblem(HrsmaProblem):
    """One CSIT realisation as the solver sees it: maximise ``ASR + lambda_r * probing`` (eq. (23)) with the
    in-sample ASR on the ``M`` SAA draws; no QoS."""

    A: np.ndarray = None  # type: ignore[assignment]  # (Nt, Nt) probing matrix sum_n a_n a_n^H
    steer: np.ndarray = None  # type: ignore[assignment]  # (N, Nt) targets' steering vectors
    lambda_r: float = 0.0
    _torch_A: dict = field(default_factory=dict, repr=False, compare=False)

    def probing(self, x: Mapping[str, Any]) -> Any:
        """Sum probing power at the targets (NumPy or torch ``P``)."""
        P = x["P"]
        if type(P).__module__.startswith("torch"):
            import torch

            key = (str(P.device), P.dtype)
            if self._torch_A.get("key") != key:
                self._torch_A["A"] = torch.as_tensor(self.A, dtype=P.dtype, device=P.device)
                self._torch_A["key"] = key
            return probing_power(P, self._torch_A["A"])
        return probing_power(np.asarray(P), self.A)

    def utility(self, x: Vars) -> float:
        P = np.asarray(x["P"])
        return float(asr(*self.rates({"P": P}))) + self.lambda_r * self.probing({"P": P})

    def loss_torch(self, x: Mapping[str, Any]) -> Any:
        """``-(ASR + lambda_r * probing)`` (seed 000, eq. (24))."""
        return -asr(*self.rates(x)) - self.lambda_r * self.probing(x)

    def penalised_loss_torch(self, x: Mapping[str, Any], weight: float | None = None) -> Any:
        return self.loss_torch(x)  # no QoS, no constraint beyond the power ball

    def loss_and_grad_numpy(self, x: Vars) -> tuple[float, Vars]:
        """``loss_torch`` and its gradient written out (equal to autograd's, tested): the ASR part by
        :func:`wbench.rsma.saa_asr_and_grad`, the probing part ``tr(P^H A P)`` with gradient ``2 A P``
        (``A`` Hermitian; torch's convention ``d/dRe P + i d/dIm P``)."""
        P = np.asarray(x["P"], dtype=np.complex128)
        value, grad = saa_asr_and_grad(self.H, P, self.layout, self.sigma2)
        AP = self.A @ P
        probing = float(np.real(np.sum(P.conj() * AP)))
        return -(value + self.lambda_r * probing), {"P": -(grad + 2.0 * self.lambda_r * AP)}

    def saa_data(self) -> SaaData:
        """As ``hrsma``'s, with the probing matrix and radar weight (``saa-wmmse`` linearises the term)."""
        return SaaData(H=self.H, layout=self.layout, power=self.power, sigma2=self.sigma2, R_th=0.0,
                       probing=self.A, radar_weight=self.lambda_r)

    def closed_form_optimum(self) -> float | None:
        return None


@dataclass
class IsacScoringProblem(HrsmaScoringProblem):
    """The harness's problem: ``ESR + lambda_r * probing`` with the ESR on the held-out draws."""

    def utility(self, x: Vars) -> float:
        s = self.seen
        assert isinstance(s, IsacProblem)
        return float(asr(*self.rates(x))) + s.lambda_r * s.probing({"P": np.asarray(x["P"])})

    def extra_metrics(self, x: Vars) -> dict[str, float]:
        """``esr`` (held-out ASR, bit/s/Hz), ``probing`` and the stream shares (:func:`stream_shares`)."""
        s = self.seen
        assert isinstance(s, IsacProblem)
        P = np.asarray(x["P"])
        out = {"esr": float(asr(*self.rates(x))), "probing": s.probing({"P": P})}
        out.update({f"share_{k}": v for k, v in stream_shares(P, s.steer, s.layout).items()})
        return out


class Isac(Hrsma):
    name = "isac"
    description = ("H-RSMA / SDMA integrated sensing and communication: ESR + lambda_r * probing power at radar "
                   "targets, SAA with held-out scoring (seed 000, Cerna Loli & Clerckx, sec. V)")
    params = {
        **{k: v for k, v in Hrsma.params.items() if k not in ("R_th", "qos_weight")},
        "K": Param(8, "single-antenna users", min=1, max=1024),
        "G": Param(4, "user groups (contiguous, equal sizes)", min=1, max=1024),
        "azimuths": Param("paper", "group azimuths: even | paper | G angles separated by ';' (e.g. -pi/4;pi/4)"),
        "Delta": Param("pi/8", "angular spread of the one-ring model (pi/8 disjoint, pi/3 overlapping)"),
        "se2": Param(0.8, "CSIT error variance sigma_e^2", min=0.0, max=1.0),
        "targets": Param("-pi/6;pi/6", "radar target azimuths separated by ';' (radians; pi/6, 30deg)"),
        "lambda_r": Param(1e-3, "radar weight lambda of eq. (23): utility ESR + lambda_r * probing", min=0.0),
        "steering": Param("uca", "target steering vector: uca (the channels' array) | ula (paper-literal)",
                          choices=STEERINGS),
    }
    default_sweep = {"scheme": ["hrsma", "sdma"], "lambda_r": list(DEFAULT_LAMBDA_GRID)}
    default_instances = 3
    generator_version = "1"

    def check_params(self, params: Mapping[str, Any]) -> str | None:
        try:
            parse_targets(params["targets"])
        except ValueError as exc:
            return str(exc)
        return super().check_params({**params, "R_th": 0.0, "qos_weight": 0.0})

    def problem(self, params: Mapping[str, Any], channel: Channel) -> IsacProblem:
        base = super().problem({**params, "R_th": 0.0, "qos_weight": 0.0}, channel)
        steer = steering_vectors(params["Nt"], parse_targets(params["targets"]), params["steering"])
        return IsacProblem(
            variables=base.variables, scenario=self.name, params=dict(params), init_methods=base.init_methods,
            constraint_tol=base.constraint_tol, H=base.H, H_hat=base.H_hat, R_sqrt=base.R_sqrt,
            layout=base.layout, power=base.power, sigma2=base.sigma2, R_th=0.0, qos_weight=0.0,
            A=probing_matrix(steer), steer=steer, lambda_r=float(params["lambda_r"]),
        )

    def scoring_problem(self, params: Mapping[str, Any], channel: Channel, seen: Problem) -> IsacScoringProblem:
        base = super().scoring_problem(params, channel, seen)
        return IsacScoringProblem(variables=base.variables, scenario=self.name, params=dict(params),
                                  init_methods=base.init_methods, constraint_tol=base.constraint_tol,
                                  H=base.H, seen=base.seen)


@hookimpl
def wbench_register_scenarios(register) -> None:
    register(Isac())


@hookimpl
def wbench_register_figures(register) -> None:
    """The ``tradeoff`` and ``beampattern`` figure kinds (:mod:`wbench.scenarios.isac_figures`)."""
    from .isac_figures import register_figures

    register_figures(register)


__all__ = ["Isac", "IsacProblem", "IsacScoringProblem", "steering_vectors", "probing_matrix", "probing_power",
           "beampattern", "stream_shares", "parse_targets", "PAPER_LAMBDA_GRID"]
