"""The engine: the run matrix (configuration x solver x realisation) from plan to stored rows.

* :mod:`.tasks` — what a run is (configuration, task, plan, run key);
* :mod:`.planning` — sweeps to configurations, resume, the checks a plan must pass before anything runs;
* :mod:`.limits` — budgets, the enforced time limit, fixed thread counts;
* :mod:`.runner` — one task: problems, timed solver calls, batches;
* :mod:`.scoring` — the harness's verdict on a returned point (utility, feasibility, status, trace);
* :mod:`.local`, :mod:`.dask_cluster` — executors; they depend on the runner, never the reverse.

The harness, not the solver, measures: wall and CPU time of the solver call only, under a fixed thread
count; utility and feasibility re-evaluated in float64 by the scenario; checkpoint utilities evaluated
after the clock stopped. A failing run is a row with a status, never a crashed benchmark.
"""

from __future__ import annotations

from typing import Any, Callable

from ..params import ParamError
from ..store import Store
from .limits import TIMEOUT_ATOL, TIMEOUT_RTOL, RunTimeout, hard_limit
from .local import MAX_LOSSES, execute_local
from .planning import MAX_BATCH, available_memory, build_configs, channel_source, plan
from .runner import failed_task_rows, run_task, solver_rng
from .scoring import STATUSES, score
from .tasks import Config, Plan, Task, run_key

EXECUTORS = ("local", "dask")


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

    ``executor="local"``: in this process (``jobs=1``) or a pool of ``jobs`` spawned worker processes
    (:mod:`.local`); ``"dask"``: on a dask cluster (:mod:`.dask_cluster`; ``scheduler`` joins an existing one).
    """
    if executor == "dask":
        from .dask_cluster import execute_dask

        return execute_dask(plan_, store, jobs, scheduler, on_rows, None if runner is run_task else runner)
    if executor != "local":
        raise ParamError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    return execute_local(plan_, store, jobs, on_rows, runner)


__all__ = [
    "EXECUTORS", "MAX_BATCH", "MAX_LOSSES", "STATUSES", "TIMEOUT_ATOL", "TIMEOUT_RTOL", "Config", "Plan",
    "RunTimeout", "Task", "available_memory", "build_configs", "channel_source", "execute", "execute_local",
    "failed_task_rows", "hard_limit", "plan", "run_key", "run_task", "score", "solver_rng",
]
