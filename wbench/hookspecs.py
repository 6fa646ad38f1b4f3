"""The plugin contract: pluggy hook specifications of the ``wbench`` project.

A plugin is a module with functions marked ``@wbench.hookimpl``; an installed plugin names that module
in the entry-point group ``wbench`` of its ``pyproject.toml``. The built-in scenarios and solvers are
registered through these very hooks. Every hook here must be documented in the README's
"Writing a plugin" section (a test checks it).
"""

from __future__ import annotations

from typing import Callable

import pluggy

hookspec = pluggy.HookspecMarker("wbench")
hookimpl = pluggy.HookimplMarker("wbench")


@hookspec
def wbench_register_scenarios(register: Callable) -> None:
    """Register scenarios: call ``register(ScenarioInstance)`` once per scenario."""


@hookspec
def wbench_register_solvers(register: Callable) -> None:
    """Register solvers: call ``register(SolverInstance)`` once per solver."""


@hookspec
def wbench_register_figures(register: Callable) -> None:
    """Register figure kinds a scenario ships (:class:`wbench.figures.plugin.FigureKind`): call
    ``register(FigureKind(...))`` once per kind; ``wbench plot NAME`` draws it and ``wbench report`` includes
    it for the scenarios the kind names."""
