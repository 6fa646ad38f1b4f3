"""The harness's verdict on one run: the scenario re-evaluates the returned variables in float64 (utility,
feasibility with its written tolerances), the checkpoints of the anytime trace are scored after the clock
stopped, and every failure becomes a status, never an exception: ``ok``, ``infeasible``, ``error`` (the
solver raised or returned something unusable), ``timeout``, ``nan``.

Where the scenario has a scoring problem apart from the solver's (imperfect channel knowledge: the true
channel, held-out error draws), utility, feasibility and trace come from the scoring problem, and the solver's
own objective at the returned point, ``problem.utility(x)``, is recorded as ``in_sample``: their difference is
the optimism of the design. The judging problem's :meth:`~wbench.problem.Problem.extra_metrics` at the returned
point are recorded as ``metrics`` (name -> number; ``None`` when it has none). Without one, ``in_sample`` is ``None``. A ``bound`` solver's value, computed on
what the solver saw, bounds the in-sample objective only: there it is stored as ``in_sample``, with no utility.
"""

from __future__ import annotations

import math
import os
import traceback
from typing import Any, Mapping

import numpy as np

from ..problem import Problem
from ..solver import VALUE_TAGS, RunContext, Solution, Solver
from .limits import TIMEOUT_ATOL, TIMEOUT_RTOL

STATUSES = ("ok", "infeasible", "error", "timeout", "nan")


def score(
    problem: Problem,
    solver: Solver,
    sol: Solution | None,
    err: str | None,
    wall: float,
    cpu: float,
    budget_seconds: float | None,
    ctx: RunContext,
    killed: bool = False,
    scorer: Problem | None = None,
) -> dict[str, Any]:
    """The harness's verdict on one run: utility, feasibility, status and trace (``killed``: the run was
    stopped by the enforced time limit, status ``timeout``), judged on ``scorer`` (the scenario's scoring
    problem; ``None``: the solver's ``problem``), with the in-sample value on ``problem`` where they differ; for an
    ``ok`` or ``infeasible`` run also the scored variables under ``"solution"`` (name -> array; the runner encodes
    or drops them)."""
    judge = problem if scorer is None else scorer
    out: dict[str, Any] = {"wall_s": wall, "cpu_s": cpu, "iterations": None, "utility": None, "in_sample": None,
                           "metrics": None, "stalled": None,
                           "feasible": None, "violations": None, "max_violation": None,
                           "status": "timeout" if killed else "error", "error": err, "trace": None}
    if sol is None:
        return out
    if not isinstance(sol, Solution):
        out["error"] = f"solver returned {type(sol).__name__}, not a Solution"
        return out
    out["iterations"] = int(sol.iterations)
    stalled = sol.info.get("stalled") if isinstance(sol.info, dict) else None
    out["stalled"] = None if stalled is None else bool(stalled)
    try:
        if solver.tags & VALUE_TAGS:  # a bound or reference value, no variables
            u = float(sol.value) if sol.value is not None else math.nan
            # computed on what the solver saw, a bound bounds the in-sample objective, not the scored one
            out["utility" if scorer is None else "in_sample"] = u if math.isfinite(u) else None
            out["status"] = "ok" if math.isfinite(u) else "nan"
            return out
        x = _check_vars(judge, sol.x)
        if not all(np.all(np.isfinite(v)) for v in x.values()):
            out["status"], out["error"] = "nan", "solution holds NaN or infinite entries"
            return out
        if scorer is not None:
            u_in = float(problem.utility(x))
            out["in_sample"] = u_in if math.isfinite(u_in) else None
        u = float(judge.utility(x))
        if not math.isfinite(u):
            out["status"], out["error"] = "nan", "utility is not finite"
            return out
        feas = judge.feasibility(x)
        out["metrics"] = {str(k): float(v) for k, v in judge.extra_metrics(x).items()} or None
        out.update(
            utility=u,
            feasible=bool(feas.feasible),
            violations=feas.violations,
            max_violation=feas.worst,
            status="ok" if feas.feasible else "infeasible",
            solution=x,
        )
        out["trace"] = [
            [round(t, 9), it, float(judge.utility(xc)), bool(judge.feasibility(xc).feasible)]
            for t, it, xc in ctx.checkpoints
        ]
    except Exception as exc:
        out["status"], out["error"] = "error", "scoring failed: " + one_line(exc)
        out.pop("solution", None)
        return out
    if budget_seconds is not None and wall > budget_seconds * (1 + TIMEOUT_RTOL) + TIMEOUT_ATOL:
        out["status"] = "timeout"
        out.pop("solution", None)
        out["error"] = f"ran {wall:.3g} s against a budget of {budget_seconds:g} s"
    return out


def _check_vars(problem: Problem, x: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    if x is None:
        raise ValueError("solver returned no variables")
    missing = sorted(set(problem.variables) - set(x))
    if missing:
        raise ValueError(f"solution lacks variables {missing}")
    out = {}
    for name, var in problem.variables.items():
        value = x[name]
        arr = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        if arr.shape != var.shape:
            raise ValueError(f"variable {name} has shape {arr.shape}, expected {var.shape}")
        out[name] = arr.astype(var.dtype)
    return out




def one_line(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno})" if tb else ""
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg}"[:400] + where

