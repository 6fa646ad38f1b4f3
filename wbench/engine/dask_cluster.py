"""Running a plan's tasks on a ``dask.distributed`` cluster (``wbench compare --executor dask``).

The coordinator (the ``wbench`` process) submits one dask task per harness task and writes each task's
rows to the store, in one transaction, as its future completes: the store is only ever written by the
coordinator, so a worker that dies cannot leave a half-written row. Dask reschedules the tasks of a
worker that died on another worker (up to ``distributed.scheduler.allowed-failures`` times); a task
that still fails is recorded, run by run, with status ``error`` and the reason (never lost), and a rerun
of the same command does only the runs missing from the store (the run keys are the same whichever
executor ran them, and rows are inserted with ``INSERT OR IGNORE``, so nothing is written twice).

Enforced time limits (``--timeout``): dask runs tasks in worker threads, where no signal can pre-empt a
hung solver, so a task with a limit runs in a helper process of the worker (one per worker, reused) whose
main thread applies :func:`wbench.engine.limits.hard_limit` per run; if that process does not answer within
the whole task's limit plus a margin (a hang inside native code), it is killed, replaced, and the task's
runs are recorded as ``timeout``. Workers must be allowed to start that process: the ``LocalCluster`` is
configured so; workers of an existing cluster need ``DASK_DISTRIBUTED__WORKER__DAEMON=False`` in their
environment, else the limit falls back to the solvers' cooperative budget checks (said in the row).

Without ``--scheduler`` a ``LocalCluster`` of ``--jobs`` single-threaded worker processes is started
and closed; with it, wbench joins an existing cluster (e.g. one started by dask-jobqueue on SLURM/PBS).
dask is imported only here, so the local executor never needs it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any, Callable

from ..params import ParamError
from ..store import Store
from .local import init_worker
from .runner import failed_task_rows, run_task
from .tasks import Plan, Task

#: Seconds allowed beyond a task's summed per-run limits before its helper process is killed.
KILL_MARGIN = 5.0

_HELPER: ProcessPoolExecutor | None = None


def execute_dask(
    plan_: Plan,
    store: Store,
    jobs: int = 1,
    scheduler: str | None = None,
    on_rows: Callable[[int], None] | None = None,
    runner: Callable[[Task], list[dict[str, Any]]] | None = None,
) -> int:
    """Run the plan on a dask cluster; returns the number of rows written (see the module docstring)."""
    try:
        import dask
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ParamError("--executor dask needs dask.distributed: pip install 'wbench[dask]'") from None
    if not plan_.tasks:
        return 0
    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout=30)
        else:
            # non-daemonic workers may start the helper process that enforces --timeout
            with dask.config.set({"distributed.worker.daemon": False}):
                cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.ERROR)
            client = Client(cluster)
    except OSError as exc:
        raise ParamError(f"cannot reach the dask scheduler {scheduler!r}: {exc}") from None
    written = 0
    try:
        fn = runner or run_in_worker
        futures = {client.submit(fn, t, pure=False): t for t in plan_.tasks}
        for fut in as_completed(futures):
            task = futures[fut]
            try:
                rows = fut.result()
            except Exception as exc:  # e.g. KilledWorker: the task's workers kept dying
                rows = failed_task_rows(task, "error", f"worker failure: {type(exc).__name__}: {exc}"[:400])
            written += store.write(rows)
            if on_rows:
                on_rows(len(rows))
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return written


def run_in_worker(task: Task) -> list[dict[str, Any]]:
    """The dask task: :func:`wbench.engine.runner.run_task`, in a helper process when the task has a limit."""
    if task.timeout_seconds is None:
        return run_task(task)
    global _HELPER
    if _HELPER is None:
        _HELPER = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"),
                                      initializer=_init_helper, initargs=(task.threads, os.getpid()))
    limit = task.timeout_seconds * len(task.instances) + KILL_MARGIN
    try:
        future = _HELPER.submit(run_task, task)
    except AssertionError:  # "daemonic processes are not allowed to have children"
        _HELPER = None
        rows = run_task(task)
        for r in rows:
            if r["status"] != "ok":
                r["error"] = f"{r['error']} [--timeout not enforced: daemonic dask worker]"
        return rows
    try:
        return future.result(timeout=limit)
    except FutureTimeout:
        _kill_helper()
        return failed_task_rows(task, "timeout", f"killed after {limit:g} s: a run did not stop at the "
                                f"enforced limit of {task.timeout_seconds:g} s (hung in native code?)")
    except BrokenProcessPool:
        _kill_helper()
        return failed_task_rows(task, "error", "the solver's process died")


def _init_helper(threads: int, parent: int) -> None:
    """The helper process: thread limits, and exit as soon as its dask worker is gone (a worker killed
    by its nanny cannot shut its pool down, and an orphaned helper would live on)."""
    init_worker(threads)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="wbench-parent-watch").start()


def _kill_helper() -> None:
    global _HELPER
    if _HELPER is None:
        return
    for proc in list(getattr(_HELPER, "_processes", {}).values()):
        proc.kill()
    _HELPER.shutdown(wait=False, cancel_futures=True)
    _HELPER = None
