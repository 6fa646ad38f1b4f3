"""Limits a run is held to: the time budget's tolerance, the enforced wall-clock limit (``--timeout``) and
the fixed thread count of the timed region.

A cooperative budget (``--budget-seconds``) is checked by iterative solvers between iterations, so a run may
overshoot it by one iteration: it is a ``timeout`` only beyond ``budget * (1 + TIMEOUT_RTOL) + TIMEOUT_ATOL``.
The enforced limit pre-empts Python code from a ``SIGALRM`` handler (:func:`hard_limit`); where signals cannot
reach the run (a worker thread), the executor isolates runs in a process of their own.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Any

#: A run whose wall time exceeds ``budget_seconds * (1 + TIMEOUT_RTOL) + TIMEOUT_ATOL`` is a ``timeout``:
#: iterative solvers check the budget between iterations, so they may overshoot by one iteration.
TIMEOUT_RTOL = 0.2
TIMEOUT_ATOL = 0.1


class ThreadLimit:
    """Fix BLAS/OpenMP (and torch, if loaded) thread counts for the timed region."""

    def __init__(self, threads: int, torch: bool = False) -> None:
        self.threads = threads
        self.torch = torch

    def __enter__(self) -> "ThreadLimit":
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


class RunTimeout(BaseException):
    """Raised into a run by the enforced wall-clock limit (a BaseException: ``except Exception`` in a
    solver does not swallow it)."""


@contextlib.contextmanager
def hard_limit(seconds: float | None):
    """Stop the enclosed code after ``seconds`` of wall time by raising :class:`RunTimeout` from a
    ``SIGALRM`` handler: pre-emptive for Python code and for sleeps and other interruptible system calls.
    Signals reach only the main thread, so elsewhere (e.g. a dask worker's task thread) this does nothing
    and the caller must isolate the run in a process of its own (:mod:`wbench.engine.dask_cluster` does)."""
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

