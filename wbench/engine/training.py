"""Trained solvers: the once-per-configuration training run, its channels and its cache (DESIGN.md, "Trained
solvers"; issue 20).

A solver with ``trains = True`` learns a policy over many channels before it is evaluated. The harness calls
:meth:`wbench.solver.Solver.train` once per configuration (scenario, parameters, seed, solver version, options)
and hands the policy to every run through :attr:`wbench.solver.RunContext.policy`; the run's measured time is the
policy's inference only. The training cost (wall and CPU seconds, episodes) is recorded apart, in each row's
``metrics`` as ``train_wall_s``, ``train_cpu_s`` and ``train_episodes`` (the leaderboard shows them as columns).

Training channels: realisation ``j`` of the training set is drawn from
``SeedSequence(seed, spawn_key=(crc32(scenario), TRAIN_TAG, j))``; evaluation realisations use the two-part
spawn key ``(crc32(scenario), i)`` (:func:`wbench.channels.channelset.realisation_rng`), so the two sets come
from different seed sequences by construction. Training always draws from the scenario's generator, also when the
evaluation channels come from a file.

Cache: a policy is a ``dict`` of NumPy arrays, kept in memory per process and on disk as a ``.npz`` (no pickle)
under ``$WBENCH_CACHE/trained`` (default ``~/.cache/wbench/trained``), named by a hash of everything that
determines it: scenario, parameters, seed, solver version and the solver's training options
(:attr:`wbench.solver.Solver.training_options`; every option when it declares none), so that changing an
inference-only option reuses the policy; parallel workers of one configuration take a file lock, so one trains and the others load. A
cached policy carries the cost of the training that produced it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from ..problem import Problem
from ..scenario import Channel, Scenario

#: The middle element of a training realisation's spawn key ("trn" in ASCII): evaluation keys have two elements.
TRAIN_TAG = 0x74726E

Policy = dict[str, np.ndarray]


def training_rng(seed: int, scenario: str, index: int) -> np.random.Generator:
    """The generator of training realisation ``index`` (disjoint from every evaluation realisation's)."""
    ss = np.random.SeedSequence(entropy=int(seed), spawn_key=(zlib.crc32(scenario.encode()), TRAIN_TAG, int(index)))
    return np.random.default_rng(ss)


@dataclass(frozen=True)
class TrainingSet:
    """The training channels of one configuration: an endless, indexable stream of realisations."""

    scenario: Scenario
    params: Mapping[str, Any]
    seed: int

    def channel(self, j: int) -> Channel:
        return self.scenario.draw(self.params, training_rng(self.seed, self.scenario.name, j))

    def problem(self, j: int) -> Problem:
        """The problem a solver sees on training realisation ``j`` (as :meth:`Scenario.problems` gives it)."""
        return self.scenario.problems(self.params, self.channel(j))[0]


@dataclass(frozen=True)
class TrainingInfo:
    """The cost of the training that produced a policy, and whether this process reused it."""

    wall_s: float
    cpu_s: float
    episodes: int
    cached: bool

    def metrics(self) -> dict[str, float]:
        return {"train_wall_s": self.wall_s, "train_cpu_s": self.cpu_s, "train_episodes": float(self.episodes)}


def cache_dir() -> Path:
    root = os.environ.get("WBENCH_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "wbench") / "trained"


def policy_key(scenario: str, params_json: str, seed: int, solver: str, version: str,
               options: Mapping[str, Any], generator_version: str = "") -> str:
    blob = json.dumps({"scenario": scenario, "params": params_json, "seed": int(seed), "solver": solver,
                       "version": version, "options": dict(options), "generator": generator_version},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


_MEMORY: dict[str, tuple[Policy, TrainingInfo]] = {}
_META = ("__train_wall_s", "__train_cpu_s", "__train_episodes")


def _load(path: Path) -> tuple[Policy, TrainingInfo] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        wall, cpu, eps = (float(arrays.pop(k)) for k in _META)
    except Exception:  # a missing, partial or foreign file: train again
        return None
    return arrays, TrainingInfo(wall, cpu, int(eps), cached=True)


def _save(path: Path, policy: Policy, info: TrainingInfo) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **policy, **dict(zip(_META, (info.wall_s, info.cpu_s, info.episodes))))
    os.replace(tmp, path)  # atomic: parallel workers never read a half-written policy


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """An advisory lock on ``path``'s cache entry (POSIX ``flock``); without one (no ``fcntl``, an unwritable
    cache), no lock: parallel workers may then train the same policy twice (same seeds: the same policy)."""
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path.with_suffix(".lock"), "a")
    except (ImportError, OSError):
        yield
        return
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def training_options(solver: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options that determine ``solver``'s policy: those named by its ``training_options`` (all if
    ``None``)."""
    names = getattr(solver, "training_options", None)
    return dict(options) if names is None else {k: v for k, v in options.items() if k in names}


def trained_policy(solver: Any, scenario: Scenario, params: Mapping[str, Any], params_json: str, seed: int,
                   options: Mapping[str, Any]) -> tuple[Policy, TrainingInfo]:
    """The solver's policy for this configuration: from memory, from the disk cache, or trained now. Training
    sees only the training options (the others at their defaults), so a policy never depends on an option
    its cache key leaves out."""
    options = training_options(solver, options)
    key = policy_key(scenario.name, params_json, seed, solver.name, solver.version, options,
                     scenario.generator_version)
    if key in _MEMORY:
        policy, info = _MEMORY[key]
        return policy, TrainingInfo(info.wall_s, info.cpu_s, info.episodes, cached=True)
    path = cache_dir() / f"{solver.name}-{key}.npz"
    hit = _load(path) if path.is_file() else None
    if hit is None:
        with _exclusive(path):  # parallel workers of one configuration: one trains, the others then load
            hit = _load(path) if path.is_file() else None
            if hit is None:
                t0, c0 = time.perf_counter(), time.process_time()
                policy, episodes = solver.train(scenario, params, options, TrainingSet(scenario, params, seed))
                policy = {str(k): np.asarray(v) for k, v in policy.items()}
                info = TrainingInfo(time.perf_counter() - t0, time.process_time() - c0, int(episodes), cached=False)
                try:
                    _save(path, policy, info)
                except OSError:
                    pass  # an unwritable cache costs a retraining in the next process, nothing else
                hit = (policy, info)
    _MEMORY[key] = (hit[0], TrainingInfo(hit[1].wall_s, hit[1].cpu_s, hit[1].episodes, cached=False))
    return hit
