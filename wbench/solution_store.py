"""Stored solutions: the variables a run returned, kept with its row, and their export for use without wbench.

The harness keeps the variables it scored (after the scenario's dtype and shape check) for every run with
status ``ok`` or ``infeasible``, so a result can be re-scored, inspected or used as a warm start later.

In the store, column ``solution`` holds ``header + b"\0" + data``: ``header`` is the JSON list
``[[name, dtype, shape], ...]`` and ``data`` the arrays' C-order bytes one after another (no pickle;
:func:`decode_solution` reads it with ``np.frombuffer``). From 1 KiB on, the value is stored as a zlib
stream of those bytes instead when that is smaller (a stored value starting with ``[`` is uncompressed).
Small values are not compressed because deflate gains almost nothing on floating-point data (291 against
300 bytes for a random 4 x 4 complex precoder) while setting it up costs about 15 µs per run, which is
5-8% of the harness overhead per run of a cheap solver (about 0.2 ms of CPU time). A solution whose stored
size exceeds the cap (``--solution-cap-mb``, default 1 MiB) is not kept; the row's ``solution_note``
says so, as it does for ``--no-solutions``.

The export (``wbench solutions export``) is a plain ``.npz`` readable with NumPy alone
(``np.load(path, allow_pickle=False)``): a 0-d string array ``meta`` holding JSON
``{"format": "wbench-solutions", "format_version": 1, "runs": [...]}``, where run ``j`` carries its
run key, configuration (scenario, parameters, seed, channel source, realisation index), channel
fingerprint, solver, label, options, status and utility, and one array ``r{j}.{name}`` per variable.
"""

from __future__ import annotations

import json
import os
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .params import ParamError

#: Default cap on one run's stored solution (bytes, as stored).
SOLUTION_CAP_BYTES = 1 << 20
#: Stored values from this size (bytes) on are compressed when that makes them smaller.
COMPRESS_FROM = 1024
EXPORT_FORMAT = "wbench-solutions"
EXPORT_VERSION = 1
#: Stored columns copied into each exported run's metadata (JSON columns decoded).
EXPORT_FIELDS = (
    "run_key", "config_key", "scenario", "params", "seed", "channels", "instance", "fingerprint", "solver",
    "solver_version", "label", "options", "budget", "budget_seconds", "status", "utility", "feasible",
    "max_violation", "wbench_version",
)
_JSON_FIELDS = ("params", "options")
NOTE_OFF = "not kept: --no-solutions"


def encode_solution(x: Mapping[str, Any]) -> bytes:
    """The variables ``x`` (name -> numeric array) as one byte string (compressed from 1 KiB on)."""
    head, parts = [], []
    for name, value in x.items():
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise ValueError(f"variable {name} has dtype object")
        head.append((str(name), arr.dtype.str, arr.shape))
        parts.append(arr.tobytes(order="C"))
    raw = _header(tuple(head)) + b"".join(parts)
    if len(raw) >= COMPRESS_FROM:
        packed = zlib.compress(raw)
        if len(packed) < len(raw):
            return packed
    return raw


@lru_cache(maxsize=256)
def _header(head: tuple[tuple[str, str, tuple[int, ...]], ...]) -> bytes:
    """The JSON header and separator (cached: a solver returns the same names, dtypes and shapes each run)."""
    return json.dumps([[n, d, list(s)] for n, d, s in head]).encode() + b"\0"


def decode_solution(blob: bytes) -> dict[str, np.ndarray]:
    """The inverse of :func:`encode_solution` (``ValueError`` on a damaged value)."""
    try:
        raw = bytes(blob) if bytes(blob[:1]) == b"[" else zlib.decompress(blob)
        head, sep, data = raw.partition(b"\0")
        if not sep:
            raise ValueError("no header")
        out: dict[str, np.ndarray] = {}
        offset = 0
        for name, dtype, shape in json.loads(head):
            dt = np.dtype(dtype)
            if dt.hasobject:
                raise ValueError("object dtype")
            count = int(np.prod(shape, dtype=np.int64))
            out[name] = np.frombuffer(data, dt, count, offset).reshape(tuple(shape)).copy()
            offset += count * dt.itemsize
        if offset != len(data):
            raise ValueError(f"{len(data) - offset} trailing bytes")
        return out
    except (zlib.error, ValueError, TypeError) as exc:
        raise ValueError(f"damaged stored solution ({exc})") from None


def keep_solution(row: dict[str, Any], cap_bytes: int | None) -> None:
    """Replace the scored variables ``row["solution"]`` (a dict, present for ``ok``/``infeasible`` runs) by
    their encoding, or by ``None`` with the reason in ``row["solution_note"]`` (``cap_bytes=None``: off)."""
    x = row.pop("solution", None)
    row["solution"], row["solution_note"] = None, None
    if x is None:
        return
    if cap_bytes is None:
        row["solution_note"] = NOTE_OFF
        return
    try:
        blob = encode_solution(x)
    except ValueError as exc:
        row["solution_note"] = f"not kept: {exc}"
        return
    if len(blob) > cap_bytes:
        row["solution_note"] = (f"not kept: {len(blob) / 2**20:.3g} MiB stored exceeds the cap of "
                                f"{cap_bytes / 2**20:.3g} MiB (--solution-cap-mb)")
        return
    row["solution"] = blob


def over_cap(rows: Sequence[Mapping[str, Any]]) -> int:
    """How many of ``rows`` had their solution dropped for its size."""
    return sum(1 for r in rows if "exceeds the cap" in (r.get("solution_note") or ""))


def run_meta(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row's identity and score as plain JSON values (the metadata of one exported run)."""
    out = {}
    for k in EXPORT_FIELDS:
        v = row.get(k)
        if k in _JSON_FIELDS and isinstance(v, str):
            v = json.loads(v)
        elif k == "feasible" and v is not None:
            v = bool(v)
        out[k] = v
    return out


def write_export(path: str | Path, rows: Sequence[Mapping[str, Any]], source: str = "") -> None:
    """Write runs with decoded variables (``row["x"]``: name -> array) to ``path`` as a plain ``.npz``.

    The file is written beside ``path`` and renamed into place, so a failed export leaves no partial file.
    """
    path = Path(path)
    if path.is_dir():
        raise ParamError(f"--out {path} is a directory")
    if not path.parent.is_dir():
        raise ParamError(f"cannot write {path}: directory {path.parent} does not exist")
    arrays: dict[str, np.ndarray] = {}
    runs = []
    for j, r in enumerate(rows):
        meta = run_meta(r)
        meta["variables"] = {n: {"array": f"r{j}.{n}", "dtype": v.dtype.str, "shape": list(v.shape)}
                             for n, v in r["x"].items()}
        runs.append(meta)
        arrays.update({f"r{j}.{n}": v for n, v in r["x"].items()})
    meta_all = {"format": EXPORT_FORMAT, "format_version": EXPORT_VERSION, "source": source, "runs": runs}
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, meta=np.array(json.dumps(meta_all)), **arrays)
        os.replace(tmp, path)
    except OSError as exc:
        raise ParamError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
