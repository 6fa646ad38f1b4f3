"""Running one task: build the problems of its realisations, run the solver under the limits (one by one, or
as one batch for a batched solver), measure wall and CPU time of the solver call only, and score the results.

A run's randomness comes from :func:`solver_rng` alone, so a run gives the same answer on any executor or
worker count. Torch solvers get an untimed warm-up run once per process, so one-off costs (first kernels,
lazy imports) are not charged to the first timed run.

A solver receives only the problem built from the arrays it may see (:meth:`wbench.scenario.Scenario.problems`);
the scenario's scoring problem, built from the whole realisation, stays here and is used after the run only.
"""

from __future__ import annotations

import importlib
import json
import time
import zlib
from typing import Any, Mapping, Sequence

import numpy as np

from .. import __version__
from ..problem import Problem
from ..registry import get_registry
from ..solution_store import keep_solution
from ..solver import RunContext, Solution, Solver
from .limits import RunTimeout, ThreadLimit, hard_limit
from .planning import channel_source
from .scoring import one_line, score
from .tasks import Config, Task, run_key
from .training import trained_policy

def solver_rng(config: Config, solver: str, index: int) -> np.random.Generator:
    """Solver randomness for a run: depends on (seed, scenario, realisation, solver) only."""
    ss = np.random.SeedSequence(
        entropy=config.seed,
        spawn_key=(zlib.crc32(config.scenario.encode()), int(index), zlib.crc32(solver.encode())),
    )
    return np.random.default_rng(ss)

def run_task(task: Task) -> list[dict[str, Any]]:
    """Run one task and return its result rows (never raises for a solver failure)."""
    reg = get_registry()
    cfg = task.config
    scenario = reg.scenario(cfg.scenario)
    solver = reg.solver(task.solver)
    options = dict(task.options)
    src = channel_source(cfg)
    problems: list[Problem] = []  # what the solver sees: built from the seen arrays only
    scorers: list[Problem | None] = []  # what the harness scores on (None: the solver's problem)
    fps: list[str] = []
    for i in task.instances:
        ch, fp = src.get(i)
        seen, scorer = scenario.problems(cfg.params_dict, ch)
        problems.append(seen)
        scorers.append(scorer)
        fps.append(fp)
    ctxs = [
        RunContext(solver_rng(cfg, task.solver, i), task.budget_seconds, device=task.device)
        for i in task.instances
    ]
    train_metrics: dict[str, float] | None = None
    train_err: str | None = None
    with ThreadLimit(task.threads, solver.uses_torch):
        if solver.trains:  # once per configuration, untimed; its cost is recorded apart (engine.training)
            try:
                policy, info = trained_policy(solver, scenario, cfg.params_dict, cfg.params_json, cfg.seed, options)
                train_metrics = info.metrics()
                for c in ctxs:
                    c.policy = policy
            except Exception as exc:
                train_err = f"training failed: {one_line(exc)}"
        if train_err is not None:
            outcomes: list[Outcome] = [(None, train_err, 0.0, 0.0, 1, False)] * len(problems)
        elif solver.batched and len(problems) > 1:
            _warm_up(solver, problems[0], options, task.device, ctxs[0].policy)
            outcomes = _run_batch(solver, problems, options, ctxs, task.budget_seconds, task.timeout_seconds)
        else:
            _warm_up(solver, problems[0], options, task.device, ctxs[0].policy)
            outcomes = [_run_one(solver, p, options, c, task.timeout_seconds) for p, c in zip(problems, ctxs)]
    rows = []
    for i, fp, prob, scorer, ctx, (sol, err, wall, cpu, batch, killed) in zip(
        task.instances, fps, problems, scorers, ctxs, outcomes
    ):
        row = _base_row(task, solver, i, fp)
        row.update(score(prob, solver, sol, err, wall, cpu, task.budget_seconds, ctx, killed, scorer))
        if train_metrics is not None:
            row["metrics"] = {**(row.get("metrics") or {}), **train_metrics}
        keep_solution(row, task.solution_cap_bytes)
        row["batch"] = batch
        rows.append(row)
    return rows


def failed_task_rows(task: Task, status: str, message: str) -> list[dict[str, Any]]:
    """Rows for a task whose worker could not return any (it died, or was killed at its time limit):
    each run is recorded with ``status`` and ``message``, so nothing is silently lost."""
    reg = get_registry()
    solver = reg.solver(task.solver)
    src = channel_source(task.config)
    rows = []
    for i in task.instances:
        row = _base_row(task, solver, i, src.get(i)[1])
        row.update({"wall_s": None, "cpu_s": None, "iterations": None, "utility": None, "in_sample": None,
                    "feasible": None, "violations": None, "max_violation": None, "status": status, "error": message,
                    "trace": None, "batch": len(task.instances)})
        rows.append(row)
    return rows


#: (solution, error, wall, cpu, batch size, stopped by the enforced time limit)
Outcome = tuple[Solution | None, str | None, float, float, int, bool]


_WARMED: set[str] = set()


def _warm_up(solver: Solver, problem: Problem, options: Mapping[str, Any], device: str,
             policy: Any = None) -> None:
    """Once per process and solver, an untimed run with an already-spent budget: one-off costs (torch's
    first kernels and allocations, lazy imports) are paid here, not by the first timed run. A solver that
    does not use torch only has its declared lazy imports (:attr:`Solver.imports`) made here."""
    for module in solver.imports:
        importlib.import_module(module)
    if not solver.uses_torch or solver.name in _WARMED:
        return
    _WARMED.add(solver.name)
    ctx = RunContext(np.random.default_rng(0), 0.0, device=device)
    ctx.policy = policy
    try:
        solver.solve(problem, options, ctx)
    except Exception:
        pass  # the timed run will meet (and record) the same failure


def _run_one(solver: Solver, problem: Problem, options: Mapping[str, Any], ctx: RunContext,
             timeout: float | None = None) -> Outcome:
    c0 = time.process_time()
    ctx.start()
    killed = False
    try:
        with hard_limit(timeout):
            sol = solver.solve(problem, options, ctx)
        err = None
    except RunTimeout as exc:
        sol, err, killed = None, str(exc), True
    except Exception as exc:  # a failing solver gives a row, never a crashed benchmark
        sol, err = None, one_line(exc)
    wall = ctx.elapsed()
    cpu = time.process_time() - c0
    return sol, err, wall, cpu, 1, killed


def _run_batch(
    solver: Solver,
    problems: Sequence[Problem],
    options: Mapping[str, Any],
    ctxs: Sequence[RunContext],
    budget_seconds: float | None,
    timeout: float | None = None,
) -> list[Outcome]:
    n = len(problems)
    for c in ctxs:  # the batch shares the clock: each run's budget is its share of the batch's
        c.budget_seconds = None if budget_seconds is None else budget_seconds * n
    rng_states = [c.rng.bit_generator.state for c in ctxs]
    c0 = time.process_time()
    for c in ctxs:
        c.start()
    t0 = time.perf_counter()
    try:
        with hard_limit(None if timeout is None else timeout * n):
            sols = solver.solve_batch(problems, options, ctxs)
        if len(sols) != n:
            raise RuntimeError(f"solve_batch returned {len(sols)} solutions for {n} problems")
    except RunTimeout as exc:
        wall = (time.perf_counter() - t0) / n
        return [(None, f"{exc} (a batch of {n} shares {n} times the limit)", wall, wall, n, True)] * n
    except Exception:
        # Isolate the failure: solve one by one so one bad realisation cannot sink the rest, each from its
        # generator's state before the batch (what the batch drew would otherwise shift every run's draws).
        for c, state in zip(ctxs, rng_states):
            c.checkpoints.clear()
            c.budget_seconds = budget_seconds
            c.rng.bit_generator.state = state
        return [_run_one(solver, p, options, c, timeout) for p, c in zip(problems, ctxs)]
    # Checkpoint copies of every run in the batch are excluded from the batch's time.
    recording = sum(c.recording_seconds for c in ctxs)
    wall = (time.perf_counter() - t0 - recording) / n
    cpu = max(0.0, time.process_time() - c0 - recording) / n
    for c in ctxs:  # checkpoint times are shares of the batch's time, like the wall time
        c.checkpoints[:] = [(t / n, it, x) for t, it, x in c.checkpoints]
    return [(s, None, wall, cpu, n, False) for s in sols]


def _base_row(task: Task, solver: Solver, i: int, fp: str) -> dict[str, Any]:
    cfg = task.config
    options_json = json.dumps(dict(task.options), sort_keys=True)
    return {
        "run_key": run_key(cfg, task.solver, solver.version, options_json, task.budget_seconds, i,
                           solver.run_device(task.device, dict(task.options))),
        "config_key": cfg.key,
        "scenario": cfg.scenario,
        "params": cfg.params_json,
        "channels": cfg.channels,
        "seed": cfg.seed,
        "instance": i,
        "fingerprint": fp,
        "solver": task.solver,
        "solver_version": solver.version,
        "options": options_json,
        "label": task.label,
        "tags": ",".join(sorted(solver.tags)),
        "budget": task.budget,
        "budget_seconds": task.budget_seconds,
        "threads": task.threads,
        "wbench_version": __version__,
        "created": time.time(),
    }


