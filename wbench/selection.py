"""Solver selection on the command line, benchopt-style: ``"wmmse[max_iter=10,init=mrt],mrt,baseline"``.

An item is a solver name with optional ``[key=value,...]`` options, or a tag (``baseline``,
``conventional``, ``meta``, ``bound``, ``reference``, ``optimum``) that expands to every solver with that tag supporting the scenario.
The resolved options are part of a run's identity; the label shows the options that differ from the
defaults, in sorted order, so that equal configurations get equal labels however they were typed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .params import ParamError, format_value
from .registry import Registry, UnknownName
from .solver import TAGS, Solver


@dataclass(frozen=True)
class SolverSpec:
    """A solver with fully resolved options."""

    solver: Solver = field(compare=False)
    name: str
    options: tuple[tuple[str, Any], ...]

    @property
    def options_dict(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def options_json(self) -> str:
        return json.dumps(dict(self.options), sort_keys=True)

    @property
    def label(self) -> str:
        changed = [
            f"{k}={format_value(v)}"
            for k, v in self.options
            if k in self.solver.options and v != self.solver.options[k].default
        ]
        return f"{self.name}[{','.join(changed)}]" if changed else self.name

    @property
    def budget(self) -> str:
        return self.solver.budget_label(self.options_dict)


def split_items(text: str) -> list[str]:
    """Split on commas that are not inside ``[...]``."""
    items: list[str] = []
    depth = 0
    cur = ""
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ParamError(f"unbalanced ']' in solver selection {text!r}")
        if ch == "," and depth == 0:
            items.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if depth:
        raise ParamError(f"unbalanced '[' in solver selection {text!r}")
    items.append(cur.strip())
    if any(not i for i in items):
        raise ParamError(f"empty item in solver selection {text!r}")
    return items


def parse_item(item: str) -> tuple[str, dict[str, str]]:
    """``name[k=v,k2=v2]`` -> ``("name", {"k": "v", "k2": "v2"})``."""
    if "[" not in item:
        return item, {}
    if not item.endswith("]"):
        raise ParamError(f"malformed solver item {item!r}; expected name[key=value,...]")
    name, _, rest = item.partition("[")
    opts: dict[str, str] = {}
    body = rest[:-1].strip()
    for part in (p.strip() for p in body.split(",")) if body else ():
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ParamError(f"malformed option {part!r} in {item!r}; expected key=value")
        opts[key.strip()] = value.strip()
    return name.strip(), opts


def select(registry: Registry, text: str, scenario: str) -> tuple[list[SolverSpec], list[str]]:
    """Resolve a selection for ``scenario``: the specs, and notes on tag members left out."""
    specs: list[SolverSpec] = []
    notes: list[str] = []
    for item in split_items(text):
        name, opts = parse_item(item)
        if name in TAGS and name not in registry.solvers:
            if opts:
                raise ParamError(f"options cannot be given to a tag ({item!r})")
            members = [s for s in registry.solvers.values() if name in s.tags]
            for s in members:
                if s.supports(scenario):
                    specs.append(_spec(s, {}))
                else:
                    notes.append(f"{s.name} ({name}) does not support scenario {scenario}")
            continue
        solver = registry.solver(name)
        if not solver.supports(scenario):
            raise UnknownName(
                f"solver {name!r} does not support scenario {scenario!r}; solvers that do: "
                + ", ".join(sorted(s.name for s in registry.solvers_for(scenario)))
            )
        specs.append(_spec(solver, opts))
    unique: list[SolverSpec] = []
    for s in specs:
        if s not in unique:
            unique.append(s)
    return unique, notes


def _spec(solver: Solver, given: dict[str, Any]) -> SolverSpec:
    resolved = solver.resolve_options(given)
    return SolverSpec(solver=solver, name=solver.name, options=tuple(sorted(resolved.items())))
