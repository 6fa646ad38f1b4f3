"""The fully-digital reference of ``hybrid`` and the start-point baselines (SCENARIOS.md section 5).

* ``fd-wmmse`` (tag ``reference``): WMMSE (Q. Shi, M. Razaviyayn, Z.-Q. Luo, C. He, IEEE TSP 59(9), 2011;
  :func:`~wbench.solvers.hybrid.common.fully_digital_wmmse`) on the fully-digital problem over the same
  channel, ``N_RF`` unconstrained, best of ``starts`` (the first from RZF), each to ``|WSR change| <= tol``.
  Its precoder is not a hybrid one (for ``N_RF < 2K`` the hybrid cannot in general realise it), so it is a
  *value row*: the solver returns the sum rate, scored like a ``bound`` row (listed unranked, no
  feasibility) but labelled ``ref``. It is not a bound: WMMSE is a local method, and a hybrid design can beat
  it when WMMSE stops at a worse stationary point. Under imperfect CSI its value is the in-sample sum rate on
  the estimate (what the solver saw), like a bound's.
* ``fd-wmmse-2ps`` (conventional): the same precoder realised exactly as a hybrid one by two phase shifters
  per entry (:func:`~wbench.solvers.hybrid.common.two_phase_shifters`; Sohrabi & Yu 2016, Proposition 1),
  for ``N_RF >= 2K`` only (it declines otherwise): a scored, ranked row whose sum rate equals fd-wmmse's
  (on the true channel under imperfect CSI).
* ``random-zf`` (baseline; GGML's starting point) and ``phase-zf`` (baseline): the scenario's initial
  points of those names (:class:`~wbench.solvers.baselines.linear.InitialPointBaseline`).
"""

from __future__ import annotations

from typing import Any, Mapping

from ...hookspecs import hookimpl
from ...params import Param
from ...problem import Problem
from ...solver import RunContext, Solution, Solver
from ..baselines.linear import InitialPointBaseline
from .common import fully_digital_wmmse, two_phase_shifters


class FdWmmse(Solver):
    """The fully-digital WMMSE reference value (module docstring)."""

    name = "fd-wmmse"
    version = "1"
    description = "fully-digital WMMSE on the hybrid channel (N_RF unconstrained): a reference value, not a bound"
    tags = frozenset({"reference"})
    scenarios = ("hybrid",)
    options = {
        "starts": Param(10, "WMMSE starts (first RZF, the others random); the best is kept", min=1),
        "max_iter": Param(1000, "WMMSE sweeps per start, at most", min=1),
        "tol": Param(1e-6, "stop a start when its sum rate changes by <= tol (bit/s/Hz)", min=0),
    }
    budget_options = ("starts", "max_iter", "tol")

    def run(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> tuple[Any, float, list]:
        opts = self.resolve_options(options)
        return fully_digital_wmmse(problem.H, problem.power, ctx.rng, opts["starts"], problem.sigma2,
                                   opts["max_iter"], opts["tol"])

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        _, rate, rates = self.run(problem, options, ctx)
        return Solution(value=rate, info={"start_rates": rates})


class FdWmmse2ps(FdWmmse):
    """fd-wmmse realised exactly by two phase shifters per entry (``N_RF >= 2K``)."""

    name = "fd-wmmse-2ps"
    description = "fully-digital WMMSE realised exactly by two phase shifters per entry (N_RF >= 2K only)"
    tags = frozenset({"conventional"})

    def declines(self, problem: Problem, options: Mapping[str, Any]) -> str | None:
        k, n_rf = problem.variables["F_BB"].shape[1], problem.variables["F_RF"].shape[1]
        if n_rf < 2 * k:
            return f"two phase shifters per entry need N_RF >= 2K (N_RF={n_rf}, K={k})"
        return None

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        F, rate, rates = self.run(problem, options, ctx)
        F_RF, F_BB = two_phase_shifters(F, problem.variables["F_RF"].shape[1])
        return Solution(x={"F_RF": F_RF, "F_BB": F_BB}, info={"start_rates": rates, "fd_rate": rate})


class _HybridStart(InitialPointBaseline):
    scenarios = ("hybrid",)


@hookimpl
def wbench_register_solvers(register) -> None:
    register(FdWmmse())
    register(FdWmmse2ps())
    register(_HybridStart("random-zf", "random-phase analog, ZF digital at full power (GGML's start)"))
    register(_HybridStart("phase-zf", "analog phases of the users' channels, ZF digital at full power"))
