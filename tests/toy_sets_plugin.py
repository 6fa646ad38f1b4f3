"""A toy scenario for the new constraint kinds, each case with a closed-form (or bisection) optimum.

``case=block`` (per-BS power budgets, :class:`~wbench.problem.BlockPowerBall`): one single-antenna user
served by ``N`` BSs of ``I`` antennas each, jointly, ``y = h^H v s + n``, ``||v_b||^2 <= P_b`` with
``P_b = P w_b``, ``w = (1, 0.4, 0.7, ...)`` (cycled); utility ``log2(1 + |h^H v|^2)``, ``sigma2 = 1``. By
Cauchy-Schwarz per block, ``|h^H v| <= sum_b ||h_b|| ||v_b|| <= sum_b ||h_b|| sqrt(P_b)``, reached by
``v_b = sqrt(P_b) h_b / ||h_b||``: the optimum is ``log2(1 + (sum_b sqrt(P_b) ||h_b||)^2)``.

``case=qos`` (scenario rate constraints): ``K`` parallel channels with gains ``g_k`` (parameter ``gains``),
amplitudes ``a`` (real, ``||a||^2 <= P``, powers ``p_k = a_k^2``), utility ``sum_k log2(1 + g_k p_k)``, and the
QoS constraint ``log2(1 + g_0 p_0) >= r_0`` on the weakest channel with ``r_0 = log2(1 + g_0 P / K)`` (the
rate of an equal power share, which water-filling does not give it). The optimum is water-filling with a
floor: ``p_k = max(f_k, mu - 1/g_k)`` with ``f_0 = P / K``, ``f_k = 0`` otherwise and ``sum p = P``.
Feasibility tolerance of the constraint: ``1e-3`` bit/s/Hz (the tolerance SCENARIOS.md gives ``hrsma``).

``case=product`` (the hybrid precoder's power, :class:`~wbench.problem.ProductPower`): one user, a hybrid
transmitter with ``Nt`` antennas and ``N_RF = 2`` RF chains, ``F_RF`` unit modulus, ``F_BB`` unconstrained,
``||F_RF F_BB||^2 <= P``; utility ``log2(1 + |h^H F_RF f_BB|^2)``. Two phase shifters per entry realise any
fully-digital vector (Zhang & Huang 2014; Sohrabi & Yu 2016), so the optimum is the MRT one,
``log2(1 + P ||h||^2)``.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from wbench import (BlockPowerBall, Param, PowerBall, PrecodingView, Problem, ProductPower, Scenario,
                    Unconstrained, UnitModulus, Variable, hookimpl)
from wbench.channels.rayleigh import cn

BUDGET_SHARES = (1.0, 0.4, 0.7, 0.25)


def waterfill_with_floor(g: np.ndarray, floor: np.ndarray, total: float) -> np.ndarray:
    """``p_k = max(f_k, mu - 1/g_k)`` with ``sum p = total`` (needs ``sum f <= total``)."""
    def excess(mu: float) -> float:
        return float(np.maximum(floor, mu - 1.0 / g).sum() - total)

    hi = total + float(np.max(1.0 / g)) + 1.0
    mu = brentq(excess, 0.0, hi, xtol=1e-15, rtol=1e-15)
    return np.maximum(floor, mu - 1.0 / g)


class ToySetsProblem(Problem):
    def __init__(self, case: str, channel: dict, params: dict) -> None:
        self.case = case
        self.power = 10 ** (params["snr_db"] / 10)
        joint = ()
        if case == "block":
            n, i = params["N"], params["I"]
            self.h = channel["h"][: n * i]
            self.budgets = self.power * np.array([BUDGET_SHARES[b % len(BUDGET_SHARES)] for b in range(n)])
            variables = {"v": Variable((n * i, 1), BlockPowerBall(tuple(self.budgets), (i,) * n),
                                       role="precoder")}
        elif case == "qos":
            self.g = np.array([float(t) for t in str(params["gains"]).split(";")])
            k = self.g.size
            self.r0 = float(np.log2(1 + self.g[0] * self.power / k))
            variables = {"a": Variable((k,), PowerBall(self.power), complex=False, role="power")}
        else:
            nt = params["I"]
            self.h = channel["h"][:nt]
            variables = {"F_RF": Variable((nt, 2), UnitModulus(), role="analog_precoder"),
                         "F_BB": Variable((2, 1), Unconstrained(), role="digital_precoder")}
            joint = (ProductPower("F_RF", "F_BB", self.power),)
        super().__init__(variables, "toy-sets", params, ("random",), joint=joint,
                         constraint_tol=1e-3 if case == "qos" else 1e-6)

    # -- the model --------------------------------------------------------------------------------
    def _gain(self, x, xp):
        if self.case == "block":
            return self.h.conj() @ x["v"][:, 0]
        return self.h.conj() @ (x["F_RF"] @ x["F_BB"])[:, 0]

    def utility(self, x):
        if self.case == "qos":
            return float(np.sum(np.log2(1 + self.g * np.asarray(x["a"]) ** 2)))
        return float(np.log2(1 + np.abs(self._gain({k: np.asarray(v) for k, v in x.items()}, np)) ** 2))

    def loss_torch(self, x):
        import torch

        if self.case == "qos":
            g = torch.as_tensor(self.g)
            return -torch.log2(1 + g * x["a"] ** 2).sum()
        h = torch.as_tensor(self.h)
        v = x["v"][:, 0] if self.case == "block" else (x["F_RF"] @ x["F_BB"])[:, 0]
        return -torch.log2(1 + (h.conj() @ v).abs() ** 2)

    def constraints(self, x):
        if self.case != "qos":
            return {}
        a = np.asarray(x["a"])
        return {"qos": np.array([np.log2(1 + self.g[0] * a[0] ** 2) - self.r0])}

    def constraints_torch(self, x):
        import torch

        if self.case != "qos":
            return {}
        return {"qos": (torch.log2(1 + self.g[0] * x["a"][0] ** 2) - self.r0).reshape(1)}

    def precoding_view(self, x):
        if self.case != "block":
            raise NotImplementedError("only the block case is a linear-precoding problem")
        return PrecodingView.build(self, x, self.h[None, :], np.ones(1), 1.0)

    @property
    def has_precoding_view(self) -> bool:
        return self.case == "block"

    # -- oracles ----------------------------------------------------------------------------------
    def closed_form_optimum(self) -> float:
        if self.case == "block":
            n, i = self.params["N"], self.params["I"]
            norms = np.linalg.norm(self.h.reshape(n, i), axis=1)
            return float(np.log2(1 + np.sum(np.sqrt(self.budgets) * norms) ** 2))
        if self.case == "qos":
            return float(np.sum(np.log2(1 + self.g * self.qos_powers())))
        return float(np.log2(1 + self.power * np.sum(np.abs(self.h) ** 2)))

    def qos_powers(self) -> np.ndarray:
        floor = np.zeros(self.g.size)
        floor[0] = self.power / self.g.size
        return waterfill_with_floor(self.g, floor, self.power)

    def qos_multiplier(self) -> float:
        """``lambda`` of the QoS constraint at the optimum (bits per bit): from the KKT conditions,
        ``(1 + lambda) g_0 / (1 + g_0 p_0) = g_k / (1 + g_k p_k)`` for a channel ``k`` with ``p_k > 0``."""
        p = self.qos_powers()
        k = int(np.argmax(np.where(np.arange(p.size) > 0, p, -1.0)))
        return float((1 / self.g[0] + p[0]) / (1 / self.g[k] + p[k]) - 1.0)


class ToySets(Scenario):
    name = "toy-sets"
    description = "toy cases of the new constraint kinds with known optima (tests only)"
    params = {
        "case": Param("block", "block (per-BS budgets), qos (rate constraint), product (||F_RF F_BB||^2 <= P)",
                      choices=("block", "qos", "product")),
        "N": Param(2, "BSs (case block)", min=1, max=4),
        "I": Param(2, "antennas per BS (block) / antennas (product)", min=1, max=8),
        "snr_db": Param(10.0, "P / sigma2 in dB"),
        "gains": Param("0.3;1;2", "channel gains g_k (case qos), the first the weakest"),
    }
    default_sweep = {}
    default_instances = 3

    def draw(self, params, rng):
        return {"h": cn(rng, (32,))}

    def problem(self, params, channel):
        return ToySetsProblem(params["case"], channel, dict(params))


def toy_sets_problem(seed: int, **given) -> ToySetsProblem:
    sc = ToySets()
    params = sc.resolve_params(given)
    return sc.problem(params, sc.draw(params, np.random.default_rng(seed)))


@hookimpl
def wbench_register_scenarios(register):
    register(ToySets())
