"""Plugin manager: built-in plugin modules plus installed plugins from the entry-point group ``wbench``.

Built-ins go through the same hooks as third-party plugins (one path, as in pytest and simonw/llm).
Installed plugins are loaded from entry points unless ``WBENCH_LOAD_PLUGINS`` is set, in which case it is
a comma-separated allow-list of distribution names (empty: none, which is what the test-suite uses so
that whatever happens to be installed on a machine cannot change test results). ``WBENCH_DISABLE_PLUGINS``
is a block-list of distribution names.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Iterable

import pluggy

from . import hookspecs
from .params import ParamError
from .scenario import Scenario
from .solver import TAGS, Solver

GROUP = "wbench"

BUILTIN_PLUGINS: tuple[str, ...] = (
    "wbench.scenarios.miso",
    "wbench.scenarios.bdris",
    "wbench.scenarios.hrsma",
    "wbench.scenarios.isac",
    "wbench.scenarios.comp_rsma_ma",
    "wbench.scenarios.hybrid",
    "wbench.scenarios.star_ris_noma",
    "wbench.solvers.baselines.linear",
    "wbench.solvers.wmmse.wmmse",
    "wbench.solvers.wmmse.dpc_bound",
    "wbench.solvers.wmmse.genie_dpc",
    "wbench.solvers.wmmse.fp",
    "wbench.solvers.wmmse.rwmmse",
    "wbench.solvers.baselines.closed_form",
    "wbench.solvers.gradient.adam",
    "wbench.solvers.gradient.metaopt",
    "wbench.solvers.gradient.ggml",
    "wbench.solvers.learned.mlbf",
    "wbench.solvers.learned.ddpg",
    "wbench.solvers.local.multistart",
    "wbench.solvers.manifold.riemannian",
    "wbench.solvers.alternating.ao",
    "wbench.solvers.alternating.ao_star",
    "wbench.solvers.convex.saa_wmmse",
    "wbench.solvers.convex.sca",
    "wbench.solvers.hybrid.element_altmax",
    "wbench.solvers.hybrid.altmin",
    "wbench.solvers.hybrid.reference",
    "wbench.solvers.gradient.gml",
    "wbench.solvers.convex.brb",
)


class UnknownName(ParamError):
    """An unknown scenario or solver name (message lists what is valid)."""


class PluginError(RuntimeError):
    """A plugin that registers something malformed or a duplicate name."""


@dataclass(frozen=True)
class PluginInfo:
    name: str
    origin: str
    version: str
    hooks: tuple[str, ...]


class Registry:
    """Scenarios and solvers contributed by the registered plugins."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("wbench")
        self.pm.add_hookspecs(hookspecs)
        self.scenarios: dict[str, Scenario] = {}
        self.solvers: dict[str, Solver] = {}
        self.figures: dict[str, Any] = {}  # name -> wbench.figures.plugin.FigureKind
        self.plugins: list[PluginInfo] = []
        self.warnings: list[str] = []

    # -- loading ---------------------------------------------------------------------------------
    def add_module(self, module: ModuleType, origin: str, version: str) -> None:
        """Register one plugin module and collect what its hooks contribute."""
        name = module.__name__
        if self.pm.has_plugin(name):
            raise PluginError(f"plugin module {name} is registered twice (from {origin})")
        self.pm.register(module, name=name)
        self.pm.check_pending()
        callers = [h.name for h in self.pm.get_hookcallers(module) or []]
        self.plugins.append(PluginInfo(name, origin, version, tuple(sorted(callers))))
        self._collect(module, origin)

    def _collect(self, module: ModuleType, origin: str) -> None:
        def reg_scenario(s: Scenario) -> None:
            if not isinstance(s, Scenario) or not s.name:
                raise PluginError(f"{module.__name__}: register() needs a named Scenario instance")
            if s.name in self.scenarios:
                raise PluginError(
                    f"scenario {s.name!r} from {origin} clashes with one from {self.scenarios[s.name].origin}"
                )
            s.origin = origin
            self.scenarios[s.name] = s

        def reg_solver(s: Solver) -> None:
            if not isinstance(s, Solver) or not s.name:
                raise PluginError(f"{module.__name__}: register() needs a named Solver instance")
            if s.name in self.solvers:
                raise PluginError(
                    f"solver {s.name!r} from {origin} clashes with one from {self.solvers[s.name].origin}"
                )
            bad = set(s.tags) - set(TAGS)
            if bad:
                raise PluginError(f"solver {s.name!r}: unknown tags {sorted(bad)}")
            s.origin = origin
            self.solvers[s.name] = s

        caller = self.pm.subset_hook_caller
        others = [p for p in self.pm.get_plugins() if p is not module]
        caller("wbench_register_scenarios", others)(register=reg_scenario)
        caller("wbench_register_solvers", others)(register=reg_solver)

        def reg_figure(f: Any) -> None:
            from .figures import KINDS
            from .figures.plugin import FigureKind

            if not isinstance(f, FigureKind) or not f.name:
                raise PluginError(f"{module.__name__}: register() needs a named FigureKind instance")
            if f.name in self.figures or f.name in KINDS:
                raise PluginError(f"figure kind {f.name!r} from {origin} clashes with an existing kind")
            self.figures[f.name] = f

        caller("wbench_register_figures", others)(register=reg_figure)

    def load_builtins(self, modules: Iterable[str] | None = None) -> None:
        from . import __version__

        for mod in BUILTIN_PLUGINS if modules is None else modules:
            self.add_module(importlib.import_module(mod), "built-in", __version__)

    def load_modules_from_env(self) -> None:
        """Plugin modules named in ``WBENCH_PLUGIN_MODULES`` (comma-separated import paths): a plugin under
        development, loaded without installing it; worker processes inherit the variable."""
        for name in (m.strip() for m in os.environ.get("WBENCH_PLUGIN_MODULES", "").split(",")):
            if not name:
                continue
            try:
                self.add_module(importlib.import_module(name), f"module {name}", "dev")
            except PluginError:
                raise
            except Exception as exc:
                self.warnings.append(f"plugin module {name} not loaded: {type(exc).__name__}: {exc}")

    def load_entrypoints(self) -> None:
        allow = os.environ.get("WBENCH_LOAD_PLUGINS")
        allowed = None if allow is None else {a.strip() for a in allow.split(",") if a.strip()}
        blocked = {b.strip() for b in os.environ.get("WBENCH_DISABLE_PLUGINS", "").split(",") if b.strip()}
        for ep in entry_points(group=GROUP):
            dist = ep.dist.name if ep.dist is not None else ep.name
            if (allowed is not None and dist not in allowed) or dist in blocked:
                continue
            version = ep.dist.version if ep.dist is not None else "?"
            try:
                module = ep.load()
                if not isinstance(module, ModuleType):
                    raise PluginError(f"entry point {ep.value} must name a module, not {type(module).__name__}")
                self.add_module(module, dist, version)
            except Exception as exc:  # a broken plugin must not take the others down
                self.warnings.append(f"plugin {dist} ({ep.value}) not loaded: {type(exc).__name__}: {exc}")

    # -- look-ups --------------------------------------------------------------------------------
    def scenario(self, name: str) -> Scenario:
        try:
            return self.scenarios[name]
        except KeyError:
            raise UnknownName(
                f"unknown scenario {name!r}; valid: {', '.join(sorted(self.scenarios))}"
            ) from None

    def solver(self, name: str) -> Solver:
        try:
            return self.solvers[name]
        except KeyError:
            valid = sorted(self.solvers) + list(TAGS)
            raise UnknownName(f"unknown solver or tag {name!r}; valid: {', '.join(valid)}") from None

    def solvers_for(self, scenario: str) -> list[Solver]:
        return [s for s in self.solvers.values() if s.supports(scenario)]


_REGISTRY: Registry | None = None


def get_registry(refresh: bool = False) -> Registry:
    """The process-wide registry (built-ins, then entry points), built on first use."""
    global _REGISTRY
    if _REGISTRY is None or refresh:
        reg = Registry()
        reg.load_builtins()
        reg.load_entrypoints()
        reg.load_modules_from_env()
        for w in reg.warnings:
            print(f"wbench: warning: {w}", file=sys.stderr)
        _REGISTRY = reg
    return _REGISTRY
