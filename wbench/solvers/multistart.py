"""Placeholder for the `multistart` solver (issue 3, in progress): registers nothing yet."""

from __future__ import annotations

from ..hookspecs import hookimpl


@hookimpl
def wbench_register_solvers(register) -> None:
    return None
