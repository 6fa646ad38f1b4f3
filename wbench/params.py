"""Typed, validated parameters shared by scenarios (``--set``/``--sweep``) and solvers (``name[k=v]``).

Values arrive as strings from the command line; :meth:`Param.parse` turns them into the declared type and
checks the range, so a bad value fails with one line naming the parameter and what is valid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence


class ParamError(ValueError):
    """A parameter or option that is unknown, malformed or out of range (reported as one line)."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Param:
    """One parameter: default (its type is the parameter's type), range, allowed choices, help text."""

    default: Any
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: Sequence[Any] | None = None
    #: Extra check returning an error message (or ``None``) for a parsed value.
    check: Callable[[Any], str | None] | None = None
    #: Whether ``None`` is an allowed value (written ``none`` on the command line).
    nullable: bool = False

    @property
    def type(self) -> type:
        return type(self.default)

    def parse(self, name: str, raw: Any) -> Any:
        """Convert ``raw`` (string or value) to this parameter's type and validate it."""
        if raw is None:
            if self.nullable or self.default is None:
                return None
            raise ParamError(f"{name}: a value is required")
        if isinstance(raw, str) and raw.strip().lower() == "none" and (self.nullable or self.default is None):
            return None  # elsewhere "none" is an ordinary word (e.g. project=none)
        kind = self.type
        try:
            if kind is bool:
                value = _parse_bool(raw)
            elif kind is int:
                value = _parse_int(raw)
            elif kind is float:
                value = float(raw)
            elif kind is str or self.default is None:
                value = str(raw).strip()
            else:
                value = kind(raw)
        except (TypeError, ValueError):
            raise ParamError(f"{name}: cannot read {raw!r} as {kind.__name__}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ParamError(f"{name}: must be finite, got {raw!r}")
        if self.min is not None and value < self.min:
            raise ParamError(f"{name}: must be >= {self.min:g}, got {value!r}")
        if self.max is not None and value > self.max:
            raise ParamError(f"{name}: must be <= {self.max:g}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ParamError(f"{name}: {value!r} is not one of {', '.join(map(str, self.choices))}")
        if self.check is not None:
            msg = self.check(value)
            if msg:
                raise ParamError(f"{name}: {msg}")
        return value


def _parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(raw)


def _parse_int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError(raw)
    if isinstance(raw, int):
        return raw
    f = float(raw)
    if not f.is_integer():
        raise ValueError(raw)
    return int(f)


def resolve(
    schema: Mapping[str, Param], given: Mapping[str, Any], what: str
) -> dict[str, Any]:
    """Defaults overlaid with ``given`` (parsed and validated); unknown keys list what is valid."""
    unknown = sorted(set(given) - set(schema))
    if unknown:
        valid = ", ".join(sorted(schema)) or "(none)"
        raise ParamError(f"unknown {what} {', '.join(unknown)}; valid: {valid}")
    out = {k: p.default for k, p in schema.items()}
    for k, raw in given.items():
        out[k] = schema[k].parse(k, raw)
    return out


def format_value(v: Any) -> str:
    """Stable, compact text for labels and keys (``1e-04`` and ``0.0001`` print the same)."""
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)
