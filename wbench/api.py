"""The Python API, for notebooks and scripts: the command line's ``compare``, ``leaderboard`` and
``solutions export`` as functions returning pandas DataFrames.

    import wbench
    runs = wbench.compare("miso", "wmmse,mrt", sweep={"snr_db": [0, 10, 20]}, instances=20, db="a.db")
    table = wbench.leaderboard("a.db")            # the numbers of 'wbench leaderboard --db a.db'
    sols = wbench.solutions("a.db", solvers="wmmse")   # runs with their variables: sols.x[0]["V"]

``wbench`` (``wbench/cli.py``) calls these same functions, so a notebook and the command line plan, run,
store and rank identically. Bad arguments raise :class:`~wbench.params.ParamError` (or its subclass
:class:`~wbench.store.StoreError`) with a one-line message, the line the command prints after
``wbench: error:``.
"""

from __future__ import annotations

import contextlib
import math
import operator
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterable, Mapping, Sequence

from .params import ParamError

if TYPE_CHECKING:  # pandas is imported when a function runs, so that ``import wbench`` stays light
    import pandas as pd

DEFAULT_DB = "wbench.db"
#: Default cap on one run's stored solution, in MiB (``--solution-cap-mb``).
SOLUTION_CAP_MB = 1.0

Echo = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _quiet(line: str) -> None:
    pass


# -- arguments -------------------------------------------------------------------------------------
def _key_value(text: str, flag: str) -> tuple[str, str]:
    key, eq, value = str(text).partition("=")
    if not eq or not key.strip():
        raise ParamError(f"{flag} expects KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def parse_sets(items: Mapping[str, Any] | Sequence[str] | None) -> dict[str, Any]:
    """``--set``: ``["Nt=4", "K=2"]`` (the command line's form) or a mapping ``{"Nt": 4, "K": 2}``."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return {str(k).strip(): v for k, v in items.items()}
    if isinstance(items, str):
        items = [items]
    out: dict[str, Any] = {}
    for item in items:
        k, v = _key_value(item, "--set")
        if k in out:
            raise ParamError(f"--set {k} given twice")
        out[k] = v
    return out


def parse_sweeps(items: Mapping[str, Any] | Sequence[str] | None) -> dict[str, list[Any]]:
    """``--sweep``: ``["snr_db=0,10,20"]`` or a mapping ``{"snr_db": [0, 10, 20]}`` (or ``"0,10,20"``)."""
    if items is None:
        return {}
    if isinstance(items, str):
        items = [items]
    pairs: Iterable[tuple[str, Any]]
    pairs = items.items() if isinstance(items, Mapping) else (_key_value(i, "--sweep") for i in items)
    out: dict[str, list[Any]] = {}
    for k, v in pairs:
        k = str(k).strip()
        if isinstance(v, str):
            values: list[Any] = [x.strip() for x in v.split(",")]
            if not v or any(not x for x in values):
                raise ParamError(f"--sweep {k}: expected comma-separated values, got {v!r}")
        elif isinstance(v, Iterable):
            values = list(v)
            if not values:
                raise ParamError(f"--sweep {k}: expected at least one value")
        else:
            raise ParamError(f"--sweep {k}: expected a list of values, got {v!r}")
        if k in out:
            raise ParamError(f"--sweep {k} given twice")
        out[k] = values
    return out


def parse_jobs(text: str | int | None) -> int:
    """``auto`` -> the CPU cores this process may use (each run is pinned to ``--threads`` threads);
    ``None`` -> ``$WBENCH_JOBS`` or ``auto``."""
    if text is None:
        text = os.environ.get("WBENCH_JOBS", "auto")
    if str(text).strip().lower() == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return max(1, os.cpu_count() or 1)
    try:
        if isinstance(text, (bool, float)):
            raise ValueError(text)
        jobs = int(text)
    except (TypeError, ValueError):
        raise ParamError(f"--jobs must be a positive integer or auto, got {text!r}") from None
    if jobs < 1:
        raise ParamError(f"--jobs must be >= 1, got {jobs}")
    return jobs


def _positive(value: Any, flag: str, allow_none: bool = True) -> float | None:
    if value is None and allow_none:
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        x = float(value)
    except (TypeError, ValueError):
        raise ParamError(f"{flag} must be a number, got {value!r}") from None
    if not (x > 0 and math.isfinite(x)):
        raise ParamError(f"{flag} must be > 0, got {value}")
    return x


def _int(value: Any, flag: str) -> int:
    if isinstance(value, bool):
        raise ParamError(f"{flag} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ParamError(f"{flag} must be an integer, got {value!r}") from None


# -- compare ---------------------------------------------------------------------------------------
def compare_rows(
    scenario: str,
    solvers: str | Sequence[str],
    set: Mapping[str, Any] | Sequence[str] | None = None,  # noqa: A002 - the command line's name
    sweep: Mapping[str, Any] | Sequence[str] | None = None,
    instances: int | None = None,
    db: str | Path = DEFAULT_DB,
    seed: int = 0,
    channels: str | Path | None = None,
    jobs: int | str | None = None,
    threads: int = 1,
    budget_seconds: float | None = None,
    timeout: float | None = None,
    max_memory: float | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    device: str = "cpu",
    fresh: bool = False,
    solutions: bool = True,
    solution_cap_mb: float = SOLUTION_CAP_MB,
    echo: Echo = _stderr,
    progress: Callable[[int], ContextManager[Callable[[int], None] | None]] | None = None,
) -> list[dict[str, Any]]:
    """Plan and run a comparison; the stored rows of its runs (without solutions). ``echo`` gets the notes
    and the summary line; ``progress(todo)`` is a context manager around the execution that gives the
    callback told of each committed batch of rows (the command line's progress bar)."""
    from . import engine
    from .registry import get_registry
    from .selection import select
    from .solution_store import over_cap
    from .store import Store

    n_jobs = parse_jobs(jobs)
    threads = _int(threads, "--threads")
    if threads < 1:
        raise ParamError(f"--threads must be >= 1, got {threads}")
    if budget_seconds is not None and not (isinstance(budget_seconds, (int, float)) and budget_seconds > 0):
        raise ParamError(f"--budget-seconds must be > 0, got {budget_seconds}")
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ParamError(f"--timeout must be > 0, got {timeout}")
    if max_memory is not None and not (isinstance(max_memory, (int, float)) and max_memory > 0):
        raise ParamError(f"--max-memory must be > 0, got {max_memory}")
    cap_mb = _positive(solution_cap_mb, "--solution-cap-mb", allow_none=False)
    if executor not in engine.EXECUTORS:
        raise ParamError(f"unknown executor {executor!r}; valid: {', '.join(engine.EXECUTORS)}")
    if scheduler and executor != "dask":
        raise ParamError("--scheduler needs --executor dask")
    seed = _int(seed, "--seed")
    if timeout is None and budget_seconds is not None:
        timeout = budget_seconds * (1 + engine.TIMEOUT_RTOL) + 1.0
    if not isinstance(solvers, str):
        solvers = ",".join(solvers)
    reg = get_registry()
    sc = reg.scenario(scenario)
    n = _int(instances, "--instances") if instances is not None else sc.default_instances
    if n < 1:
        raise ParamError(f"--instances must be >= 1, got {n}")
    if channels and not Path(channels).is_file():
        raise ParamError(f"channel file {channels} does not exist")
    specs, notes = select(reg, solvers, sc.name)
    if not specs:
        raise ParamError(f"no solver selected for scenario {sc.name} by {solvers!r}")
    configs = engine.build_configs(sc.name, parse_sets(set), parse_sweeps(sweep), seed,
                                   str(channels) if channels else None)
    cap_bytes = int(cap_mb * 2**20) if solutions else None
    with Store(db) as store:
        mem = None if max_memory is None else max_memory * 2.0**30
        plan = engine.plan(store, configs, specs, n, budget_seconds, fresh, n_jobs, threads, device, timeout,
                           mem, cap_bytes)
        for note in notes + plan.notes:
            echo(f"wbench: note: {note}")
        todo = plan.total - plan.done
        t0 = time.perf_counter()
        with progress(todo) if progress else contextlib.nullcontext() as on_rows:
            engine.execute(plan, store, n_jobs, on_rows=on_rows, executor=executor, scheduler=scheduler)
        elapsed = time.perf_counter() - t0
        keys = {k for k in plan.run_keys.values()}
        rows = [r for r in store.rows(sc.name, [c.key for c in configs]) if r["run_key"] in keys]
    dropped = over_cap(rows)
    if dropped:
        echo(f"wbench: note: {dropped} run(s) returned variables over --solution-cap-mb {cap_mb:g}: "
             "not stored (the reason is in their solution_note column)")
    echo(f"wbench: {todo} runs done in {elapsed:.1f} s, {plan.done} reused from {db}")
    return rows


def compare(
    scenario: str,
    solvers: str | Sequence[str],
    set: Mapping[str, Any] | Sequence[str] | None = None,  # noqa: A002 - the command line's name
    sweep: Mapping[str, Any] | Sequence[str] | None = None,
    instances: int | None = None,
    db: str | Path = DEFAULT_DB,
    seed: int = 0,
    channels: str | Path | None = None,
    jobs: int | str | None = None,
    threads: int = 1,
    budget_seconds: float | None = None,
    timeout: float | None = None,
    max_memory: float | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    device: str = "cpu",
    fresh: bool = False,
    solutions: bool = True,
    solution_cap_mb: float = SOLUTION_CAP_MB,
    quiet: bool = False,
) -> "pd.DataFrame":
    """``wbench compare`` from Python: run ``solvers`` on ``scenario`` and return the runs as a DataFrame.

    The arguments are the command line's (``wbench compare --help``): ``set={"Nt": 8}`` or
    ``set=["Nt=8"]``; ``sweep={"snr_db": [0, 10]}`` or ``sweep=["snr_db=0,10"]``; ``solvers`` a selection
    string (``"wmmse[max_iter=10],mrt,bound"``) or a list of items; ``jobs=None`` is ``$WBENCH_JOBS`` or
    ``auto``; ``max_memory`` in GiB; ``solutions=False`` is ``--no-solutions``. Runs already in ``db`` are
    reused (resume). One row per run of this comparison with the stored columns (see :func:`runs`); notes
    and the summary go to stderr unless ``quiet``.
    """
    rows = compare_rows(scenario, solvers, set, sweep, instances, db, seed, channels, jobs, threads,
                        budget_seconds, timeout, max_memory, executor, scheduler, device, fresh, solutions,
                        solution_cap_mb, _quiet if quiet else _stderr)
    return _frame(rows)


# -- reading the store -----------------------------------------------------------------------------
def _frame(rows: Sequence[Mapping[str, Any]], extra: Sequence[str] = ()) -> "pd.DataFrame":
    import pandas as pd

    from .store import ROW_COLUMNS

    return pd.DataFrame(list(rows), columns=list(ROW_COLUMNS) + list(extra))


def _open_existing(db: str | Path):
    from .store import Store, StoreError

    if not Path(db).is_file():
        raise StoreError(f"no results database at {db} (run 'wbench compare' first, or pass --db)")
    return Store(db)


def stored_rows(db: str | Path, scenario: str | None = None, solvers: str | Sequence[str] | None = None,
                solutions: bool = False) -> list[dict[str, Any]]:
    """The stored rows of ``db`` (of ``scenario``; of the runs ``solvers`` selects, as ``compare`` would
    resolve that selection), refused with one line when none match."""
    from .store import StoreError

    with _open_existing(db) as store:
        rows = store.rows(scenario)
        if not rows:
            held = [r[0] for r in store.conn.execute("SELECT DISTINCT scenario FROM runs ORDER BY scenario")]
            if scenario:
                raise StoreError(f"{db} holds no results for scenario {scenario}"
                                 + (f" (it holds: {', '.join(held)})" if held else ""))
            raise StoreError(f"{db} holds no results")
        if solvers is not None:
            rows = _select_rows(rows, solvers, db)
        if solutions:
            blobs = store.solutions(r["run_key"] for r in rows)
            for r in rows:
                r["solution"] = blobs.get(r["run_key"])
    return rows


def _select_rows(rows: list[dict[str, Any]], solvers: str | Sequence[str], db: str | Path) -> list[dict]:
    """The rows of the runs a solver selection resolves to in each stored scenario (names and tags; a
    name without options means its default options, as in ``compare``)."""
    from .registry import get_registry
    from .selection import select
    from .store import StoreError

    text = solvers if isinstance(solvers, str) else ",".join(solvers)
    reg = get_registry()
    wanted: set[tuple[str, str, str]] = set()
    errors: list[ParamError] = []
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    for sc in scenarios:
        try:
            specs, _ = select(reg, text, sc)
        except ParamError as exc:
            errors.append(exc)
            continue
        wanted.update((sc, s.name, s.options_json) for s in specs)
    if len(errors) == len(scenarios):
        raise errors[0]
    out = [r for r in rows if (r["scenario"], r["solver"], r["options"]) in wanted]
    if not out:
        held = sorted({r["label"] for r in rows})
        raise StoreError(f"{db} holds no runs of --solvers {text!r} (it holds: {', '.join(held)})")
    return out


def runs(db: str | Path = DEFAULT_DB, scenario: str | None = None,
         solvers: str | Sequence[str] | None = None) -> "pd.DataFrame":
    """Every stored run of ``db`` (optionally of one scenario, or of a solver selection) as a DataFrame: one
    row per run, the store's columns (``params``, ``options``, ``violations``, ``trace`` as JSON text), in
    the order they were stored; the ``solution`` BLOB is left out (see :func:`solutions`)."""
    return _frame(stored_rows(db, scenario, solvers))


def leaderboard_tables(source: "str | Path | pd.DataFrame", scenario: str | None = None
                       ) -> list["pd.DataFrame"]:
    """One leaderboard per scenario, in name order (what ``wbench leaderboard`` prints one after another)."""
    import pandas as pd

    from .ranking import leaderboard as _leaderboard
    from .store import StoreError

    if isinstance(source, pd.DataFrame):
        rows = _records(source if scenario is None else source[source["scenario"] == scenario])
        if not rows:
            raise StoreError("no runs" + (f" of scenario {scenario}" if scenario else ""))
    else:
        rows = stored_rows(source, scenario)
    return [_leaderboard([r for r in rows if r["scenario"] == s]) for s in sorted({r["scenario"] for r in rows})]


def leaderboard(db: "str | Path | pd.DataFrame" = DEFAULT_DB, scenario: str | None = None) -> "pd.DataFrame":
    """The leaderboard of a results database (or of a runs DataFrame from :func:`compare`/:func:`runs`): one
    row per configuration and solver with the same numbers as ``wbench leaderboard`` (its CSV columns);
    several scenarios are stacked, each with its own parameter columns."""
    import pandas as pd

    tables = leaderboard_tables(db, scenario)
    return tables[0] if len(tables) == 1 else pd.concat(tables, ignore_index=True, sort=False)


def _records(df: "pd.DataFrame") -> list[dict[str, Any]]:
    """DataFrame rows back to store rows (missing values as ``None``, integers as ``int``)."""
    import pandas as pd

    out = []
    for rec in df.to_dict("records"):
        out.append({k: (None if not isinstance(v, (list, dict, bytes)) and pd.isna(v) else v)
                    for k, v in rec.items()})
    return out


def solution_rows(db: str | Path, scenario: str | None = None, solvers: str | Sequence[str] | None = None
                  ) -> tuple[list[dict[str, Any]], int]:
    """(selected runs that have a stored solution, with ``x``: name -> array; how many selected runs have
    none: not ``ok``/``infeasible``, over the size cap, or stored with ``--no-solutions``)."""
    from .solution_store import decode_solution
    from .store import StoreError

    rows = stored_rows(db, scenario, solvers, solutions=True)
    out = []
    for r in rows:
        blob = r.pop("solution")
        if blob is None:
            continue
        try:
            r["x"] = decode_solution(blob)
        except ValueError as exc:
            raise StoreError(f"{db}: run {r['run_key']}: {exc}") from None
        out.append(r)
    if not out:
        raise StoreError(f"{db} holds no stored solutions for these runs ({len(rows)} selected; solutions "
                         "are kept for ok/infeasible runs unless --no-solutions)")
    return out, len(rows) - len(out)


def solutions(db: str | Path = DEFAULT_DB, scenario: str | None = None,
              solvers: str | Sequence[str] | None = None) -> "pd.DataFrame":
    """The stored runs that kept their variables, as :func:`runs` plus a column ``x``: a dict of NumPy
    arrays (``x["V"]``) exactly as the harness scored them. Runs without a stored solution are left out."""
    rows, _ = solution_rows(db, scenario, solvers)
    return _frame(rows, extra=("x",))


def export_solutions(db: str | Path, out: str | Path, scenario: str | None = None,
                     solvers: str | Sequence[str] | None = None) -> tuple[int, int]:
    """``wbench solutions export``: write the selected stored solutions to ``out`` as a plain ``.npz`` (see
    :mod:`wbench.solution_store`); returns (runs written, selected runs without a stored solution)."""
    from .solution_store import write_export

    out_path = Path(out)
    if out_path.is_dir():
        raise ParamError(f"--out {out} is a directory")
    if not out_path.parent.is_dir():
        raise ParamError(f"cannot write {out}: directory {out_path.parent} does not exist")
    rows, missing = solution_rows(db, scenario, solvers)
    write_export(out_path, rows, source=str(db))
    return len(rows), missing
