"""``bdris``: RIS and beyond-diagonal RIS aided MU-MISO sum rate (seed 000, section VI; SCENARIOS.md §2).

A BS with ``Nt`` antennas serves ``K`` single-antenna users through a (BD-)RIS of ``B`` elements; there is
no direct link. With ``G in C^{B x Nt}`` (BS -> RIS), ``h_k in C^B`` (RIS -> user k), scattering matrix
``Phi`` and precoder ``P = [p_1 .. p_K]``:

    y_k = h_k^H Phi G P s + n_k                                                  (seed 000, eq. (27))
    SINR_k = |h_k^H Phi G p_k|^2 / (sum_{j != k} |h_k^H Phi G p_j|^2 + sigma2)
    SR = sum_k log2(1 + SINR_k),    tr(P P^H) <= P_t                             (eq. (30))

``architecture``:

* ``diagonal``: conventional RIS, ``Phi = diag(phi)``, ``|phi_b| = 1`` (eq. (28)); the variable ``Phi`` is the
  vector ``phi`` of length ``B``;
* ``fully``: fully-connected BD-RIS, ``Phi^H Phi = I_B`` (eq. (29));
* ``group``: group-connected BD-RIS (Li, Shen, Clerckx 2023; seed 000 ref. [50]): block-diagonal with
  unitary blocks of size ``group_size`` (``group_size = 1`` is the diagonal RIS, ``= B`` fully connected);

``symmetric=true`` adds reciprocity, ``Phi = Phi^T`` (a symmetric unitary matrix is ``U U^T`` with ``U``
unitary, Takagi). Channels: ``G = sqrt(xi_BR) G~``, ``h_k = sqrt(xi_RU) h~_k`` with ``CN(0, 1)`` entries and
``xi = xi0 (d / d0)^(-eps)``, ``xi0 = -30 dB``, ``d0 = 1 m``, ``eps = 2``, ``d_BR = 50 m``, ``d_RU = 2.5 m``,
``sigma2 = -80 dBm`` (seed 000, section VI-B); the transmit power ``pt_dbm`` is the swept "SNR" axis.

Numerics (a choice, not the paper's): the channel arrays are stored small-scale (``G~``, ``h~``) and the
path loss over noise enters as one factor ``xi_BR xi_RU / sigma2``, so that nothing is of order 1e-11;
the model is the same. Feasibility tolerances: power relative 1e-6, unit modulus 1e-6, unitarity and
symmetry 1e-6 in Frobenius norm (``wbench.problem``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..channels.pathloss import dbm_to_watt, path_loss
from ..channels.rayleigh import cn
from ..hookspecs import hookimpl
from ..params import Param
from ..linalg import stacked_matmul
from ..problem import (BlockUnitary, PowerBall, PrecodingView, Problem, Unitary, UnitModulus, Variable, Vars,
                       WarmStart)
from ..rates import weighted_sum_rate, weighted_sum_rate_torch
from ..scenario import Channel, Scenario

ARCHITECTURES = ("diagonal", "fully", "group")


@dataclass
class BdrisProblem(Problem):
    """One realisation: maximise the sum rate over ``P`` (precoder) and ``Phi`` (scattering)."""

    G: np.ndarray = None  # type: ignore[assignment]  (B x Nt, small-scale)
    Hr: np.ndarray = None  # type: ignore[assignment]  (K x B, row k = h~_k)
    gain: float = 1.0  # xi_BR xi_RU / sigma2
    power: float = 1.0  # P_t in W
    architecture: str = "fully"

    def phi_matrix(self, phi: Any, xp: Any = np) -> Any:
        """The ``B x B`` scattering matrix from the variable (the vector ``phi`` for a diagonal RIS)."""
        return xp.diag(phi) if self.architecture == "diagonal" else phi

    def effective_channel(self, phi: np.ndarray) -> np.ndarray:
        """Rows ``sqrt(gain) h~_k^H Phi G~`` (K x Nt), noise-normalised: a MISO channel for the precoder."""
        return np.sqrt(self.gain) * (self.Hr.conj() @ self.phi_matrix(np.asarray(phi)) @ self.G)

    def closed_form_optimum(self) -> float | None:
        """Single-user optima (SCENARIOS.md §2; Nerini, Shen, Clerckx): with a fully-connected BD-RIS
        (reciprocal or not) ``log2(1 + gain P ||h||^2 sigma_max(G)^2)``; with a diagonal RIS and one BS antenna
        ``log2(1 + gain P (sum_b |h_b| |g_b|)^2)``. ``None`` elsewhere (several users, group-connected)."""
        if self.Hr.shape[0] != 1:
            return None
        h = self.Hr[0]
        b = self.G.shape[0]
        group = self.params.get("group_size")
        fully = self.architecture == "fully" or (self.architecture == "group" and group == b)
        diagonal = self.architecture == "diagonal" or (self.architecture == "group" and group == 1)
        if fully:
            s = np.linalg.svd(self.G, compute_uv=False)[0]
            return float(np.log2(1.0 + self.gain * self.power * np.sum(np.abs(h) ** 2) * s**2))
        if diagonal and self.G.shape[1] == 1:
            return float(np.log2(1.0 + self.gain * self.power * np.sum(np.abs(h) * np.abs(self.G[:, 0])) ** 2))
        return None

    def diagonal(self) -> "BdrisProblem":
        """The diagonal-RIS version of this problem on the same channel (``phi`` on the complex circle)."""
        b = self.G.shape[0]
        variables = dict(self.variables, Phi=Variable((b,), UnitModulus(), role="scattering"))
        params = dict(self.params, architecture="diagonal", symmetric=False)
        return dataclasses.replace(self, variables=variables, params=params, architecture="diagonal")

    def warm_start(self) -> WarmStart | None:
        """A BD-RIS (``fully``/``group``) starts from the diagonal RIS on the same channel, embedded as
        ``Phi = diag(phi)`` (unitary, block-unitary and symmetric): seed 000, section VI-B, initialises the
        BD-RIS meta-learner with the diagonal-RIS meta solution. ``None`` for a diagonal RIS."""
        if self.architecture == "diagonal":
            return None
        return WarmStart("diagonal", self.diagonal(), lambda x: {"P": x["P"], "Phi": np.diag(x["Phi"])})

    def precoding_view(self, x: Vars) -> PrecodingView:
        """The MU-MISO precoding problem on the effective channel, ``Phi`` fixed (noise-normalised)."""
        A = self.effective_channel(x["Phi"])
        return PrecodingView.build(self, x, A.conj(), np.ones(A.shape[0]), 1.0)

    def utility(self, x: Vars) -> float:
        return weighted_sum_rate(self.effective_channel(x["Phi"]) @ np.asarray(x["P"]), 1.0, 1.0)

    def loss_torch(self, x: Mapping[str, Any]) -> Any:
        import torch

        P, Phi = x["P"], x["Phi"]
        G = torch.as_tensor(self.G, dtype=P.dtype, device=P.device)
        Hr = torch.as_tensor(self.Hr, dtype=P.dtype, device=P.device)
        A = np.sqrt(self.gain) * (Hr.conj() @ self.phi_matrix(Phi, torch) @ G)
        return -weighted_sum_rate_torch(A @ P, 1.0, 1.0)

    @classmethod
    def loss_torch_batch(cls, problems: Sequence[Problem], x: Mapping[str, Any]) -> Any:
        """:meth:`loss_torch` of a stack of realisations (one architecture): channels stacked."""
        import torch

        P, Phi = x["P"], x["Phi"]
        G = torch.as_tensor(np.stack([p.G for p in problems]), dtype=P.dtype, device=P.device)
        Hr = torch.as_tensor(np.stack([p.Hr for p in problems]), dtype=P.dtype, device=P.device)
        gain = torch.as_tensor([np.sqrt(p.gain) for p in problems], dtype=P.real.dtype, device=P.device)
        if len({p.architecture for p in problems}) != 1:
            raise ValueError("loss_torch_batch: realisations of different architectures")
        M = torch.diag_embed(Phi) if problems[0].architecture == "diagonal" else Phi
        A = gain[:, None, None] * stacked_matmul(stacked_matmul(Hr.conj(), M), G)
        return -weighted_sum_rate_torch(stacked_matmul(A, P), 1.0, 1.0)

    def _initial(self, method: str, rng: np.random.Generator) -> Vars:
        b = self.G.shape[0]
        if method == "mrt":  # Phi = identity (phi = 1), P = MRT on the effective channel at full power
            phi = np.ones(b, complex) if self.architecture == "diagonal" else np.eye(b, dtype=complex)
            A = self.effective_channel(phi)
            P = A.conj().T
            return {"P": P * np.sqrt(self.power / np.sum(np.abs(P) ** 2)), "Phi": phi}
        return super()._initial(method, rng)


class Bdris(Scenario):
    name = "bdris"
    description = "RIS / beyond-diagonal RIS aided MU-MISO sum rate (seed 000, Cerna Loli & Clerckx, sec. VI)"
    params = {
        "Nt": Param(4, "BS antennas", min=1, max=1024),
        "K": Param(4, "single-antenna users", min=1, max=1024),
        "B": Param(16, "RIS elements", min=1, max=1024),
        "architecture": Param("fully", "diagonal | fully | group", choices=ARCHITECTURES),
        "group_size": Param(4, "elements per group (architecture=group)", min=1),
        "symmetric": Param(False, "reciprocal BD-RIS, Phi = Phi^T"),
        "pt_dbm": Param(30.0, "transmit power P_t in dBm", min=-50, max=80),
        "noise_dbm": Param(-80.0, "noise power sigma2 in dBm", min=-200, max=50),
        "d_br": Param(50.0, "BS-RIS distance in m", min=1e-3),
        "d_ru": Param(2.5, "RIS-user distance in m", min=1e-3),
    }
    default_sweep = {"architecture": ["diagonal", "fully"]}
    default_instances = 10  # the headline command (meta + conventional solvers) in about 2 minutes on 2 cores
    generator_version = "1"

    def check_params(self, params: Mapping[str, Any]) -> str | None:
        if params["architecture"] == "group" and params["B"] % params["group_size"]:
            return f"B={params['B']} is not a multiple of group_size={params['group_size']}"
        return None  # symmetric=true with a diagonal RIS is allowed: a diagonal matrix is symmetric

    def draw(self, params: Mapping[str, Any], rng: np.random.Generator) -> Channel:
        return {"G": cn(rng, (params["B"], params["Nt"])), "H": cn(rng, (params["K"], params["B"]))}

    def problem(self, params: Mapping[str, Any], channel: Channel) -> BdrisProblem:
        nt, k, b = params["Nt"], params["K"], params["B"]
        arch, sym = params["architecture"], bool(params["symmetric"])
        if arch == "diagonal":
            phi = Variable((b,), UnitModulus(), role="scattering")
        elif arch == "fully":
            phi = Variable((b, b), Unitary(symmetric=sym), role="scattering")
        else:
            phi = Variable((b, b), BlockUnitary(params["group_size"], symmetric=sym), role="scattering")
        power = dbm_to_watt(params["pt_dbm"])
        gain = path_loss(params["d_br"]) * path_loss(params["d_ru"]) / dbm_to_watt(params["noise_dbm"])
        return BdrisProblem(
            variables={"P": Variable((nt, k), PowerBall(power), role="precoder"), "Phi": phi},
            scenario=self.name,
            params=dict(params),
            init_methods=("mrt", "random"),
            G=np.asarray(channel["G"], dtype=np.complex128),
            Hr=np.asarray(channel["H"], dtype=np.complex128),
            gain=gain,
            power=power,
            architecture=arch,
        )


@hookimpl
def wbench_register_scenarios(register) -> None:
    register(Bdris())
