"""The run matrix (configuration x solver x realisation): planning, timed execution, scoring, failure capture.

Planning expands ``--set``/``--sweep`` into configurations, resolves solver selections, computes the
identity of every run and drops the ones already in the store (resume). Execution runs tasks (one solver
on a chunk of realisations of one configuration) in this process or in a pool of worker processes
(``--jobs``) and writes each task's rows in one transaction as it completes.

The harness, not the solver, measures: wall and CPU time of :meth:`Solver.solve` only, under a fixed
thread count; utility and feasibility re-evaluated in float64 by the scenario; checkpoint utilities
evaluated after the clock stopped. A solver that raises, returns NaN or overruns its time budget gives a
row with status ``error``, ``nan`` or ``timeout``; an infeasible answer gives ``infeasible``.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
import zlib
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing import get_context
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from . import __version__
from .channels.channelset import ChannelSource, FileChannels, GeneratedChannels
from .params import ParamError
from .problem import Problem
from .registry import get_registry
from .selection import SolverSpec
from .solver import RunContext, Solution, Solver
from .store import Store, StoreError

STATUSES = ("ok", "infeasible", "error", "timeout", "nan")

#: A run whose wall time exceeds ``budget_seconds * (1 + TIMEOUT_RTOL) + TIMEOUT_ATOL`` is a ``timeout``:
#: iterative solvers check the budget between iterations, so they may overshoot by one iteration.
TIMEOUT_RTOL = 0.2
TIMEOUT_ATOL = 0.1

#: A task whose worker process dies this many times is recorded as failed (local executor).
MAX_LOSSES = 3

#: Largest chunk of realisations handed to a batched solver at once.
MAX_BATCH = 256


@dataclass(frozen=True)
class Config:
    """One point of the parameter grid on one channel source."""

    scenario: str
    params: tuple[tuple[str, Any], ...]
    seed: int
    channel_file: str | None = None
    channels: str = ""  # source key, filled by :func:`build_configs`

    @property
    def params_dict(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def params_json(self) -> str:
        return json.dumps(dict(self.params), sort_keys=True)

    @property
    def key(self) -> str:
        return _hash(self.scenario, self.params_json, self.channels)


@dataclass(frozen=True)
class Task:
    """One solver on a chunk of realisations of one configuration (picklable: names, not objects)."""

    config: Config
    solver: str
    options: tuple[tuple[str, Any], ...]
    label: str
    budget: str
    instances: tuple[int, ...]
    budget_seconds: float | None = None
    threads: int = 1
    device: str = "cpu"
    #: Enforced wall-clock limit per run (``--timeout``): the run is stopped and recorded as ``timeout``.
    timeout_seconds: float | None = None


@dataclass
class Plan:
    configs: list[Config]
    specs: list[SolverSpec]
    tasks: list[Task]
    run_keys: dict[tuple[str, str, int], str] = field(default_factory=dict)
    total: int = 0
    done: int = 0
    notes: list[str] = field(default_factory=list)


def _hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def run_key(config: Config, spec_name: str, version: str, options_json: str, budget: float | None, i: int) -> str:
    return _hash(config.key, int(i), spec_name, version, options_json, budget)


# -- planning --------------------------------------------------------------------------------------
def build_configs(
    scenario: str,
    set_params: Mapping[str, str],
    sweeps: Mapping[str, Sequence[str]],
    seed: int,
    channel_file: str | None = None,
) -> list[Config]:
    """Cartesian product of the sweeps over the fixed ``--set`` values (scenario default sweep if none)."""
    sc = get_registry().scenario(scenario)
    both = sorted(set(set_params) & set(sweeps))
    if both:
        raise ParamError(f"parameter {', '.join(both)} is both --set and --sweep")
    if not sweeps:
        sweeps = {k: v for k, v in sc.default_sweep.items() if k not in set_params}
    keys = list(sweeps)
    configs: list[Config] = []
    for values in itertools.product(*(sweeps[k] for k in keys)):
        given = dict(set_params)
        given.update(zip(keys, values))
        params = sc.resolve_params(given)
        cfg = Config(scenario, tuple(sorted(params.items())), int(seed), channel_file)
        src = channel_source(cfg)
        configs.append(Config(scenario, cfg.params, int(seed), channel_file, src.key))
    if len(set(configs)) != len(configs):
        raise ParamError("the sweep repeats a configuration")
    return configs


@lru_cache(maxsize=32)
def channel_source(config: Config) -> ChannelSource:
    sc = get_registry().scenario(config.scenario)
    if config.channel_file:
        return FileChannels(config.channel_file, sc, config.params_dict)
    return GeneratedChannels(sc, config.params_dict, config.seed)


def plan(
    store: Store,
    configs: Sequence[Config],
    specs: Sequence[SolverSpec],
    instances: int,
    budget_seconds: float | None = None,
    fresh: bool = False,
    jobs: int = 1,
    threads: int = 1,
    device: str = "cpu",
    timeout_seconds: float | None = None,
    max_memory: float | None = None,
) -> Plan:
    """The tasks still to run; with ``fresh`` the matching rows are deleted first.

    Refuses (``ParamError``, with the estimate) a plan whose solvers would not fit in memory: per task,
    the solver's :meth:`~wbench.solver.Solver.memory_bytes` plus the channel arrays, times the chunk for a
    batched solver, times the number of workers, against ``max_memory`` bytes (default: the memory the
    operating system reports available).
    """
    out = Plan(list(configs), list(specs), [])
    limit = max_memory if max_memory is not None else available_memory()
    for cfg in configs:
        src = channel_source(cfg)
        if instances > len(src):
            raise ParamError(f"{instances} instances requested but the channel file holds {len(src)}")
        if not fresh:
            _check_fingerprints(store, cfg, src, instances)
        channel0 = src.get(0)[0]  # drawn once per configuration: the probe and the memory estimate
        probe = get_registry().scenario(cfg.scenario).problem(cfg.params_dict, channel0)
        for spec in specs:
            reason = spec.solver.declines(probe, spec.options_dict)
            if reason:
                out.notes.append(f"{spec.label} skipped: {reason} ({cfg.scenario} {_short(cfg)})")
                continue
            keys = {
                i: run_key(cfg, spec.name, spec.solver.version, spec.options_json, budget_seconds, i)
                for i in range(instances)
            }
            for i, k in keys.items():
                out.run_keys[(cfg.key, spec.label, i)] = k
            out.total += len(keys)
            if fresh:
                store.delete(keys.values())
                missing = list(range(instances))
            else:
                have = store.existing_keys(keys.values())
                missing = [i for i, k in keys.items() if k not in have]
            out.done += instances - len(missing)
            size = _chunk_size(spec.solver, len(missing), jobs)
            if missing and limit is not None:
                _check_memory(spec, cfg, probe, channel0, size, jobs, limit)
            for chunk in _chunks(missing, size):
                out.tasks.append(
                    Task(cfg, spec.name, spec.options, spec.label, spec.budget, tuple(chunk),
                         budget_seconds, threads, device, timeout_seconds)
                )
    return out


def available_memory() -> int | None:
    """Bytes of memory available to new work (Linux ``MemAvailable``), ``None`` where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _check_memory(spec: SolverSpec, cfg: Config, probe: Problem, channel: Mapping[str, Any], chunk: int,
                  jobs: int, limit: float) -> None:
    per_run = spec.solver.memory_bytes(probe, spec.options_dict)
    per_run += sum(int(np.asarray(a).nbytes) for a in channel.values())
    per_task = per_run * (chunk if spec.solver.batched else 1)
    total = per_task * max(1, jobs)
    if total > limit:
        gib = 2.0**30
        raise ParamError(
            f"not enough memory for {spec.label} on {cfg.scenario} {_short(cfg)}: about "
            f"{per_task / gib:.3g} GiB per task x {max(1, jobs)} worker(s) = {total / gib:.3g} GiB, "
            f"{limit / gib:.3g} GiB available (reduce the problem or the solver's state, lower --jobs, "
            "or set --max-memory GIB)"
        )


def _short(cfg: Config) -> str:
    return " ".join(f"{k}={v}" for k, v in cfg.params)


def _check_fingerprints(store: Store, cfg: Config, src: ChannelSource, instances: int) -> None:
    stored = store.fingerprints(cfg.key)
    for i, fp in stored.items():
        if i < instances and src.get(i)[1] != fp:
            raise StoreError(
                f"channels changed for {cfg.scenario} {_short(cfg)} (realisation {i}): the store holds results "
                "on other channels; regenerate with --fresh or use another --db"
            )


def _chunk_size(solver: Solver, n: int, jobs: int) -> int:
    if n == 0:
        return 1
    if solver.batched:
        return max(1, min(MAX_BATCH, math.ceil(n / jobs)))
    return max(1, min(25, math.ceil(n / (4 * jobs))))


def _chunks(seq: Sequence[int], size: int) -> Iterable[list[int]]:
    for i in range(0, len(seq), size):
        yield list(seq[i : i + size])


# -- execution of one task -------------------------------------------------------------------------
def solver_rng(config: Config, solver: str, index: int) -> np.random.Generator:
    """Solver randomness for a run: depends on (seed, scenario, realisation, solver) only."""
    ss = np.random.SeedSequence(
        entropy=config.seed,
        spawn_key=(zlib.crc32(config.scenario.encode()), int(index), zlib.crc32(solver.encode())),
    )
    return np.random.default_rng(ss)


class _ThreadLimit:
    """Fix BLAS/OpenMP (and torch, if loaded) thread counts for the timed region."""

    def __init__(self, threads: int, torch: bool = False) -> None:
        self.threads = threads
        self.torch = torch

    def __enter__(self) -> "_ThreadLimit":
        import scipy.linalg  # noqa: F401  SciPy ships its own OpenBLAS: load it before limiting threads,
        import scipy.optimize  # noqa: F401  or a solver's first SciPy call runs it unlimited (and untimed-in)
        from threadpoolctl import threadpool_limits

        self._limits = threadpool_limits(limits=self.threads)
        if self.torch:
            import torch  # noqa: F401  (imported here, outside the timed region)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(self.threads)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._limits.restore_original_limits()


def run_task(task: Task) -> list[dict[str, Any]]:
    """Run one task and return its result rows (never raises for a solver failure)."""
    reg = get_registry()
    cfg = task.config
    scenario = reg.scenario(cfg.scenario)
    solver = reg.solver(task.solver)
    options = dict(task.options)
    src = channel_source(cfg)
    problems: list[Problem] = []
    fps: list[str] = []
    for i in task.instances:
        ch, fp = src.get(i)
        problems.append(scenario.problem(cfg.params_dict, ch))
        fps.append(fp)
    ctxs = [
        RunContext(solver_rng(cfg, task.solver, i), task.budget_seconds, device=task.device)
        for i in task.instances
    ]
    with _ThreadLimit(task.threads, solver.uses_torch):
        _warm_up(solver, problems[0], options, task.device)
        if solver.batched and len(problems) > 1:
            outcomes = _run_batch(solver, problems, options, ctxs, task.budget_seconds, task.timeout_seconds)
        else:
            outcomes = [_run_one(solver, p, options, c, task.timeout_seconds) for p, c in zip(problems, ctxs)]
    rows = []
    for i, fp, prob, ctx, (sol, err, wall, cpu, batch, killed) in zip(
        task.instances, fps, problems, ctxs, outcomes
    ):
        row = _base_row(task, solver, i, fp)
        row.update(score(prob, solver, sol, err, wall, cpu, task.budget_seconds, ctx, killed))
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
        row.update({"wall_s": None, "cpu_s": None, "iterations": None, "utility": None, "feasible": None,
                    "violations": None, "max_violation": None, "status": status, "error": message,
                    "trace": None, "batch": len(task.instances)})
        rows.append(row)
    return rows


#: (solution, error, wall, cpu, batch size, stopped by the enforced time limit)
Outcome = tuple[Solution | None, str | None, float, float, int, bool]


class RunTimeout(BaseException):
    """Raised into a run by the enforced wall-clock limit (a BaseException: ``except Exception`` in a
    solver does not swallow it)."""


@contextlib.contextmanager
def hard_limit(seconds: float | None):
    """Stop the enclosed code after ``seconds`` of wall time by raising :class:`RunTimeout` from a
    ``SIGALRM`` handler: pre-emptive for Python code and for sleeps and other interruptible system calls.
    Signals reach only the main thread, so elsewhere (e.g. a dask worker's task thread) this does nothing
    and the caller must isolate the run in a process of its own (:mod:`wbench.dask_executor` does)."""
    if seconds is None or not can_interrupt():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise RunTimeout(f"stopped by the enforced limit of {seconds:g} s (--timeout)")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, max(float(seconds), 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def can_interrupt() -> bool:
    """Whether :func:`hard_limit` can pre-empt code here (a Unix main thread)."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()

_WARMED: set[str] = set()


def _warm_up(solver: Solver, problem: Problem, options: Mapping[str, Any], device: str) -> None:
    """Once per process and solver, an untimed run with an already-spent budget: one-off costs (torch's
    first kernels and allocations, lazy imports) are paid here, not by the first timed run."""
    if not solver.uses_torch or solver.name in _WARMED:
        return
    _WARMED.add(solver.name)
    try:
        solver.solve(problem, options, RunContext(np.random.default_rng(0), 0.0, device=device))
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
        sol, err = None, _one_line(exc)
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
        # Isolate the failure: solve one by one so one bad realisation cannot sink the rest.
        for c in ctxs:
            c.checkpoints.clear()
            c.budget_seconds = budget_seconds
        return [_run_one(solver, p, options, c, timeout) for p, c in zip(problems, ctxs)]
    # Checkpoint copies of every run in the batch are excluded from the batch's time.
    recording = sum(c.recording_seconds for c in ctxs)
    wall = (time.perf_counter() - t0 - recording) / n
    cpu = max(0.0, time.process_time() - c0 - recording) / n
    for c in ctxs:  # checkpoint times are shares of the batch's time, like the wall time
        c.checkpoints[:] = [(t / n, it, x) for t, it, x in c.checkpoints]
    return [(s, None, wall, cpu, n, False) for s in sols]


def _one_line(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno})" if tb else ""
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg}"[:400] + where


def _base_row(task: Task, solver: Solver, i: int, fp: str) -> dict[str, Any]:
    cfg = task.config
    options_json = json.dumps(dict(task.options), sort_keys=True)
    return {
        "run_key": run_key(cfg, task.solver, solver.version, options_json, task.budget_seconds, i),
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
) -> dict[str, Any]:
    """The harness's verdict on one run: utility, feasibility, status and trace (``killed``: the run was
    stopped by the enforced time limit, status ``timeout``)."""
    out: dict[str, Any] = {"wall_s": wall, "cpu_s": cpu, "iterations": None, "utility": None,
                           "feasible": None, "violations": None, "max_violation": None,
                           "status": "timeout" if killed else "error", "error": err, "trace": None,
                           "stalled": None}
    if sol is None:
        return out
    if not isinstance(sol, Solution):
        out["error"] = f"solver returned {type(sol).__name__}, not a Solution"
        return out
    out["iterations"] = int(sol.iterations)
    stalled = sol.info.get("stalled") if isinstance(sol.info, dict) else None
    out["stalled"] = None if stalled is None else bool(stalled)
    try:
        if "bound" in solver.tags:
            u = float(sol.value) if sol.value is not None else math.nan
            out["utility"] = u if math.isfinite(u) else None
            out["status"] = "ok" if math.isfinite(u) else "nan"
            return out
        x = _check_vars(problem, sol.x)
        if not all(np.all(np.isfinite(v)) for v in x.values()):
            out["status"], out["error"] = "nan", "solution holds NaN or infinite entries"
            return out
        u = float(problem.utility(x))
        if not math.isfinite(u):
            out["status"], out["error"] = "nan", "utility is not finite"
            return out
        feas = problem.feasibility(x)
        out.update(
            utility=u,
            feasible=bool(feas.feasible),
            violations=feas.violations,
            max_violation=feas.worst,
            status="ok" if feas.feasible else "infeasible",
        )
        out["trace"] = [
            [round(t, 9), it, float(problem.utility(xc)), bool(problem.feasibility(xc).feasible)]
            for t, it, xc in ctx.checkpoints
        ]
    except Exception as exc:
        out["status"], out["error"] = "error", "scoring failed: " + _one_line(exc)
        return out
    if budget_seconds is not None and wall > budget_seconds * (1 + TIMEOUT_RTOL) + TIMEOUT_ATOL:
        out["status"] = "timeout"
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


# -- execution of a plan ---------------------------------------------------------------------------
def _set_thread_env(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def _init_worker(threads: int) -> None:
    _set_thread_env(threads)
    # Ctrl-C is the coordinator's business: it stops handing out tasks and keeps what was committed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def execute(
    plan_: Plan,
    store: Store,
    jobs: int = 1,
    on_rows: Callable[[int], None] | None = None,
    runner: Callable[[Task], list[dict[str, Any]]] = run_task,
    executor: str = "local",
    scheduler: str | None = None,
) -> int:
    """Run the plan's tasks, committing each task's rows as it completes; returns rows written.

    ``executor="local"``: in this process (``jobs=1``) or a pool of ``jobs`` spawned worker processes;
    ``"dask"``: on a dask cluster (:mod:`wbench.dask_executor`; ``scheduler`` joins an existing one).
    """
    if executor == "dask":
        from .dask_executor import execute_dask

        return execute_dask(plan_, store, jobs, scheduler, on_rows, None if runner is run_task else runner)
    if executor != "local":
        raise ParamError(f"unknown executor {executor!r}; valid: local, dask")
    written = 0
    if jobs <= 1 or len(plan_.tasks) <= 1:
        for task in plan_.tasks:
            rows = runner(task)
            written += store.write(rows)
            if on_rows:
                on_rows(len(rows))
        return written
    threads = plan_.tasks[0].threads
    saved = {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    _set_thread_env(threads)  # spawned workers inherit it before NumPy loads its BLAS
    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"),
                                   initializer=_init_worker, initargs=(threads,))

    def commit(rows: list[dict[str, Any]]) -> None:
        nonlocal written
        written += store.write(rows)
        if on_rows:
            on_rows(len(rows))

    pool = new_pool()
    losses: dict[int, int] = {}
    suspects: list[int] = []  # lost twice alongside others: run alone, where a loss has one culprit
    alone: int | None = None
    try:
        pending = {pool.submit(runner, t): i for i, t in enumerate(plan_.tasks)}
        while pending or suspects:
            if not pending:
                alone = suspects.pop(0)
                pending = {pool.submit(runner, plan_.tasks[alone]): alone}
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            lost = []
            for fut in finished:
                i = pending.pop(fut)
                try:
                    commit(fut.result())
                except BrokenProcessPool:
                    lost.append(i)
            if not lost:
                continue
            # A worker process died (killed, or a crash in native code): the pool is unusable and every task
            # in flight is lost with it. Keep what did finish and run the rest again on a fresh pool; a task
            # lost twice runs alone, and if its worker dies then, it is recorded as failed (never retried
            # forever, never blamed for another task's crash).
            for fut, i in list(pending.items()):
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    commit(fut.result())
                else:
                    lost.append(i)
            pool.shutdown(wait=False, cancel_futures=True)
            pool, pending = new_pool(), {}
            for i in sorted(lost):
                losses[i] = losses.get(i, 0) + 1
                if i == alone:
                    commit(failed_task_rows(plan_.tasks[i], "error", "its worker process died while it ran "
                                            f"alone ({losses[i]} losses: killed, or a crash in native code)"))
                elif losses[i] >= MAX_LOSSES - 1:
                    suspects.append(i)
                else:
                    pending[pool.submit(runner, plan_.tasks[i])] = i
            alone = None
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        for v, val in saved.items():
            if val is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = val
    pool.shutdown(wait=True)
    return written
