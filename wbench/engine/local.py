"""The local executor: a plan's tasks in this process (``--jobs 1``) or in a pool of spawned worker processes,
each task's rows committed in one transaction as it completes.

A worker that dies (killed, or a crash in native code) breaks the pool and loses the tasks in flight: what
finished is kept, the pool is rebuilt and the lost tasks are run again; a task lost twice runs alone, and if
its worker dies then it is recorded as ``error`` (never retried forever, never blamed for another's crash).
"""

from __future__ import annotations

import os
import signal
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any, Callable

from ..store import Store
from .runner import failed_task_rows, run_task
from .tasks import Plan, Task

#: A task whose worker process dies this many times is recorded as failed (local executor).
MAX_LOSSES = 3

def _set_thread_env(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def init_worker(threads: int) -> None:
    _set_thread_env(threads)
    # Ctrl-C is the coordinator's business: it stops handing out tasks and keeps what was committed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def execute_local(
    plan_: Plan,
    store: Store,
    jobs: int = 1,
    on_rows: Callable[[int], None] | None = None,
    runner: Callable[[Task], list[dict[str, Any]]] = run_task,
) -> int:
    """Run the plan's tasks in this process (``jobs=1``) or a pool of ``jobs`` spawned worker processes,
    committing each task's rows as it completes; returns the rows written."""
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
                                   initializer=init_worker, initargs=(threads,))

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
