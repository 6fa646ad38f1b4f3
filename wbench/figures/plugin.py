"""Figure kinds contributed by plugins (hook ``wbench_register_figures``): a scenario can ship its own figures.

A :class:`FigureKind` names the scenarios it applies to, a pure ``data`` function (stored rows, the database
path and the kind's own options -> a pandas DataFrame, what tests check) and a ``draw`` function (DataFrame ->
matplotlib Figure), like the built-in kinds of :mod:`wbench.figures`. ``wbench plot NAME`` draws one
(``--solver`` and ``--run`` are passed on when the kind lists them in ``options``); ``wbench report`` draws
every registered kind for the scenarios it applies to, with its options unset. ``data`` raises
:class:`wbench.params.ParamError` with one line when there is nothing to draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

#: The options of ``wbench plot`` a plugin kind may take.
PLUGIN_OPTIONS = ("solver", "run")


@dataclass(frozen=True)
class FigureKind:
    """One figure kind: ``data(rows, db, **options)`` -> DataFrame, ``draw(DataFrame)`` -> Figure."""

    name: str
    scenarios: tuple[str, ...]
    data: Callable[..., Any]
    draw: Callable[[Any], Any]
    description: str = ""
    options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        bad = set(self.options) - set(PLUGIN_OPTIONS)
        if bad:
            raise ValueError(f"figure kind {self.name!r}: options {sorted(bad)} not among {PLUGIN_OPTIONS}")

    def applies(self, scenario: str) -> bool:
        return scenario in self.scenarios

    def figure_data(self, rows: Sequence[Mapping[str, Any]], db: str | Path, **options: Any) -> Any:
        return self.data(rows, db, **{k: v for k, v in options.items() if k in self.options})


def plugin_kinds() -> dict[str, FigureKind]:
    """The figure kinds registered by the loaded plugins, by name."""
    from ..registry import get_registry

    return dict(get_registry().figures)


__all__ = ["FigureKind", "PLUGIN_OPTIONS", "plugin_kinds"]
