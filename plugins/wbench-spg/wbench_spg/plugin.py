"""The wbench plugin module (entry point ``spg = "wbench_spg.plugin"`` in the group ``wbench``)."""

from __future__ import annotations

from typing import Callable

from wbench import hookimpl

from .spg import Spg


@hookimpl
def wbench_register_solvers(register: Callable) -> None:
    """Register the ``spg`` solver."""
    register(Spg())
