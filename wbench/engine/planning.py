"""Planning: from ``--set``/``--sweep`` and a solver selection to the tasks still to run.

Configurations are the Cartesian product of the sweeps over the fixed values (the scenario's default sweep
if none); each (configuration, solver) pair gets one run key per realisation, and the keys already in the
store are dropped (resume). Before anything is run or deleted, a plan is checked: the channels of stored
results must have the fingerprints the generator gives now, and the solvers' estimated memory must fit.
A refused plan changes nothing in the store.
"""

from __future__ import annotations

import itertools
import math
import os
from functools import lru_cache
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..channels.channelset import ChannelSource, FileChannels, GeneratedChannels
from ..params import ParamError
from ..problem import Problem
from ..registry import get_registry
from ..selection import SolverSpec
from ..solution_store import SOLUTION_CAP_BYTES
from ..solver import Solver, check_device
from ..store import Store, StoreError
from .tasks import Config, Plan, Task, run_key

#: Largest chunk of realisations handed to a batched solver at once.
MAX_BATCH = 256

def build_configs(
    scenario: str,
    set_params: Mapping[str, str],
    sweeps: Mapping[str, Sequence[str]],
    seed: int,
    channel_file: str | None = None,
) -> list[Config]:
    """Cartesian product of the sweeps over the fixed ``--set`` values (scenario default sweep if none)."""
    sc = get_registry().scenario(scenario)
    both = sorted(set(set_params) & set(sweeps))
    if both:
        raise ParamError(f"parameter {', '.join(both)} is both --set and --sweep")
    if not sweeps:
        sweeps = {k: v for k, v in sc.default_sweep.items() if k not in set_params}
    keys = list(sweeps)
    configs: list[Config] = []
    for values in itertools.product(*(sweeps[k] for k in keys)):
        given = dict(set_params)
        given.update(zip(keys, values))
        params = sc.resolve_params(given)
        cfg = Config(scenario, tuple(sorted(params.items())), int(seed), channel_file)
        src = channel_source(cfg)
        configs.append(Config(scenario, cfg.params, int(seed), channel_file, src.key))
    if len(set(configs)) != len(configs):
        raise ParamError("the sweep repeats a configuration")
    return configs


@lru_cache(maxsize=32)
def channel_source(config: Config) -> ChannelSource:
    sc = get_registry().scenario(config.scenario)
    if config.channel_file:
        return FileChannels(config.channel_file, sc, config.params_dict)
    return GeneratedChannels(sc, config.params_dict, config.seed)


def plan(
    store: Store,
    configs: Sequence[Config],
    specs: Sequence[SolverSpec],
    instances: int,
    budget_seconds: float | None = None,
    fresh: bool = False,
    jobs: int = 1,
    threads: int = 1,
    device: str = "cpu",
    timeout_seconds: float | None = None,
    max_memory: float | None = None,
    solution_cap_bytes: int | None = SOLUTION_CAP_BYTES,
) -> Plan:
    """The tasks still to run; with ``fresh`` the matching rows are deleted, after every check has passed.

    Refuses (``ParamError``, with the estimate) a plan whose solvers would not fit in memory: per task,
    the solver's :meth:`~wbench.solver.Solver.memory_bytes` plus the channel arrays, times the chunk for a
    batched solver, times the number of workers, against ``max_memory`` bytes (default: the memory the
    operating system reports available). ``solution_cap_bytes``: the largest stored solution kept with a
    run (``None``: none kept).
    """
    bad_device = check_device(device)
    if bad_device:
        raise ParamError(f"--device {device!r}: {bad_device}")
    out = Plan(list(configs), list(specs), [])
    # A device the solver cannot use is declined once for the whole command (it holds in every configuration).
    off_device = {spec.label: spec.solver.declines_device(device, spec.options_dict) for spec in specs}
    out.notes.extend(f"{label} skipped: {reason}" for label, reason in off_device.items() if reason)
    to_delete: list[str] = []  # with ``fresh``: deleted only once every check has passed, in one transaction
    limit = max_memory if max_memory is not None else available_memory()
    for cfg in configs:
        src = channel_source(cfg)
        if instances > len(src):
            raise ParamError(f"{instances} instances requested but the channel file holds {len(src)}")
        if not fresh:
            _check_fingerprints(store, cfg, src, instances)
        channel0 = src.get(0)[0]  # drawn once per configuration: the probe and the memory estimate
        sc = get_registry().scenario(cfg.scenario)
        probe = sc.problem(cfg.params_dict, sc.seen(channel0))  # what solvers see (hidden arrays left out)
        for spec in specs:
            if off_device[spec.label]:
                continue
            reason = spec.solver.declines(probe, spec.options_dict)
            if reason:
                out.notes.append(f"{spec.label} skipped: {reason} ({cfg.scenario} {_short(cfg)})")
                continue
            keys = {
                i: run_key(cfg, spec.name, spec.solver.version, spec.options_json, budget_seconds, i,
                           spec.solver.run_device(device, spec.options_dict))
                for i in range(instances)
            }
            for i, k in keys.items():
                out.run_keys[(cfg.key, spec.label, i)] = k
            out.total += len(keys)
            if fresh:
                to_delete.extend(keys.values())
                missing = list(range(instances))
            else:
                have = store.existing_keys(keys.values())
                missing = [i for i, k in keys.items() if k not in have]
            out.done += instances - len(missing)
            size = _chunk_size(spec.solver, len(missing), jobs)
            if missing and limit is not None:
                _check_memory(spec, cfg, probe, channel0, size, jobs, limit)
            for chunk in _chunks(missing, size):
                out.tasks.append(
                    Task(cfg, spec.name, spec.options, spec.label, spec.budget, tuple(chunk),
                         budget_seconds, threads, device, timeout_seconds, solution_cap_bytes)
                )
    if to_delete:
        store.delete(to_delete)
    return out


def available_memory() -> int | None:
    """Bytes of memory available to new work (Linux ``MemAvailable``), ``None`` where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _check_memory(spec: SolverSpec, cfg: Config, probe: Problem, channel: Mapping[str, Any], chunk: int,
                  jobs: int, limit: float) -> None:
    per_run = spec.solver.memory_bytes(probe, spec.options_dict)
    per_run += sum(int(np.asarray(a).nbytes) for a in channel.values())
    per_task = per_run * (chunk if spec.solver.batched else 1)
    total = per_task * max(1, jobs)
    if total > limit:
        gib = 2.0**30
        raise ParamError(
            f"not enough memory for {spec.label} on {cfg.scenario} {_short(cfg)}: about "
            f"{per_task / gib:.3g} GiB per task x {max(1, jobs)} worker(s) = {total / gib:.3g} GiB, "
            f"{limit / gib:.3g} GiB available (reduce the problem or the solver's state, lower --jobs, "
            "or set --max-memory GIB)"
        )


def _short(cfg: Config) -> str:
    return " ".join(f"{k}={v}" for k, v in cfg.params)


def _check_fingerprints(store: Store, cfg: Config, src: ChannelSource, instances: int) -> None:
    stored = store.fingerprints(cfg.key)
    for i, fp in stored.items():
        if i < instances and src.get(i)[1] != fp:
            raise StoreError(
                f"channels changed for {cfg.scenario} {_short(cfg)} (realisation {i}): the store holds results "
                "on other channels; regenerate with --fresh or use another --db"
            )


def _chunk_size(solver: Solver, n: int, jobs: int) -> int:
    if n == 0:
        return 1
    if solver.batched:
        return max(1, min(MAX_BATCH, math.ceil(n / jobs)))
    return max(1, min(25, math.ceil(n / (4 * jobs))))


def _chunks(seq: Sequence[int], size: int) -> Iterable[list[int]]:
    for i in range(0, len(seq), size):
        yield list(seq[i : i + size])


