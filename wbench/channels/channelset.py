"""Seeded, fingerprinted channel sets, and their exchange as ``.npz`` files.

Realisation *i* of a generated set is ``scenario.draw(params, rng_i)`` with ``rng_i`` a NumPy generator
seeded by ``SeedSequence(seed, spawn_key=(crc32(scenario), i))``: a pure function of
(scenario, params, seed, generator version, i), whatever the number of realisations drawn or the worker
that draws it. Every realisation has a fingerprint, a hash of its arrays and the generator version, that
is stored with each result so that results computed on different channels are never mixed.

A ``.npz`` file holds the arrays stacked on a leading realisation axis plus a JSON ``__meta__`` entry;
channels made elsewhere (another simulator, MATLAB through ``scipy.io``) can be benchmarked by writing
the same layout.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..params import ParamError
from ..scenario import Channel, Scenario

META_KEY = "__meta__"


def realisation_rng(seed: int, scenario: str, index: int) -> np.random.Generator:
    """The generator for realisation ``index``: independent of how many are drawn, and by whom."""
    ss = np.random.SeedSequence(entropy=int(seed), spawn_key=(zlib.crc32(scenario.encode()), int(index)))
    return np.random.default_rng(ss)


def fingerprint(channel: Mapping[str, np.ndarray], version: str = "") -> str:
    """A short hash of a realisation's arrays (names, dtypes, shapes and bytes) and generator version."""
    h = hashlib.sha256(version.encode())
    for key in sorted(channel):
        arr = np.ascontiguousarray(channel[key])
        h.update(f"{key}:{arr.dtype.str}:{arr.shape};".encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


def set_fingerprint(fingerprints: list[str]) -> str:
    """One hash for a list of realisation fingerprints (in index order)."""
    return hashlib.sha256(",".join(fingerprints).encode()).hexdigest()[:16]


def read_npz_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a ``.npz`` file (``__meta__`` left out), or a one-line :class:`ParamError` saying why not.

    Whatever the bytes, the only exception is ``ParamError``: a file that is not a zip archive, a truncated
    or corrupted archive (bad CRC, bad member headers, short data), members that are not ``.npy`` arrays or
    hold pickled objects: reading such a file is a bad input, never a traceback.
    """
    path = Path(path)
    if not path.is_file():
        raise ParamError(f"channel file {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise ParamError(f"cannot read channel file {path}: not a .npz file (no zip archive found)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files if k != META_KEY}
    except Exception as exc:  # any failure to parse the file's bytes is a bad file
        msg = " ".join(str(exc).split())
        if "pickle" in msg:
            msg = "it holds object arrays (pickled data), which are never loaded"
        why = f"{type(exc).__name__}: {msg[:200]}" if msg else type(exc).__name__
        raise ParamError(f"cannot read channel file {path}: corrupted or not a .npz file ({why})") from None


class ChannelSource:
    """Where realisations come from; ``key`` goes into the identity of every run on them."""

    key: str

    def get(self, index: int) -> tuple[Channel, str]:
        """Realisation ``index`` and its fingerprint."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class GeneratedChannels(ChannelSource):
    """Channels drawn by the scenario's own seeded generator (unbounded length)."""

    def __init__(self, scenario: Scenario, params: Mapping[str, Any], seed: int) -> None:
        self.scenario = scenario
        self.params = dict(params)
        self.seed = int(seed)
        self.key = f"gen:{seed}"

    def get(self, index: int) -> tuple[Channel, str]:
        ch = self.scenario.draw(self.params, realisation_rng(self.seed, self.scenario.name, index))
        return ch, fingerprint(ch, f"{self.scenario.name}/{self.scenario.generator_version}")

    def __len__(self) -> int:
        return 2**31 - 1


class FileChannels(ChannelSource):
    """Channels read from a ``.npz`` file; shapes and dtypes are checked against the scenario's draw."""

    def __init__(self, path: str | Path, scenario: Scenario, params: Mapping[str, Any]) -> None:
        path = Path(path)
        arrays = read_npz_arrays(path)
        expected = scenario.draw(params, np.random.default_rng(0))
        missing = sorted(set(expected) - set(arrays))
        if missing:
            raise ParamError(f"channel file {path} lacks arrays {', '.join(missing)} for scenario {scenario.name}")
        counts = {k: arrays[k].shape[0] if arrays[k].ndim else -1 for k in expected}
        if len(set(counts.values())) != 1 or -1 in counts.values():
            raise ParamError(f"channel file {path}: arrays disagree on the number of realisations {counts}")
        for k, ref in expected.items():
            got = arrays[k]
            if got.shape[1:] != np.shape(ref):
                raise ParamError(
                    f"channel file {path}: array {k!r} has realisations of shape {got.shape[1:]}, "
                    f"expected {np.shape(ref)} for the given parameters"
                )
            if np.iscomplexobj(ref) != np.iscomplexobj(got) or not np.issubdtype(got.dtype, np.number):
                raise ParamError(f"channel file {path}: array {k!r} has dtype {got.dtype}, expected {ref.dtype}")
            if not np.all(np.isfinite(got)):
                raise ParamError(f"channel file {path}: array {k!r} holds NaN or infinite values")
        self.arrays = {k: arrays[k].astype(np.asarray(expected[k]).dtype) for k in expected}
        self.n = next(iter(counts.values()))
        digest = hashlib.sha256()
        for k in sorted(self.arrays):
            digest.update(k.encode() + np.ascontiguousarray(self.arrays[k]).tobytes())
        self.key = f"npz:{digest.hexdigest()[:16]}"
        self.version = f"{scenario.name}/{scenario.generator_version}"

    def get(self, index: int) -> tuple[Channel, str]:
        if not 0 <= index < self.n:
            raise ParamError(f"channel file has {self.n} realisations; index {index} is out of range")
        ch = {k: v[index] for k, v in self.arrays.items()}
        return ch, fingerprint(ch, self.version)

    def __len__(self) -> int:
        return self.n


def export_npz(
    path: str | Path, scenario: Scenario, params: Mapping[str, Any], seed: int, n: int
) -> list[str]:
    """Write realisations ``0..n-1`` of a generated set to ``path``; returns their fingerprints."""
    src = GeneratedChannels(scenario, params, seed)
    draws = [src.get(i) for i in range(n)]
    stacked = {k: np.stack([d[0][k] for d in draws]) for k in draws[0][0]}
    meta = {
        "scenario": scenario.name,
        "params": dict(params),
        "seed": seed,
        "generator_version": scenario.generator_version,
        "fingerprints": [d[1] for d in draws],
    }
    np.savez(path, **stacked, **{META_KEY: np.array(json.dumps(meta))})
    return meta["fingerprints"]
