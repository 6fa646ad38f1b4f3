"""``mo-altmin`` and ``mm-altmin``: hybrid precoders that approximate a fully-digital one by alternating
minimisation of ``||F_opt - F_RF F_BB||_F^2`` (SCENARIOS.md section 5).

Both start from the analog part of ``init`` (default ``random-zf``: uniform random phases) and alternate

* the digital half-step, least squares ``F_BB = F_RF^+ F_opt`` (the exact minimiser for fixed ``F_RF``), and
* an analog half-step on the unit-modulus set for fixed ``F_BB``:

  - ``mo-altmin``: X. Yu, J.-C. Shen, J. Zhang, K. B. Letaief, "Alternating minimization algorithms for
    hybrid precoding in millimeter wave MIMO systems", IEEE JSTSP 10(3), 2016, section III (MO-AltMin,
    Algorithm 1 with the conjugate gradient of their Algorithm 2): Riemannian conjugate gradient on the
    complex circle (pymanopt ``ComplexCircle`` on the flattened ``F_RF``, Euclidean gradient
    ``-2 (F_opt - F_RF F_BB) F_BB^H``, their eq. (13)), warm-started from the current ``F_RF``, at most
    ``cg_iter`` iterations. The outer loop stops when the two half-steps' objectives differ by at most
    ``1e-3 ||F_opt||_F^2 / K`` (the tolerance is a documented choice; Yu et al. stop "until convergence")
    or after ``max_outer`` alternations.
  - ``mm-altmin``: the MM reference of seed 002 ([43]: H. Huang, ... "Hybrid precoding via MM", Huang, Ye,
    Xiao, IEEE WCL 2020, reduced to MU-MISO): one majorisation-minimisation step per alternation,
    ``F_RF <- exp(j arg(F_opt F_BB^H - F_RF (F_BB F_BB^H - lambda_max I)))`` with ``lambda_max`` the largest
    eigenvalue of ``F_BB F_BB^H`` (the quadratic ``tr(F_RF^H F_RF F_BB F_BB^H)`` is majorised by
    ``lambda_max ||F_RF||^2``, constant on the set, at the current point), so the error never increases;
    stop when it decreases by less than ``1e-7`` relative or after ``max_outer`` (3000) alternations.

``F_opt`` (option ``target``) is the fully-digital WMMSE precoder (best of ``target_starts``;
:func:`~wbench.solvers.hybrid.common.fully_digital_wmmse`), as SCENARIOS.md section 5, or ZF at full power.
The returned digital part (option ``digital``): ``ls``, the literal method, ``F_BB = F_RF^+ F_opt`` rescaled
to full power (seed 002 eq. (16)); ``zf`` or ``wmmse``, re-optimised for the final ``F_RF`` on the whitened
effective channel (:func:`~wbench.solvers.hybrid.common.digital_precoder`), power exact.
``info["residual"]`` holds the approximation error after every half-step.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ...hookspecs import hookimpl
from ...params import Param
from ...problem import Problem
from ...scenarios.hybrid import scale_to_power
from ...solver import RunContext, Solution, Solver
from .common import digital_precoder, fully_digital_wmmse

DIGITAL = ("ls", "zf", "wmmse")
TARGETS = ("wmmse", "zf")


def residual(F_opt: np.ndarray, F_RF: np.ndarray, F_BB: np.ndarray) -> float:
    return float(np.sum(np.abs(F_opt - F_RF @ F_BB) ** 2))


def ls_digital(F_opt: np.ndarray, F_RF: np.ndarray) -> np.ndarray:
    """``F_BB = F_RF^+ F_opt``, the least-squares digital half-step."""
    return np.linalg.lstsq(F_RF, F_opt, rcond=None)[0]


def mo_analog(F_opt: np.ndarray, F_RF: np.ndarray, F_BB: np.ndarray, max_iter: int) -> np.ndarray:
    """The MO half-step: Riemannian CG on the complex circle for ``||F_opt - X F_BB||^2``, from ``F_RF``."""
    import pymanopt
    from pymanopt.manifolds import ComplexCircle
    from pymanopt.optimizers import ConjugateGradient

    shape = F_RF.shape
    manifold = ComplexCircle(F_RF.size)

    @pymanopt.function.numpy(manifold)
    def cost(x: np.ndarray) -> float:
        return residual(F_opt, x.reshape(shape), F_BB)

    @pymanopt.function.numpy(manifold)
    def egrad(x: np.ndarray) -> np.ndarray:
        return (-2.0 * (F_opt - x.reshape(shape) @ F_BB) @ F_BB.conj().T).ravel()

    problem = pymanopt.Problem(manifold, cost, euclidean_gradient=egrad)
    opt = ConjugateGradient(verbosity=0, log_verbosity=0, max_iterations=max_iter)
    x = opt.run(problem, initial_point=F_RF.ravel().copy()).point.reshape(shape)
    x = x / np.abs(x)  # round-off of the retraction
    # CG's line search accepts a step only on a decrease; keep the start if round-off says otherwise
    return x if residual(F_opt, x, F_BB) <= residual(F_opt, F_RF, F_BB) else F_RF


def mm_analog(F_opt: np.ndarray, F_RF: np.ndarray, F_BB: np.ndarray) -> np.ndarray:
    """The MM half-step ``exp(j arg(F_opt F_BB^H - F_RF (F_BB F_BB^H - lambda_max I)))``."""
    S = F_BB @ F_BB.conj().T
    lam = float(np.linalg.eigvalsh(S)[-1])
    M = F_opt @ F_BB.conj().T - F_RF @ (S - lam * np.eye(S.shape[0]))
    return np.exp(1j * np.angle(M))


class _AltMin(Solver):
    tags = frozenset({"conventional"})
    scenarios = ("hybrid",)
    multi_start = True
    version = "1"
    common_options = {
        "digital": Param("ls", "final digital precoder: ls (the literal method), zf or wmmse (whitened)",
                         choices=DIGITAL),
        "target": Param("wmmse", "fully-digital precoder approximated: wmmse (best of target_starts) or zf",
                        choices=TARGETS),
        "target_starts": Param(5, "starts of the fully-digital WMMSE target", min=1),
        "init": Param("random-zf", "start: the analog part of this initial point (random-zf, phase-zf, random)"),
    }

    def target(self, problem: Problem, opts: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
        if opts["target"] == "zf":
            A = problem.H.conj()
            F = A.conj().T @ np.linalg.pinv(A @ A.conj().T)
            return F * np.sqrt(problem.power / np.sum(np.abs(F) ** 2))
        return fully_digital_wmmse(problem.H, problem.power, rng, opts["target_starts"], problem.sigma2)[0]

    def analog(self, F_opt: np.ndarray, F_RF: np.ndarray, F_BB: np.ndarray, opts: Mapping[str, Any]
               ) -> np.ndarray:
        raise NotImplementedError

    def stop(self, before: float, after: float, F_opt: np.ndarray, opts: Mapping[str, Any]) -> bool:
        raise NotImplementedError

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        opts = self.resolve_options(options)
        F_RF = np.array(ctx.initial(problem, opts["init"])["F_RF"], dtype=np.complex128)
        F_opt = self.target(problem, opts, ctx.rng)
        res: list[float] = []
        it = 0
        F_BB = ls_digital(F_opt, F_RF)
        for it in range(1, opts["max_outer"] + 1):
            F_BB = ls_digital(F_opt, F_RF)
            before = residual(F_opt, F_RF, F_BB)
            F_RF = self.analog(F_opt, F_RF, F_BB, opts)
            after = residual(F_opt, F_RF, F_BB)
            res += [before, after]
            if ctx.wants(it):
                ctx.checkpoint({"F_RF": F_RF, "F_BB": scale_to_power(F_RF, F_BB, problem.power)}, it)
            if self.stop(before, after, F_opt, opts) or ctx.expired():
                break
        F_BB = ls_digital(F_opt, F_RF)
        res.append(residual(F_opt, F_RF, F_BB))
        if opts["digital"] == "ls":
            F_BB = scale_to_power(F_RF, F_BB, problem.power)
        else:
            F_BB = digital_precoder(problem.H, F_RF, problem.power, opts["digital"], problem.sigma2)
        x = {"F_RF": F_RF, "F_BB": F_BB}
        ctx.checkpoint(x, it, force=True)
        return Solution(x=x, iterations=it, info={"residual": res, "target_rate": problem.utility(
            {"F_RF": np.eye(F_opt.shape[0]), "F_BB": F_opt})})


class MoAltMin(_AltMin):
    """Yu, Shen, Zhang, Letaief 2016, MO-AltMin (module docstring)."""

    name = "mo-altmin"
    description = "MO-AltMin: CG on the complex circle approximating fully-digital WMMSE (Yu et al. 2016)"
    options = {
        "max_outer": Param(100, "alternations, at most", min=1),
        "cg_iter": Param(100, "conjugate-gradient iterations per analog half-step, at most", min=1),
        **_AltMin.common_options,
    }
    budget_options = ("max_outer", "cg_iter", "digital")

    def analog(self, F_opt, F_RF, F_BB, opts):
        return mo_analog(F_opt, F_RF, F_BB, opts["cg_iter"])

    def stop(self, before, after, F_opt, opts):
        k = F_opt.shape[1]
        return abs(before - after) <= 1e-3 * float(np.sum(np.abs(F_opt) ** 2)) / k


class MmAltMin(_AltMin):
    """The MM reference of seed 002 reduced to MU-MISO (module docstring)."""

    name = "mm-altmin"
    description = "MM-AltMin: majorisation-minimisation analog steps approximating fully-digital WMMSE"
    options = {
        "max_outer": Param(3000, "alternations (one MM step each), at most", min=1),
        "rtol": Param(1e-7, "stop when the error decreases by less than this, relative", min=0),
        **_AltMin.common_options,
    }
    budget_options = ("max_outer", "digital")

    def analog(self, F_opt, F_RF, F_BB, opts):
        return mm_analog(F_opt, F_RF, F_BB)

    def stop(self, before, after, F_opt, opts):
        return before - after < opts["rtol"] * before


@hookimpl
def wbench_register_solvers(register) -> None:
    register(MoAltMin())
    register(MmAltMin())
