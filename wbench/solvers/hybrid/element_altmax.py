"""``element-altmax``: per-element analog design with ZF digital and water-filling for MU-MISO hybrid precoding.

F. Sohrabi, W. Yu, "Hybrid digital and analog beamforming design for large-scale antenna arrays", IEEE
JSTSP 10(3), 2016, section IV, Algorithm 3 (the conventional baseline of seed 002; SCENARIOS.md section 5).
In the rows-``h_k^H`` convention (``Hs = H^*``, row ``k`` = ``h_k^H``) with power weights ``p`` (start: all 1)
and ``Ht = diag(p)^{-1/2} Hs``:

1. Analog step, eq. (37): minimise ``f(F_RF) = tr((Ht F_RF F_RF^H Ht^H)^{-1})`` over unit-modulus ``F_RF``, one
   element at a time. For column ``j`` let ``Vb`` be ``F_RF`` without it, ``A_j = Ht Vb Vb^H Ht^H``,
   ``B_j = Ht^H A_j^{-2} Ht``, ``D_j = Ht^H A_j^{-1} Ht``; by Sherman-Morrison
   ``f = tr(A_j^{-1}) - v^H B_j v / (1 + v^H D_j v)`` (eq. (39)), with ``v`` the column. For element ``i``,
   ``x = v_i``: ``zB = B_ii + sum_{m,n != i} v_m^* B_mn v_n``, ``eB = sum_{l != i} B_il v_l`` (the same for
   ``D``), and the ratio ``(zB + 2 Re(x^* eB)) / (1 + zD + 2 Re(x^* eD))`` is maximised over ``|x| = 1`` in
   closed form (eq. (41)): ``C = (1 + zD) eB - zB eD``, ``z = 2 Im(eB^* eD)``, ``s = asin(z / |C|)``, candidates
   ``exp(-j(-arg C + s))`` and ``exp(-j(pi - arg C - s))``, the better one kept. Sweeps over all elements
   repeat until ``f`` decreases by less than ``1e-3`` relative.
2. Digital step, eqs. (32)-(34): ZF ``F_BB~ = F_RF^H Hs^H (Hs F_RF F_RF^H Hs^H)^{-1}``,
   ``q_k = [F_BB~^H F_RF^H F_RF F_BB~]_kk``, water-filling ``p_k = (nu / q_k - sigma2)^+`` with
   ``sum_k q_k p_k = P``; ``Ht`` is rebuilt from the new ``p`` and the two steps repeat (at most
   ``max_outer`` times) until ``p`` settles (largest change ``<= 1e-3`` of ``max p``).
   ``F_BB = F_BB~ diag(sqrt p)`` meets the power exactly, and user ``k``'s rate is ``log2(1 + p_k / sigma2)``.

Choices where the paper is silent (SCENARIOS.md section 5): ``A_j`` has rank ``N_RF - 1 < K`` when
``N_RF = K`` and is singular; it is regularised, ``A_j + eps I`` with ``eps = 1e-6 tr(Ht F_RF F_RF^H Ht^H) / K``
(only then). ``asin`` gets its argument clipped to ``[-1, 1]`` (round-off). The best point over the outer
iterations (by sum rate) is returned. The start is the analog part of ``init`` (default ``random-zf``:
uniform random phases).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ...hookspecs import hookimpl
from ...params import Param
from ...problem import Problem
from ...solver import RunContext, Solution, Solver

_SETTLE_RTOL = 1e-3


def element_update(zB: float, eB: complex, zD: float, eD: complex) -> complex:
    """The unit-modulus ``x`` maximising ``(zB + 2 Re(x^* eB)) / (1 + zD + 2 Re(x^* eD))`` (eq. (41))."""
    C = (1.0 + zD) * eB - zB * eD
    if abs(C) == 0.0:
        return 1.0 + 0j
    z = 2.0 * float(np.imag(np.conj(eB) * eD))
    s = float(np.arcsin(np.clip(z / abs(C), -1.0, 1.0)))
    a = float(np.angle(C))
    cands = (np.exp(-1j * (-a + s)), np.exp(-1j * (np.pi - a - s)))
    vals = [(zB + 2 * np.real(np.conj(x) * eB)) / (1.0 + zD + 2 * np.real(np.conj(x) * eD)) for x in cands]
    return complex(cands[int(np.argmax(vals))])


def analog_objective(Ht: np.ndarray, F_RF: np.ndarray) -> float:
    """``f = tr((Ht F_RF F_RF^H Ht^H)^{-1})`` (eq. (37))."""
    M = Ht @ F_RF
    return float(np.real(np.trace(np.linalg.inv(M @ M.conj().T))))


def column_sweep(Ht: np.ndarray, F_RF: np.ndarray, j: int, regularise: bool) -> np.ndarray:
    """One pass of the element updates over column ``j`` of ``F_RF`` (returns the new column)."""
    k = Ht.shape[0]
    Vb = np.delete(F_RF, j, axis=1)
    M = Ht @ Vb
    A = M @ M.conj().T
    if regularise:
        HF = Ht @ F_RF
        A = A + 1e-6 * float(np.real(np.trace(HF @ HF.conj().T))) / k * np.eye(k)
    Ainv = np.linalg.inv(A)
    D = Ht.conj().T @ Ainv @ Ht
    B = Ht.conj().T @ Ainv @ Ainv @ Ht
    v = F_RF[:, j].copy()
    Bv, Dv = B @ v, D @ v
    vBv, vDv = float(np.real(np.vdot(v, Bv))), float(np.real(np.vdot(v, Dv)))
    for i in range(v.size):
        eB = Bv[i] - B[i, i] * v[i]
        eD = Dv[i] - D[i, i] * v[i]
        zB = vBv - 2.0 * float(np.real(np.conj(v[i]) * eB))
        zD = vDv - 2.0 * float(np.real(np.conj(v[i]) * eD))
        x = element_update(zB, eB, zD, eD)
        delta = x - v[i]
        Bv += B[:, i] * delta
        Dv += D[:, i] * delta
        v[i] = x
        vBv = zB + 2.0 * float(np.real(np.conj(x) * eB))
        vDv = zD + 2.0 * float(np.real(np.conj(x) * eD))
    return v


def water_filling(q: np.ndarray, power: float, sigma2: float) -> np.ndarray:
    """``p_k = (nu / q_k - sigma2)^+`` with ``sum_k q_k p_k = power`` (eq. (34))."""
    order = np.argsort(q)
    qs = q[order]
    nu = 0.0
    for m in range(len(qs), 0, -1):
        nu = (power + sigma2 * qs[:m].sum()) / m
        if nu > qs[m - 1] * sigma2:
            break
    return np.maximum(nu / q - sigma2, 0.0)


class ElementAltMax(Solver):
    """Sohrabi & Yu 2016, Algorithm 3 (module docstring)."""

    name = "element-altmax"
    version = "1"
    description = "per-element analog update + ZF/water-filling digital (Sohrabi & Yu 2016, Alg. 3)"
    tags = frozenset({"conventional"})
    scenarios = ("hybrid",)
    multi_start = True
    options = {
        "max_outer": Param(10, "analog/digital alternations (p updates), at most", min=1),
        "inner_tol": Param(1e-3, "stop the element sweeps when f decreases by less than this, relative", min=0),
        "max_sweeps": Param(100, "element sweeps per analog step, at most", min=1),
        "init": Param("random-zf", "start: the analog part of this initial point (random-zf, phase-zf, random)"),
    }
    budget_options = ("max_outer",)

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        opts = self.resolve_options(options)
        Hs = problem.H.conj()
        k = Hs.shape[0]
        sigma2, power = problem.sigma2, problem.power
        F_RF = np.array(ctx.initial(problem, opts["init"])["F_RF"], dtype=np.complex128)
        regularise = F_RF.shape[1] == k
        p = np.ones(k)
        best, best_rate, sweeps = None, -np.inf, 0
        f_trace: list[list[float]] = []  # f after every element sweep, one list per outer iteration
        for outer in range(1, opts["max_outer"] + 1):
            Ht = Hs / np.sqrt(np.maximum(p, 1e-300))[:, None]
            f = analog_objective(Ht, F_RF)
            f_trace.append([f])
            for _ in range(opts["max_sweeps"]):
                for j in range(F_RF.shape[1]):
                    F_RF[:, j] = column_sweep(Ht, F_RF, j, regularise)
                sweeps += 1
                f_new = analog_objective(Ht, F_RF)
                f_trace[-1].append(f_new)
                done = (f - f_new) < opts["inner_tol"] * abs(f)
                f = f_new
                if done or ctx.expired():
                    break
            Fbb = F_RF.conj().T @ Hs.conj().T @ np.linalg.inv(Hs @ F_RF @ F_RF.conj().T @ Hs.conj().T)
            q = np.real(np.diag(Fbb.conj().T @ F_RF.conj().T @ F_RF @ Fbb))
            p_new = water_filling(q, power, sigma2)
            x = {"F_RF": F_RF.copy(), "F_BB": Fbb * np.sqrt(p_new)[None, :]}
            rate = problem.utility(x)
            if rate > best_rate:
                best, best_rate = x, rate
            ctx.checkpoint(best, outer)
            settled = np.max(np.abs(p_new - p)) <= _SETTLE_RTOL * np.max(p_new)
            p = np.where(p_new > 0, p_new, 1e-12 * np.max(p_new))  # a user switched off keeps a tiny weight
            if settled or ctx.expired():
                break
        return Solution(x=best, iterations=sweeps, info={"outer": outer, "f_trace": f_trace})


@hookimpl
def wbench_register_solvers(register) -> None:
    register(ElementAltMax())
