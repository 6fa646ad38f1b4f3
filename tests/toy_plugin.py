"""A toy scenario for testing generic solvers: single-user RIS with a unitary or unit-modulus variable.

    y = h^H Phi G p s + n,   utility = log2(1 + |h^H Phi G p|^2 / sigma2),   ||p||^2 <= P,  sigma2 = 1

``architecture=unitary``: ``Phi`` (B x B) on the unitary group; the optimum is
``log2(1 + P ||h||^2 sigma_max(G)^2)`` (align the dominant right singular vector of ``G`` with ``h``).
``architecture=diagonal``: ``Phi = diag(phi)``, ``|phi_b| = 1``; with one BS antenna (``Nt = 1``) the
optimum is ``log2(1 + P (sum_b |h_b| |g_b|)^2)`` (co-phase every path).
"""

from __future__ import annotations

import numpy as np

from wbench import Param, PowerBall, Problem, Scenario, Unitary, UnitModulus, Variable, hookimpl
from wbench.channels.rayleigh import cn


class ToyRisProblem(Problem):
    def __init__(self, G, h, power, architecture, params):
        nt, b = G.shape[1], G.shape[0]
        phi = (Variable((b, b), Unitary(), role="scattering") if architecture == "unitary"
               else Variable((b,), UnitModulus(), role="scattering"))
        super().__init__({"p": Variable((nt,), PowerBall(power), role="precoder"), "Phi": phi}, "toy-ris",
                         params, ("identity", "random"))
        self.G, self.h, self.power, self.architecture = G, h, power, architecture

    def _phi(self, phi, xp):
        return phi if self.architecture == "unitary" else xp.diag(phi)

    def utility(self, x):
        g = self.h.conj() @ self._phi(np.asarray(x["Phi"]), np) @ self.G @ np.asarray(x["p"])
        return float(np.log2(1.0 + np.abs(g) ** 2))

    def loss_torch(self, x):
        import torch

        G = torch.as_tensor(self.G, device=x["p"].device)
        h = torch.as_tensor(self.h, device=x["p"].device)
        g = h.conj() @ self._phi(x["Phi"], torch) @ G @ x["p"]
        return -torch.log2(1.0 + g.abs() ** 2)

    def closed_form(self) -> float:
        if self.architecture == "unitary":
            s = np.linalg.svd(self.G, compute_uv=False)[0]
            return float(np.log2(1 + self.power * np.sum(np.abs(self.h) ** 2) * s**2))
        assert self.G.shape[1] == 1
        return float(np.log2(1 + self.power * np.sum(np.abs(self.h) * np.abs(self.G[:, 0])) ** 2))

    def _initial(self, method, rng):
        if method == "random":
            return self.random_feasible(rng)
        b = self.G.shape[0]
        phi = np.eye(b, dtype=complex) if self.architecture == "unitary" else np.ones(b, complex)
        eff = self.h.conj() @ self._phi(phi, np) @ self.G
        p = eff.conj() / np.linalg.norm(eff) * np.sqrt(self.power)
        return {"p": p, "Phi": phi}


class ToyRis(Scenario):
    name = "toy-ris"
    description = "single-user RIS toy with closed-form optima (tests only)"
    params = {
        "Nt": Param(2, "BS antennas", min=1),
        "B": Param(4, "RIS elements", min=1),
        "architecture": Param("unitary", "unitary or diagonal", choices=("unitary", "diagonal")),
        "snr_db": Param(10.0, "P / sigma2 in dB"),
    }
    default_sweep = {}
    default_instances = 5

    def draw(self, params, rng):
        return {"G": cn(rng, (params["B"], params["Nt"])), "h": cn(rng, (params["B"],))}

    def problem(self, params, channel):
        return ToyRisProblem(channel["G"], channel["h"], 10 ** (params["snr_db"] / 10), params["architecture"],
                             dict(params))


@hookimpl
def wbench_register_scenarios(register):
    register(ToyRis())
