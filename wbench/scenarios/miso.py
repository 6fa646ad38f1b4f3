"""``miso``: MISO downlink weighted sum rate (seed 001, Xia & Gunduz, MLBF; SCENARIOS.md section 1).

A base station with ``Nt`` antennas serves ``K`` single-antenna users over i.i.d. Rayleigh channels
``h_k ~ CN(0, I_Nt)`` with linear precoding ``x = sum_k v_k s_k``:

    SINR_k = |h_k^H v_k|^2 / (sum_{j != k} |h_k^H v_j|^2 + sigma2)          (seed 001, eq. (2))
    WSR    = sum_k alpha_k log2(1 + SINR_k),   subject to  tr(V V^H) <= P     (seed 001, eq. (3))

with ``sigma2 = 1`` and ``P = 10^(snr_db / 10)``.

Array conventions: the channel array ``H`` has shape ``(K, Nt)`` with row ``k`` equal to ``h_k`` (so the
effective gains are ``H.conj() @ V``, entry ``[k, j] = h_k^H v_j``); the variable ``V`` has shape ``(Nt, K)``.

Choices where the paper is silent (also in the README's scenario table):

* The baselines MRT, ZF and RZF (regulariser ``K sigma2 / P``) scale the whole precoding matrix to full
  power (equal per-user received SNR for ZF), rather than giving each user ``P/K``.
* ``weights`` are equal by default; any positive list of length ``K`` may be given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..channels.rayleigh import cn
from ..hookspecs import hookimpl
from ..params import Param
from ..linalg import stacked_matmul
from ..problem import PowerBall, PrecodingView, Problem, Variable, Vars, linear_precoder
from ..rates import weighted_sum_rate, weighted_sum_rate_torch
from ..scenario import Channel, Scenario


def parse_weights(text: str, k: int) -> np.ndarray:
    """``equal`` or a list like ``1;2;1;1`` / ``1 2 1 1`` of ``K`` positive user weights ``alpha_k``."""
    if text.strip().lower() == "equal":
        return np.ones(k)
    parts = [p for p in text.replace(";", " ").replace("/", " ").split() if p]
    w = np.array([float(p) for p in parts])
    if w.size != k or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError(f"weights must be 'equal' or {k} positive numbers separated by ';'")
    return w


def wsr(H: np.ndarray, V: np.ndarray, weights: np.ndarray, sigma2: float) -> float:
    """Weighted sum rate (bit/s/Hz) of precoder ``V`` (Nt x K) on channel rows ``H`` (K x Nt)."""
    return weighted_sum_rate(H.conj() @ V, weights, sigma2)  # gains[k, j] = h_k^H v_j


@dataclass
class MisoProblem(Problem):
    """One channel realisation of the MISO WSR problem (maximise :meth:`utility`)."""

    H: np.ndarray = None  # type: ignore[assignment]
    weights: np.ndarray = None  # type: ignore[assignment]
    power: float = 1.0
    sigma2: float = 1.0

    def utility(self, x: Vars) -> float:
        return wsr(self.H, np.asarray(x["V"]), self.weights, self.sigma2)

    def loss_torch(self, x: Mapping[str, Any]) -> Any:
        """``-WSR`` as a torch scalar (complex128 ``V``); the power ball is left to projection."""
        import torch

        V = x["V"]
        H = torch.as_tensor(self.H, dtype=V.dtype, device=V.device)
        w = torch.as_tensor(self.weights, dtype=torch.float64, device=V.device)
        return -weighted_sum_rate_torch(H.conj() @ V, w, self.sigma2)

    @classmethod
    def loss_torch_batch(cls, problems: Sequence[Problem], x: Mapping[str, Any]) -> Any:
        """:meth:`loss_torch` of a stack of realisations: channels, weights and noise stacked."""
        import torch

        V = x["V"]
        H = torch.as_tensor(np.stack([p.H for p in problems]), dtype=V.dtype, device=V.device)
        w = torch.as_tensor(np.stack([p.weights for p in problems]), dtype=torch.float64, device=V.device)
        s2 = torch.as_tensor([float(p.sigma2) for p in problems], dtype=torch.float64, device=V.device)
        return -weighted_sum_rate_torch(stacked_matmul(H.conj(), V), w, s2)

    def closed_form_optimum(self) -> float | None:
        """One user: MRT at full power is optimal, ``alpha log2(1 + P ||h||^2 / sigma2)``."""
        if self.H.shape[0] != 1:
            return None
        return float(self.weights[0] * np.log2(1.0 + self.power * np.sum(np.abs(self.H) ** 2) / self.sigma2))

    def precoding_view(self, x: Vars) -> PrecodingView:
        return PrecodingView.build(self, x, self.H, self.weights, self.sigma2)

    def _initial(self, method: str, rng: np.random.Generator) -> Vars:
        if method in ("mrt", "zf", "rzf"):
            return {"V": linear_precoder(PrecodingView(self.H, self.weights, self.power, self.sigma2, "V"), method)}
        return super()._initial(method, rng)


class Miso(Scenario):
    name = "miso"
    description = "MISO downlink weighted sum rate, i.i.d. Rayleigh (seed 001, Xia & Gunduz)"
    params = {
        "Nt": Param(4, "BS antennas", min=1, max=4096),
        "K": Param(4, "single-antenna users", min=1, max=4096),
        "snr_db": Param(20.0, "P / sigma2 in dB (sigma2 = 1)", min=-50, max=100),
        "weights": Param("equal", "user weights alpha_k: 'equal' or K numbers separated by ';'"),
    }
    default_sweep = {"snr_db": [0.0, 10.0, 20.0, 30.0]}
    generator_version = "1"

    def check_params(self, params: Mapping[str, Any]) -> str | None:
        try:
            parse_weights(params["weights"], params["K"])
        except ValueError as exc:
            return str(exc)
        return None

    def draw(self, params: Mapping[str, Any], rng: np.random.Generator) -> Channel:
        return {"H": cn(rng, (params["K"], params["Nt"]))}

    def problem(self, params: Mapping[str, Any], channel: Channel) -> MisoProblem:
        nt, k = params["Nt"], params["K"]
        power = 10.0 ** (params["snr_db"] / 10.0)
        inits = ("mrt", "rzf") + (("zf",) if k <= nt else ()) + ("random",)
        return MisoProblem(
            variables={"V": Variable((nt, k), PowerBall(power), role="precoder")},
            scenario=self.name,
            params=dict(params),
            init_methods=inits,
            H=np.asarray(channel["H"], dtype=np.complex128),
            weights=parse_weights(params["weights"], k),
            power=power,
            sigma2=1.0,
        )


@hookimpl
def wbench_register_scenarios(register) -> None:
    register(Miso())
