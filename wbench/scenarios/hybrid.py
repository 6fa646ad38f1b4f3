"""``hybrid``: mmWave hybrid precoding for the MU-MISO downlink (seed 002, GGML; SCENARIOS.md section 5).

A base station with ``Nt`` antennas (half-wavelength ULA) and ``N_RF`` RF chains serves ``K`` single-antenna
users with ``x = F_RF F_BB s``: ``F_RF`` (``Nt x N_RF``) is a fully connected phase-shifter network, every entry
unit modulus (no ``1/sqrt(Nt)``), ``F_BB`` (``N_RF x K``) the digital precoder, and the power
``||F_RF F_BB||_F^2 <= P`` is a joint constraint (:class:`~wbench.problem.ProductPower`, whose projection
rescales ``F_BB`` as seed 002's eq. (16), ``F_BB <- sqrt(P) F_BB / ||F_RF F_BB||_F``). The utility is the sum rate

    R = sum_k log2(1 + |h_k^H F_RF f_BB,k|^2 / (sum_{j != k} |h_k^H F_RF f_BB,j|^2 + sigma2))

with ``sigma2 = 1`` and ``P = 10^(snr_db / 10)``, through :mod:`wbench.rates` on the effective fully-digital
precoder ``F_RF F_BB``. The paper plots the average *per-user* rate (the authors' code prints the mean over
users): compare ``utility / K`` with its figures.

Channel: Saleh-Valenzuela, :mod:`wbench.channels.saleh_valenzuela` (``clusters x rays``, Laplacian ray
angles of standard deviation ``spread`` degrees), ``E ||h_k||^2 = Nt``.

Imperfect CSI (GGML-ImCSI; the paper's formulas are lost, reconstructed as SCENARIOS.md section 5):
``h^_k = h_k + e_k`` with ``e_k ~ CN(0, delta ||h_k||^2 / Nt I)`` (``delta = csi_error``; the error law is
circularly symmetric, so ``h = h^ + e`` and ``h^ = h + e`` describe the same joint law of the pair up to
the sign of ``e``). Each realisation holds the true channel ``H`` (hidden, :attr:`Hybrid.hidden`) and the
estimate ``H_hat``; solvers optimise on ``H_hat`` and the harness scores on ``H``
(:meth:`Hybrid.scoring_problem`). With ``csi_error = 0``, ``H_hat`` equals ``H`` exactly. The true channel
is drawn first and the error after it, so the same seed gives the same true channels for every ``delta``.

Channel sets from elsewhere (a MATLAB set converted with ``scipy.io.loadmat``, another simulator) are read
by ``--channels FILE.npz`` in the layout of :mod:`wbench.channels.channelset`: arrays ``H`` and ``H_hat``,
each ``(n, K, Nt)`` complex, row ``k`` the channel ``h_k`` (received signal ``h_k^H x``; a MATLAB ``Nt x K``
matrix ``H`` with ``y = H' x`` is ``H.T`` here). For perfect CSI write ``H_hat = H``:
:func:`write_channel_set` does.

Initial points (:attr:`HybridProblem.init_methods`): ``random-zf`` (the default: the authors' start,
``F_RF`` with i.i.d. uniform phases and ZF digital on the effective channel ``H F_RF`` scaled to full
power), ``phase-zf`` (column ``k`` of ``F_RF`` the phases of ``h_k``, i.e. ``exp(j arg H^H)`` in the rows-``h_k^H``
convention of SCENARIOS.md; the columns beyond ``K`` when ``N_RF > K`` random phases; ZF digital), ``random`` (any
random feasible point: random phases, Gaussian ``F_BB`` at full power).

There is no linear-precoding view (:class:`~wbench.problem.PrecodingView` needs a ``precoder`` variable in a
power ball; here the power couples two variables), so the generic WMMSE does not apply; the hybrid solvers
(:mod:`wbench.solvers.hybrid`) optimise the digital part on the whitened effective channel instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..channels.rayleigh import cn
from ..channels.saleh_valenzuela import saleh_valenzuela
from ..hookspecs import hookimpl
from ..params import Param
from ..problem import ProductPower, Problem, Unconstrained, UnitModulus, Variable, Vars
from ..rates import weighted_sum_rate, weighted_sum_rate_torch
from ..scenario import Channel, Scenario

SIGMA2 = 1.0


def sum_rate(H: np.ndarray, F: np.ndarray, sigma2: float = SIGMA2) -> float:
    """Sum rate (bit/s/Hz) of the effective precoder ``F`` (``Nt x K``) on channel rows ``H`` (``K x Nt``)."""
    return weighted_sum_rate(np.asarray(H).conj() @ F, 1.0, sigma2)


def zf_digital(H: np.ndarray, F_RF: np.ndarray, power: float) -> np.ndarray:
    """ZF digital precoder on the effective channel ``A = H^* F_RF`` (rows ``h_k^H F_RF``),
    ``F_BB = A^H (A A^H)^{-1}``, scaled so that ``||F_RF F_BB||_F^2 = power``."""
    A = np.asarray(H).conj() @ F_RF
    F_BB = A.conj().T @ np.linalg.pinv(A @ A.conj().T)
    return scale_to_power(F_RF, F_BB, power)


def scale_to_power(F_RF: np.ndarray, F_BB: np.ndarray, power: float) -> np.ndarray:
    """``F_BB`` scaled so that ``||F_RF F_BB||_F^2 = power`` (seed 002, eq. (16))."""
    norm2 = float(np.sum(np.abs(F_RF @ F_BB) ** 2))
    if norm2 <= 0 or not np.isfinite(norm2):
        raise ValueError("the hybrid precoder is zero or not finite: cannot scale it to power")
    return F_BB * np.sqrt(power / norm2)


@dataclass
class HybridProblem(Problem):
    """One realisation of hybrid precoding (maximise :meth:`utility`, the sum rate on :attr:`H`)."""

    H: np.ndarray = None  # type: ignore[assignment]
    power: float = 1.0
    sigma2: float = SIGMA2
    n_rf: int = 1
    #: ``delta`` of the imperfect-CSI model (0: the solver's ``H`` is the true channel).
    csi_error: float = 0.0

    @property
    def users(self) -> int:
        return int(self.H.shape[0])

    @property
    def antennas(self) -> int:
        return int(self.H.shape[1])

    def utility(self, x: Vars) -> float:
        return sum_rate(self.H, np.asarray(x["F_RF"]) @ np.asarray(x["F_BB"]), self.sigma2)

    def loss_torch(self, x: Mapping[str, Any]) -> Any:
        """``-R`` (complex128 ``F_RF``, ``F_BB``); the sets and the power are left to projection."""
        import torch

        F = x["F_RF"] @ x["F_BB"]
        H = torch.as_tensor(self.H, dtype=F.dtype, device=F.device)
        return -weighted_sum_rate_torch(H.conj() @ F, torch.ones(self.users, dtype=torch.float64,
                                                                 device=F.device), self.sigma2)

    def closed_form_optimum(self) -> float | None:
        """One user and ``N_RF >= 2``: the hybrid realises MRT at full power exactly (two phase shifters per
        entry), so the optimum is ``log2(1 + P ||h||^2 / sigma2)``."""
        if self.users != 1 or self.n_rf < 2:
            return None
        return float(np.log2(1.0 + self.power * np.sum(np.abs(self.H) ** 2) / self.sigma2))

    def random_phases(self, rng: np.random.Generator, shape: tuple[int, ...] | None = None) -> np.ndarray:
        return np.exp(1j * rng.uniform(0.0, 2.0 * np.pi, size=shape or (self.antennas, self.n_rf)))

    def _initial(self, method: str, rng: np.random.Generator) -> Vars:
        if method == "random-zf":
            F_RF = self.random_phases(rng)
        elif method == "phase-zf":
            F_RF = np.exp(1j * np.angle(self.H.T))[:, : self.n_rf]  # column k: the phases of h_k
            if F_RF.shape[1] < self.n_rf:
                F_RF = np.hstack([F_RF, self.random_phases(rng, (self.antennas, self.n_rf - F_RF.shape[1]))])
        else:
            return super()._initial(method, rng)
        return {"F_RF": F_RF, "F_BB": zf_digital(self.H, F_RF, self.power)}


class Hybrid(Scenario):
    name = "hybrid"
    description = "mmWave hybrid precoding, MU-MISO sum rate, Saleh-Valenzuela ULA (seed 002, GGML)"
    params = {
        "Nt": Param(64, "BS antennas (ULA, half wavelength)", min=1, max=4096),
        "N_RF": Param(4, "RF chains (N_RF >= K)", min=1, max=4096),
        "K": Param(4, "single-antenna users", min=1, max=4096),
        "snr_db": Param(10.0, "P / sigma2 in dB (sigma2 = 1)", min=-50, max=100),
        "csi_error": Param(0.0, "delta: CSI error variance relative to ||h_k||^2 / Nt (0 = perfect)", min=0,
                           max=10),
        "clusters": Param(3, "Saleh-Valenzuela clusters per user", min=1, max=100),
        "rays": Param(30, "rays per cluster", min=1, max=1000),
        "spread": Param(10.0, "angular spread: standard deviation of the Laplacian ray angles (degrees)",
                        min=0, max=180),
    }
    default_sweep = {"snr_db": [10.0]}
    default_instances = 20
    generator_version = "1"
    hidden = ("H",)

    def check_params(self, params: Mapping[str, Any]) -> str | None:
        if params["N_RF"] < params["K"]:
            return f"N_RF={params['N_RF']} RF chains cannot carry K={params['K']} streams (need N_RF >= K)"
        if params["N_RF"] > params["Nt"]:
            return f"N_RF={params['N_RF']} exceeds Nt={params['Nt']}"
        return None

    def draw(self, params: Mapping[str, Any], rng: np.random.Generator) -> Channel:
        k, nt = params["K"], params["Nt"]
        H = saleh_valenzuela(rng, k, nt, params["clusters"], params["rays"], params["spread"])
        var = params["csi_error"] * np.sum(np.abs(H) ** 2, axis=1, keepdims=True) / nt
        E = np.sqrt(var) * cn(rng, (k, nt))
        return {"H": H, "H_hat": H + E}

    def _problem(self, params: Mapping[str, Any], H: np.ndarray) -> HybridProblem:
        nt, n_rf, k = params["Nt"], params["N_RF"], params["K"]
        power = 10.0 ** (params["snr_db"] / 10.0)
        return HybridProblem(
            variables={
                "F_RF": Variable((nt, n_rf), UnitModulus(), role="analog_precoder"),
                "F_BB": Variable((n_rf, k), Unconstrained(), role="digital_precoder"),
            },
            scenario=self.name,
            params=dict(params),
            init_methods=("random-zf", "phase-zf", "random"),
            joint=(ProductPower("F_RF", "F_BB", power),),
            H=np.array(H, dtype=np.complex128),
            power=power,
            sigma2=SIGMA2,
            n_rf=n_rf,
            csi_error=float(params["csi_error"]),
        )

    def problem(self, params: Mapping[str, Any], channel: Channel) -> HybridProblem:
        return self._problem(params, channel["H_hat"])

    def scoring_problem(self, params: Mapping[str, Any], channel: Channel, seen: Problem) -> HybridProblem | None:
        """The problem on the true channel ``H``; ``None`` under perfect CSI (``H_hat`` is ``H`` exactly, so
        the solver's own problem is scored and no in-sample value is recorded)."""
        if params["csi_error"] == 0:
            return None
        return self._problem(params, channel["H"])


def write_channel_set(path: str | Path, H: np.ndarray, H_hat: np.ndarray | None = None) -> None:
    """Write an external channel set for ``--channels``: ``H`` (``n x K x Nt``, row ``k`` = ``h_k``) and its
    estimate ``H_hat`` (default: ``H`` itself, perfect CSI)."""
    H = np.asarray(H, dtype=np.complex128)
    if H.ndim != 3:
        raise ValueError(f"H must be (realisations, K, Nt), got shape {H.shape}")
    H_hat = H if H_hat is None else np.asarray(H_hat, dtype=np.complex128)
    if H_hat.shape != H.shape:
        raise ValueError(f"H_hat has shape {H_hat.shape}, H has {H.shape}")
    np.savez(path, H=H, H_hat=H_hat)


@hookimpl
def wbench_register_scenarios(register) -> None:
    register(Hybrid())
