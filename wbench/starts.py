"""Equal starts for every local solver: the shared option ``starts=N``, written once.

On a landscape of many local optima (a diagonal RIS, rate splitting, hybrid precoding, movable antennas)
a local method's result depends on where it starts, and "best of 10 starts" is a different method from
one start. So that a leaderboard compares like with like, every solver that starts from a point
(``Solver.multi_start = True``) gets the option ``starts`` here, not in each solver:

* :func:`declare` (called for every ``Solver`` subclass as it is defined) adds ``starts`` (default 1) to
  the solver's option schema and to its budget column, and wraps its ``solve`` (and a batched solver's
  ``solve_batch``, which runs several starts through ``solve``). A solver that defines its own ``starts``
  option (``wmmse``, ``multistart``, ``mlbf``) keeps it and its meaning.
* :func:`run_starts`: start 1 is exactly the solver's own run (its ``init`` option, the run's generator
  ``ctx.rng`` as it is), so ``starts=1`` changes nothing and ``starts=N`` never ends below ``starts=1``.
  Start ``k >= 2`` runs with ``ctx.rng`` replaced by the ``k-1``-th child of the run's generator
  (``Generator.spawn``: the children do not advance the parent's stream) and ``ctx.random_start`` set, so
  that :meth:`RunContext.initial` hands the solver a random feasible point (``problem.initial("random")``
  or ``problem.random_feasible``) drawn from that child; the solver's own randomness (network weights...)
  comes from the child too. One seed gives one answer.
* Selection: each start's answer is judged by the problem itself, ``problem.feasibility`` then
  ``problem.utility`` (a feasible answer beats an infeasible one; among feasible ones the higher utility,
  ties to the earlier start; among infeasible ones the smaller worst violation), and the best is returned
  with its start's ``info`` plus ``info["starts"]`` (per start: utility, feasibility, iterations, stalled).
* Budget: every start runs inside the run's time budget (the one ``ctx``); a start begins only while
  ``ctx.expired()`` is false, and a started solver stops at its own budget checks.
* Trace: one best-so-far trace across starts. Start ``k``'s checkpoints are numbered after the previous
  starts' (iteration ``i`` of start ``k`` is ``i`` plus the last iteration number of start ``k - 1``), a
  checkpoint worse than the best answer of the earlier starts is replaced by that answer (judged outside
  the solver's time, :meth:`RunContext.paused`), and the merged trace keeps the log schedule of
  :meth:`RunContext.wants` plus each start's last checkpoint. ``iterations`` is the sum over starts.
* Stalls: ``info["stalled"]`` is true when any start stalled (a start that stopped early with budget
  left was a start wasted), and ``info["stalled_starts"]`` counts them.
"""

from __future__ import annotations

import functools
import math
import zlib
from typing import Any, Callable, Mapping

import numpy as np

from .params import Param
from .problem import Problem, Vars
from .solver import RunContext, Solution

STARTS = Param(1, "number of starts, best kept: the first from init, the others random feasible points "
                  "from the run's seed (shared option of local solvers)", min=1)


def declare(cls: type) -> None:
    """Give a ``multi_start`` solver class the shared ``starts`` option (see the module docstring)."""
    if not getattr(cls, "multi_start", False):
        return
    if "starts" not in cls.options:
        cls.options = {**cls.options, "starts": STARTS}
    if cls.options["starts"] is not STARTS:
        return  # the solver's own starts option, with its own meaning
    if "starts" not in cls.budget_options:
        cls.budget_options = (*cls.budget_options, "starts")
    solve = cls.__dict__.get("solve")
    if solve is not None and not getattr(solve, "_wbench_starts", False):
        cls.solve = _wrap(solve)
    batch = cls.__dict__.get("solve_batch")
    if batch is not None and not getattr(batch, "_wbench_starts", False):
        cls.solve_batch = _wrap_batch(batch)


def _wrap(solve: Callable[..., Solution]) -> Callable[..., Solution]:
    @functools.wraps(solve)
    def solve_with_starts(self: Any, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        return run_starts(lambda opts: solve(self, problem, opts, ctx), problem, options, ctx)

    solve_with_starts._wbench_starts = True  # type: ignore[attr-defined]
    return solve_with_starts


def _wrap_batch(solve_batch: Callable[..., list[Solution]]) -> Callable[..., list[Solution]]:
    """A batched solver's own batch for one start; several starts go through ``solve``, one run at a time."""
    @functools.wraps(solve_batch)
    def batch_with_starts(self: Any, problems: Any, options: Mapping[str, Any], ctxs: Any) -> list[Solution]:
        if STARTS.parse("starts", options.get("starts", 1)) == 1:
            return solve_batch(self, problems, {k: v for k, v in options.items() if k != "starts"}, ctxs)
        return [self.solve(p, options, c) for p, c in zip(problems, ctxs)]

    batch_with_starts._wbench_starts = True  # type: ignore[attr-defined]
    return batch_with_starts


def run_starts(solve_one: Callable[[Mapping[str, Any]], Solution], problem: Problem,
               options: Mapping[str, Any], ctx: RunContext) -> Solution:
    """Best of ``options["starts"]`` runs of ``solve_one`` (called with the other options)."""
    n = STARTS.parse("starts", options.get("starts", 1))
    inner = {k: v for k, v in options.items() if k != "starts"}
    if n == 1:
        return solve_one(inner)
    rng, random_start, outer = ctx.rng, ctx.random_start, ctx.checkpoints
    children = _children(rng, n - 1)
    merged: list[tuple[float, int, Vars]] = []
    best: tuple[Solution, _Verdict] | None = None
    per_start: list[dict[str, Any]] = []
    offset, iterations, best_index = 0, 0, 0
    try:
        for k in range(n):
            if k > 0 and ctx.expired():
                break
            ctx.rng, ctx.random_start = (rng, random_start) if k == 0 else (children[k - 1], True)
            ctx.checkpoints = []
            sol = solve_one(inner)
            verdict = _judge(problem, sol)
            iterations += int(sol.iterations)
            with ctx.paused():
                offset = _merge(problem, ctx.checkpoints, merged, offset, best)
            per_start.append({"utility": verdict.utility, "feasible": verdict.feasible,
                              "iterations": int(sol.iterations), "stalled": bool(sol.info.get("stalled"))})
            if best is None or verdict.better_than(best[1]):
                best, best_index = (sol, verdict), k
    finally:
        ctx.rng, ctx.random_start, ctx.checkpoints = rng, random_start, outer
    outer.extend(merged)
    assert best is not None  # the first start always runs
    sol = best[0]
    stalled = sum(s["stalled"] for s in per_start)
    info = dict(sol.info)
    info["starts"] = {"run": len(per_start), "best": best_index, "per_start": per_start}
    info["stalled"] = stalled > 0
    info["stalled_starts"] = stalled
    return Solution(x=sol.x, iterations=iterations, value=sol.value, info=info)


def _children(rng: np.random.Generator, n: int) -> list[np.random.Generator]:
    """``n`` independent generators derived from ``rng`` without advancing its stream."""
    try:
        return rng.spawn(n)
    except (AttributeError, TypeError, ValueError):  # NumPy < 1.25, or no seed sequence: from the state
        entropy = zlib.crc32(repr(rng.bit_generator.state).encode())
        return [np.random.default_rng(s) for s in np.random.SeedSequence(entropy).spawn(n)]


class _Verdict:
    """How the problem judges an answer: feasible first, then utility (or the smaller violation)."""

    def __init__(self, feasible: bool, utility: float, violation: float) -> None:
        self.feasible, self.utility, self.violation = feasible, utility, violation

    def better_than(self, other: "_Verdict") -> bool:
        if self.feasible != other.feasible:
            return self.feasible
        if self.feasible:
            return self.utility > other.utility
        return self.violation < other.violation


def _judge(problem: Problem, sol: Solution | None) -> _Verdict:
    x = None if sol is None else sol.x
    if x is None:
        return _Verdict(False, -math.inf, math.inf)
    return _judge_x(problem, x)


def _judge_x(problem: Problem, x: Mapping[str, Any]) -> _Verdict:
    try:
        xs = {k: np.asarray(x[k]) for k in problem.variables}
        u = float(problem.utility(xs))
        feas = problem.feasibility(xs)
    except (KeyError, ValueError, ArithmeticError):
        return _Verdict(False, -math.inf, math.inf)
    if not math.isfinite(u):
        return _Verdict(False, -math.inf, math.inf)
    return _Verdict(bool(feas.feasible), u, float(feas.worst))


def _merge(problem: Problem, new: list[tuple[float, int, Vars]], merged: list[tuple[float, int, Vars]],
           offset: int, best: "tuple[Solution, _Verdict] | None") -> int:
    """Append one start's checkpoints to ``merged`` (renumbered from ``offset``, never worse than ``best``,
    thinned to the log schedule plus the start's last); returns the next start's offset."""
    for j, (t, it, x) in enumerate(new):
        g = offset + it
        last = j == len(new) - 1
        if not (last or RunContext.wants(g)):
            continue
        if best is not None and best[0].x is not None and not _judge_x(problem, x).better_than(best[1]):
            x = best[0].x
        if merged and merged[-1][1] == g:
            merged.pop()  # the same iteration number: keep the later, best-so-far entry
        merged.append((t, g, x))
    return offset + (new[-1][1] if new else 0)
