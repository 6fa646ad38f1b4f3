"""SQLite results store: one row per run, written only in whole committed transactions.

The database runs in WAL mode; each batch of rows is inserted in one transaction, so an interrupted
benchmark (Ctrl-C, kill) leaves every committed row intact and no half-written one. A run's identity
(``run_key``) hashes scenario, parameters, channel source, realisation index, solver, solver version,
resolved options and time budget; rows are inserted with ``INSERT OR IGNORE`` so a run is never written
twice, and re-running a command only does the runs whose keys are missing.

Schema evolution: columns are only ever added, nullable. Opening a database made by an older wbench adds
every :data:`COLUMNS` entry it lacks (``ALTER TABLE ... ADD COLUMN``, values ``NULL``) and keeps its rows;
an older wbench still reads a newer database of the same schema version (it names the columns it selects).
A database whose ``schema_version`` is newer than this wbench's is refused with one line.

The ``solution`` column holds a run's returned variables (see :mod:`wbench.solution_store`); it is a BLOB,
so :meth:`Store.rows` leaves it out unless asked (``solutions=True``).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Sequence

from .params import ParamError

SCHEMA_VERSION = 1
APP = "wbench"

COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_key", "TEXT PRIMARY KEY"),
    ("config_key", "TEXT NOT NULL"),
    ("scenario", "TEXT NOT NULL"),
    ("params", "TEXT NOT NULL"),
    ("channels", "TEXT NOT NULL"),
    ("seed", "INTEGER"),
    ("instance", "INTEGER NOT NULL"),
    ("fingerprint", "TEXT NOT NULL"),
    ("solver", "TEXT NOT NULL"),
    ("solver_version", "TEXT NOT NULL"),
    ("options", "TEXT NOT NULL"),
    ("label", "TEXT NOT NULL"),
    ("tags", "TEXT NOT NULL"),
    ("budget", "TEXT"),
    ("budget_seconds", "REAL"),
    ("utility", "REAL"),
    # the solver's own objective at its point, where the scenario scores on data the solver did not see
    ("in_sample", "REAL"),
    ("feasible", "INTEGER"),
    ("violations", "TEXT"),
    ("max_violation", "REAL"),
    ("wall_s", "REAL"),
    ("cpu_s", "REAL"),
    ("iterations", "INTEGER"),
    #: 1 when the solver reported an early stop with budget left (``Solution.info["stalled"]``), 0 when it
    #: reported none, NULL when it does not say.
    ("stalled", "INTEGER"),
    ("status", "TEXT NOT NULL"),
    ("error", "TEXT"),
    ("trace", "TEXT"),
    ("batch", "INTEGER"),
    ("threads", "INTEGER"),
    ("wbench_version", "TEXT"),
    ("created", "REAL"),
    # the scored variables of an ``ok``/``infeasible`` run (see wbench.solution_store) ...
    ("solution", "BLOB"),
    # ... or why they were not kept (over the size cap, --no-solutions)
    ("solution_note", "TEXT"),
    # the scoring problem's further numbers at the returned point (JSON name -> number), e.g. a held-out QoS
    # shortfall (Problem.extra_metrics)
    ("metrics", "TEXT"),
)
COLUMN_NAMES = tuple(c for c, _ in COLUMNS)
#: Columns too large to read with every leaderboard query: :meth:`Store.rows` selects them only when asked.
BLOB_COLUMNS = ("solution",)
ROW_COLUMNS = tuple(c for c in COLUMN_NAMES if c not in BLOB_COLUMNS)


class StoreError(ParamError):
    """A results file that is not ours, from a newer schema, or channels that changed under a run."""


class Store:
    """The results database at ``path`` (created on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and self.path.is_dir():
            raise StoreError(f"{self.path} is a directory, not a results database")
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=60)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self._init_schema()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a wbench results database ({exc})") from None

    def _init_schema(self) -> None:
        c = self.conn
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "meta" not in tables:
            raise StoreError(f"{self.path} is an SQLite database but not a wbench results database")
        with c:
            c.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            meta = dict(c.execute("SELECT key, value FROM meta").fetchall())
            if meta and meta.get("app") != APP:
                raise StoreError(f"{self.path} is not a wbench results database")
            version = int(meta.get("schema_version", SCHEMA_VERSION))
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {version}, newer than this wbench ({SCHEMA_VERSION}); "
                    "upgrade wbench"
                )
            c.execute("INSERT OR IGNORE INTO meta VALUES ('app', ?)", (APP,))
            c.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            cols = ", ".join(f"{n} {t}" for n, t in COLUMNS)
            c.execute(f"CREATE TABLE IF NOT EXISTS runs ({cols})")
            self._add_missing_columns()
            c.execute("CREATE INDEX IF NOT EXISTS runs_config ON runs (config_key, instance)")

    def _add_missing_columns(self) -> None:
        """A database from an older wbench: add the columns it lacks, nullable (its rows read as NULL there)."""
        have = {r[1] for r in self.conn.execute("PRAGMA table_info(runs)")}
        for name, decl in COLUMNS:
            if name in have:
                continue
            try:  # only the type: NOT NULL / PRIMARY KEY cannot be added to a table that has rows
                self.conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {decl.split()[0]}")
            except sqlite3.OperationalError as exc:
                if "duplicate column" in str(exc):  # another process added it first
                    continue
                if "readonly" in str(exc) or "read-only" in str(exc):
                    raise StoreError(
                        f"{self.path} is from an older wbench and lacks column {name}, but it cannot be "
                        f"written to add it ({exc})"
                    ) from None
                raise

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------------
    def write(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert rows in one transaction; rows whose key exists already are ignored. Returns #inserted."""
        if not rows:
            return 0
        names = ", ".join(COLUMN_NAMES)
        marks = ", ".join("?" for _ in COLUMN_NAMES)
        values = [tuple(_encode(r.get(n)) for n in COLUMN_NAMES) for r in rows]
        with self.conn:
            before = self.conn.total_changes
            self.conn.executemany(f"INSERT OR IGNORE INTO runs ({names}) VALUES ({marks})", values)
            return self.conn.total_changes - before

    def delete(self, run_keys: Iterable[str]) -> int:
        keys = list(run_keys)
        with self.conn:
            before = self.conn.total_changes
            for chunk in _chunks(keys, 500):
                self.conn.execute(
                    f"DELETE FROM runs WHERE run_key IN ({','.join('?' * len(chunk))})", chunk
                )
            return self.conn.total_changes - before

    # -- reading ---------------------------------------------------------------------------------
    def existing_keys(self, run_keys: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(list(run_keys), 500):
            q = f"SELECT run_key FROM runs WHERE run_key IN ({','.join('?' * len(chunk))})"
            found.update(r[0] for r in self.conn.execute(q, chunk))
        return found

    def fingerprints(self, config_key: str) -> dict[int, str]:
        """Realisation index -> fingerprint recorded for a configuration (one per index)."""
        q = "SELECT instance, fingerprint FROM runs WHERE config_key = ? GROUP BY instance, fingerprint"
        out: dict[int, str] = {}
        for inst, fp in self.conn.execute(q, (config_key,)):
            if inst in out and out[inst] != fp:
                raise StoreError(
                    f"{self.path}: realisation {inst} has two fingerprints; results from different "
                    "channels are mixed (start over with --fresh)"
                )
            out[inst] = fp
        return out

    def rows(self, scenario: str | None = None, config_keys: Sequence[str] | None = None,
             solutions: bool = False) -> list[dict]:
        """Stored runs in insertion order, without the ``solution`` BLOB unless ``solutions``."""
        names = COLUMN_NAMES if solutions else ROW_COLUMNS
        q = f"SELECT {', '.join(names)} FROM runs"
        where, args = [], []
        if scenario:
            where.append("scenario = ?")
            args.append(scenario)
        if config_keys is not None:
            where.append(f"config_key IN ({','.join('?' * len(config_keys))})")
            args.extend(config_keys)
        if where:
            q += " WHERE " + " AND ".join(where)
        q += " ORDER BY rowid"
        return [dict(zip(names, r)) for r in self.conn.execute(q, args)]

    def solutions(self, run_keys: Iterable[str]) -> dict[str, bytes]:
        """Run key -> stored solution (see :mod:`wbench.solution_store`), for the keys that have one."""
        out: dict[str, bytes] = {}
        for chunk in _chunks(list(run_keys), 500):
            q = (f"SELECT run_key, solution FROM runs WHERE solution IS NOT NULL "
                 f"AND run_key IN ({','.join('?' * len(chunk))})")
            out.update(self.conn.execute(q, chunk))
        return out


def _encode(v: Any) -> Any:
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v)
    if isinstance(v, bool):
        return int(v)
    return v


def _chunks(seq: list, n: int) -> Iterable[list]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]
