"""``ao-star``: alternating optimisation for ``star-ris-noma`` (seed 003; SCENARIOS.md section 7, "Baselines").

Javadi et al., "Meta-learning for resource allocation in uplink multi-active STAR-RIS-aided NOMA system",
compare their agents with a "convex approach" they do not specify; this is a documented alternating
optimisation in its place. The receivers are the MMSE-SIC beamformers the scenario computes from the other
variables (they maximise every SINR, so they are optimal at every point and need no step). Each *outer step*
maximises the merit

    M(x) = sum_k R_k - mu (sum_k max(0, R_min - R_k) + sum_n max(0, P_out,n / P_RIS - 1))

(``mu`` the option; the budget term only with ``ris_power_budget``) over two blocks:

(a) powers ``p`` at fixed RIS: one successive-convex-approximation (SCA) step solved by CVXPY (CLARABEL).
    With whitened channels ``g_k = L^{-1} h_k`` (``C = L L^H``) and the decoding order fixed by the RIS (it
    does not depend on ``p``), user ``k`` at position ``i`` has
    ``R_k = log2 det(I + S_i) - log2 det(I + S_{i+1})``, ``S_i = sum_{j >= i} p_j g_j g_j^H``, a difference of
    concave functions of ``p``; the second is replaced by its tangent at the current ``p0`` (an upper bound),
    so the constraint ``R_k^lin(p) >= R_min - s_k`` is convex and implies the true one. The subproblem
    maximises the concave ``log2 det(I + sum_k p_k g_k g_k^H) - mu (sum s + sum t)`` over the simplex
    ``p >= 0, sum p <= P_max``, slacks ``s, t >= 0`` and the (linear in ``p``) RIS budgets
    ``P_out,n(p) / P_RIS - 1 <= t_n``. ``p0`` with ``s, t`` its true shortfalls is feasible for it, and
    the surrogate is tight there, so an exact solution never lowers ``M`` (the standard SCA argument); the
    step is accepted only if ``M`` did not decrease (solver tolerance), else ``p`` stays.
(b) RIS ``(delta, alpha, theta)`` at fixed ``p``: ``pg_iter`` projected-gradient steps on ``-M`` (gradient by
    torch autograd): each block moves along its gradient scaled to its range (``delta_max`` for ``delta``,
    1 for ``alpha`` and the phases), then is projected onto its set (box, box, unit modulus: the last is
    the retraction of the complex circle); with a RIS budget, the ``delta`` of a RIS over it is then scaled
    down onto it (``P_out,n`` is linear in ``delta_n``; ``StarRisNomaProblem.fit_budget``), and the gradient
    leaves out the budget term of ``M`` (whose subgradient at an active budget only shrinks ``delta``).
    Backtracking halves the step until ``M`` does not decrease; the RIS step ends at a step that finds no
    such length (monotone acceptance). The step length starts at 1/4
    in every RIS step and carries over inside it, doubled (at most 1) after a success.

So ``M`` is non-decreasing over outer steps, and once the QoS (and budget) hold, ``M`` is the sum rate and
stays >= it (``M(x') >= M(x) = SR(x)`` and ``SR(x') >= M(x')``): the sum rate is then monotone too
(``info["merit_trace"]``, ``info["rate_trace"]``; tested). The loop stops when ``M`` changes by at most ``tol``
relative, after ``max_outer`` steps, or on the budget; the best merit point is returned.

Baselines (SCENARIOS.md section 7) are configurations: ``phases=random`` keeps random phases (drawn from
``ctx.rng``) and optimises the rest; passive RIS, single active RIS and single reflection are scenario
parameters (``delta_max_db=0``, ``N=1``, ``second_order=false``).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping

import numpy as np

from ...hookspecs import hookimpl
from ...params import Param, ParamError
from ...problem import Problem, Vars
from ...solver import RunContext, Solution, Solver

__all__ = ["AoStar"]

_RIS = ("delta", "alpha", "theta")


def merit(problem: Any, x: Mapping[str, Any], mu: float, lib: Any = np, budget: bool = True) -> Any:
    """``M(x)`` (module docstring) in NumPy (float) or torch (tensor); ``budget=False`` leaves out the RIS
    budget term (the RIS step keeps the budget by rescaling instead)."""
    if lib is np:
        cons = problem.constraints(x)
        sr = problem.utility(x)
        short = sum(float(np.maximum(-v, 0.0).sum()) for k, v in cons.items() if budget or k != "ris_power")
        return sr - mu * short
    cons = problem.constraints_torch(x)
    sr = -problem.loss_torch(x)
    short = sum((-v).clamp(min=0.0).sum() for k, v in cons.items() if budget or k != "ris_power")
    return sr - mu * short


class AoStar(Solver):
    """MMSE-SIC receivers, SCA power step, projected-gradient RIS step (see the module docstring)."""

    name = "ao-star"
    version = "1"
    description = "alternating optimisation: MMSE-SIC, SCA powers under QoS, projected-gradient STAR-RIS (seed 003)"
    tags = frozenset({"conventional"})
    scenarios = ("star-ris-noma",)
    uses_torch = True
    cpu_only = "its power step is a cvxpy program"
    imports = ("cvxpy",)
    multi_start = True
    options = {
        "max_outer": Param(30, "outer (power step + RIS step) iterations at most", min=1),
        "tol": Param(1e-4, "stop when the merit changes by <= tol relative to the previous outer step", min=0),
        "pg_iter": Param(10, "projected-gradient steps per RIS step", min=0),
        "mu": Param(10.0, "merit weight of the QoS and RIS-budget shortfalls (bit/s/Hz per unit)", min=0),
        "power_step": Param("sca", "sca (convex step under QoS) | none (keep the initial powers)",
                            choices=("sca", "none")),
        "phases": Param("optimise", "optimise | random (random phases kept fixed: a baseline)",
                        choices=("optimise", "random")),
        "init": Param("uniform", "starting point: uniform (p = P_max/K, delta = delta_max, alpha = 1/2, "
                                 "theta = 0) or random", choices=("uniform", "random")),
    }
    budget_options = ("max_outer", "pg_iter", "phases")

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        opts = self.resolve_options(options)
        if opts["init"] not in problem.init_methods:
            raise ParamError(f"init: {opts['init']!r} is not one of {', '.join(problem.init_methods)}")
        mu = float(opts["mu"])
        x = {k: np.array(v) for k, v in ctx.initial(problem, opts["init"]).items()}
        if opts["phases"] == "random":
            x["theta"] = np.exp(2j * np.pi * ctx.rng.uniform(size=x["theta"].shape))
        m_prev = merit(problem, x, mu)
        merits, rates, short = [m_prev], [problem.utility(x)], [_shortfall(problem, x)]
        ctx.checkpoint(x, 0)
        stopping = f"max_outer={opts['max_outer']} reached"
        sca_rejected = 0
        t = 0
        for t in range(1, opts["max_outer"] + 1):
            if ctx.expired():
                stopping = "budget spent"
                break
            if opts["power_step"] == "sca":
                p_new = sca_power_step(problem, x, mu)
                if p_new is not None:
                    cand = dict(x, p=p_new)
                    m_cand = merit(problem, cand, mu)
                    if m_cand >= merit(problem, x, mu):
                        x = cand
                    else:
                        sca_rejected += 1
                else:
                    sca_rejected += 1
            free = ("delta", "alpha") if opts["phases"] == "random" else _RIS
            x, _ = ris_steps(problem, x, mu, free, opts["pg_iter"], 0.25, ctx)
            m = merit(problem, x, mu)
            merits.append(m)
            rates.append(problem.utility(x))
            short.append(_shortfall(problem, x))
            ctx.checkpoint(x, t)
            if abs(m - m_prev) <= opts["tol"] * max(abs(m_prev), 1e-12):
                stopping = f"relative change <= tol={opts['tol']:g}"
                break
            m_prev = m
        x = problem.project(x)
        ctx.checkpoint(x, t, force=True)
        return Solution(x=x, iterations=t, info={"merit_trace": merits, "rate_trace": rates,
                                                 "shortfall_trace": short, "stopping": stopping,
                                                 "sca_rejected": sca_rejected})


def _shortfall(problem: Any, x: Mapping[str, np.ndarray]) -> float:
    """``sum`` of the QoS and budget shortfalls (0 when the scenario constraints hold)."""
    return sum(float(np.maximum(-v, 0.0).sum()) for v in problem.constraints(x).values())


def sca_power_step(problem: Any, x: Mapping[str, np.ndarray], mu: float) -> np.ndarray | None:
    """The SCA power subproblem of step (a) at ``x`` (module docstring); ``None`` if CVXPY fails."""
    import cvxpy as cp

    h, C, c = problem.channel_parts(np, x)
    L = np.linalg.cholesky(C)
    g = np.linalg.solve(L, h.T).T  # whitened channels (K, B)
    order = problem.decoding_order(h)
    k, b = g.shape
    p0 = np.asarray(x["p"], dtype=np.float64)
    outer = np.einsum("ka,kb->kab", g, g.conj())

    def real_embed(H: np.ndarray) -> np.ndarray:
        H = (H + H.conj().T) / 2
        return np.block([[H.real, -H.imag], [H.imag, H.real]])

    emb = [real_embed(o) for o in outer]
    eye2 = np.eye(2 * b)
    p = cp.Variable(k, nonneg=True)
    s = cp.Variable(k, nonneg=True)

    def logdet2(users: list[int]) -> Any:
        """``log2 det(I + sum_{users} p_j g_j g_j^H)`` (half the log-det of the real embedding), written as
        ``log2 det(I / lam + sum p_j g_j g_j^H / lam) + B log2 lam`` with ``lam`` the mean eigenvalue at equal
        powers, so that the cone solver sees entries of order one (the SNR is of order 1e8 here)."""
        lam = max(1.0, float(sum(np.real(np.trace(outer[j])) for j in users)) * problem.p_max / k / b)
        expr = eye2 / lam + sum(p[j] * (emb[j] / lam) for j in users)
        return cp.log_det(expr) / (2 * math.log(2)) + b * math.log2(lam)

    cons = [cp.sum(p) <= problem.p_max]
    for i, user in enumerate(order):
        after = order[i + 1:]
        S0 = np.eye(b) + sum((p0[j] * outer[j] for j in after), np.zeros((b, b), complex))
        ld0 = np.linalg.slogdet(S0)[1] / math.log(2)
        if after:
            Sinv = np.linalg.inv(S0)
            slope = np.array([np.real(g[j].conj() @ Sinv @ g[j]) for j in after]) / math.log(2)
            tangent = ld0 + slope @ (p[after] - p0[after])
        else:
            tangent = ld0
        cons.append(logdet2(order[i:]) - tangent >= problem.r_min - s[user])
    penalty = cp.sum(s)
    if problem.ris_budget is not None:
        # P_out,n is affine in p: sigma2 (sum_k a_{n,k} p_k + b_n)
        n_ris = c.shape[1]
        gain = np.abs(c) ** 2  # (2, N, M)
        fpow = np.abs(problem.f) ** 2
        A = np.zeros((n_ris, k))
        for j in range(k):
            n, side = problem.layout.assoc[j], problem.layout.side[j]
            A[n, j] = gain[side, n] @ fpow[j]
        b0 = problem.ris_noise * gain.sum(0).sum(-1)
        tv = cp.Variable(n_ris, nonneg=True)
        cons.append(problem.sigma2 * (A @ p + b0) / problem.ris_budget - 1 <= tv)
        penalty = penalty + cp.sum(tv)
    objective = cp.Maximize(logdet2(list(range(k))) - mu * penalty)
    prob = cp.Problem(objective, cons)
    # SCS (a bounded number of iterations) when CLARABEL's interior point fails (extreme start points)
    for solver, kw in ((cp.CLARABEL, {}), (cp.SCS, {"max_iters": 2000})):
        try:
            with warnings.catch_warnings():  # "optimal_inaccurate" is judged by the merit test of the caller
                warnings.simplefilter("ignore", UserWarning)
                prob.solve(solver=solver, **kw)
        except (cp.error.SolverError, ValueError, ArithmeticError):
            continue
        if p.value is not None and prob.status in ("optimal", "optimal_inaccurate"):
            break
    else:
        return None
    return problem.variables["p"].constraint.project(np.maximum(np.asarray(p.value, dtype=np.float64), 0.0))


def ris_steps(problem: Any, x: Vars, mu: float, free: tuple[str, ...], n_steps: int, step_len: float,
              ctx: RunContext) -> tuple[Vars, float]:
    """Step (b): ``n_steps`` projected-gradient steps on the RIS blocks ``free`` with monotone backtracking."""
    import torch

    scale = {"delta": float(problem.variables["delta"].constraint.hi), "alpha": 1.0, "theta": 1.0}
    m_cur = merit(problem, x, mu)
    for _ in range(n_steps):
        if ctx.expired():
            break
        xt = {k: torch.as_tensor(v) for k, v in x.items()}
        for name in free:
            xt[name] = xt[name].clone().requires_grad_(True)
        loss = -merit(problem, xt, mu, torch, budget=False)
        grads = torch.autograd.grad(loss, [xt[n] for n in free])
        dirs = {}
        for name, gr in zip(free, grads):
            gr = gr.detach().numpy()
            peak = float(np.max(np.abs(gr), initial=0.0))
            dirs[name] = -gr / peak * scale[name] if peak > 0 and np.isfinite(peak) else np.zeros_like(gr)
        accepted = False
        tl = step_len
        for _ in range(30):
            cand = dict(x)
            for name in free:
                cand[name] = problem.variables[name].constraint.project(x[name] + tl * dirs[name])
            cand = problem.fit_budget(cand)
            m_new = merit(problem, cand, mu)
            if np.isfinite(m_new) and m_new >= m_cur:
                accepted = True
                break
            tl /= 2
        if not accepted:
            break
        x, m_cur = cand, m_new
        step_len = min(2 * tl, 1.0)
    return x, step_len


@hookimpl
def wbench_register_solvers(register) -> None:
    register(AoStar())
