"""What a run is: a configuration (scenario, parameters, channel source), a task (one solver on a chunk of
realisations of one configuration), a plan (the tasks still to run) and the run key that identifies a run in
the store whatever executor runs it.

A run key hashes the configuration key (scenario, parameters, channel source), the realisation index, the
solver's name and version, its resolved options and the time budget: results with different options or
budgets never mix, and a rerun of the same command finds the runs it already has.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ..selection import SolverSpec
from ..solution_store import SOLUTION_CAP_BYTES


@dataclass(frozen=True)
class Config:
    """One point of the parameter grid on one channel source."""

    scenario: str
    params: tuple[tuple[str, Any], ...]
    seed: int
    channel_file: str | None = None
    channels: str = ""  # source key, filled by :func:`build_configs`

    @property
    def params_dict(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def params_json(self) -> str:
        return json.dumps(dict(self.params), sort_keys=True)

    @property
    def key(self) -> str:
        return _hash(self.scenario, self.params_json, self.channels)


@dataclass(frozen=True)
class Task:
    """One solver on a chunk of realisations of one configuration (picklable: names, not objects)."""

    config: Config
    solver: str
    options: tuple[tuple[str, Any], ...]
    label: str
    budget: str
    instances: tuple[int, ...]
    budget_seconds: float | None = None
    threads: int = 1
    device: str = "cpu"
    #: Enforced wall-clock limit per run (``--timeout``): the run is stopped and recorded as ``timeout``.
    timeout_seconds: float | None = None
    #: Largest stored solution kept with a run (bytes); ``None``: solutions are not kept.
    solution_cap_bytes: int | None = SOLUTION_CAP_BYTES


@dataclass
class Plan:
    configs: list[Config]
    specs: list[SolverSpec]
    tasks: list[Task]
    run_keys: dict[tuple[str, str, int], str] = field(default_factory=dict)
    total: int = 0
    done: int = 0
    notes: list[str] = field(default_factory=list)


def _hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def run_key(config: Config, spec_name: str, version: str, options_json: str, budget: float | None, i: int,
            device: str = "cpu") -> str:
    """The stored run's identity. ``device`` is the solver's effective torch device
    (:meth:`wbench.solver.Solver.run_device`): a run on another device than the CPU gets a key of its own, so
    a CUDA result is never reused for a CPU run (or the reverse); CPU keys are those of stores made before
    devices were keyed."""
    parts: tuple[Any, ...] = (config.key, int(i), spec_name, version, options_json, budget)
    return _hash(*parts) if device == "cpu" else _hash(*parts, device)


