"""Regression leaderboards: committed per-scenario leaderboards, and ``wbench check`` against them.

A leaderboard directory (``leaderboards/`` in the repository) holds ``suites.toml``, one line per
leaderboard naming the ``wbench compare`` arguments that make it::

    [suites]
    miso = "--scenario miso --solvers conventional,baseline,bound --instances 10"

    [settings]              # optional; these are the defaults
    reference = "adam"      # runtime is compared as a ratio to this solver, measured in the same run
    time_factor = 3.0       # ... and fails when the ratio grows by more than this factor (CPU time)
    min_time_s = 0.01       # solvers faster than this (median CPU time, committed) are not time-checked
    level = 0.95            # confidence level of the paired utility test
    plugins = []            # installed plugin distributions loaded for these runs (default: none)

Installed plugins are not loaded for the suites unless ``plugins`` names them: a committed leaderboard
is reproduced whatever happens to be installed on the machine that checks it.

``wbench leaderboard --update DIR`` runs every suite on a fresh database and writes, per suite, ``NAME.md``
(for people), ``NAME.csv`` (the leaderboard, for machines) and ``NAME.runs.csv`` (one row per run: what
the check pairs against). Every file starts with ``#`` lines saying how it was made: the command, the
channel seed and fingerprints, the wbench version and the versions of the libraries that shape results.

``wbench check DIR`` re-runs every suite and compares, per configuration and solver, with the committed
runs on the same channels (:func:`compare_runs`). It fails when

* the channels changed (a fingerprint differs): "channels changed, regenerate", never a silent pass;
* a committed configuration or solver is missing from the re-run;
* the mean utility dropped: the upper end of the paired ``level`` Student-t interval of
  ``u_new - u_committed`` (over channels where both runs are ``ok``) is below ``-floor``, where
  ``floor = 1e-6 (1 + |committed mean|)`` absorbs rounding across machines;
* the feasible rate (share of ``ok`` runs) dropped, or a run that was ``ok`` now has another status;
* the median CPU time of the solver call (``cpu_s``: the process's CPU time during the call, so time spent
  waiting for a core that another process holds does not count) relative to the reference solver's in the
  same configuration grew by more than ``time_factor`` (a ratio within one run, never an absolute time:
  these machines differ and are shared). A runtime failure is confirmed before it is reported: the
  solvers concerned and the reference are run once more (the suite's arguments with ``--solvers`` narrowed
  to them), and a slowdown that the re-run does not reproduce is reported as a note, not a failure.
  Committed runs made before ``cpu_s`` was recorded are compared on wall time, with a note.

Improvements (a significant utility gain, a faster ratio) and new solvers are reported, not failed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import platform
import shlex
import tomllib
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .params import ParamError

SUITES_FILE = "suites.toml"
ENV_ALLOW = "WBENCH_LOAD_PLUGINS"  # the registry's allow-list of installed plugin distributions
#: Libraries whose versions can change results; recorded in every committed file.
LIBRARIES = ("numpy", "scipy", "torch", "pymanopt", "pandas")
RUN_COLUMNS = ["config_key", "scenario", "params", "seed", "channels", "instance", "fingerprint", "label",
               "solver", "solver_version", "tags", "budget", "status", "utility", "max_violation", "wall_s",
               "cpu_s", "iterations", "error"]
#: Options of ``wbench compare`` a suite may not set: the check owns the database.
_FORBIDDEN = ("--db", "--fresh", "--format")

#: Runs ``wbench compare`` with these arguments on a fresh database and returns the stored rows.
Runner = Callable[[Sequence[str]], list[dict[str, Any]]]


@dataclass(frozen=True)
class Settings:
    reference: str = "adam"
    time_factor: float = 3.0
    min_time_s: float = 0.01
    level: float = 0.95
    plugins: tuple = ()


@dataclass(frozen=True)
class Suite:
    name: str
    arguments: tuple[str, ...]

    @property
    def command(self) -> str:
        return "wbench compare " + shlex.join(self.arguments)


@dataclass(frozen=True)
class Finding:
    """One line of the check's report; ``kind`` is ``fail``, ``improved`` or ``note``; ``rule`` names the
    rule that made it (``runtime`` for the timing rule, which the check confirms by a re-run)."""

    kind: str
    suite: str
    config: str
    solver: str
    message: str
    rule: str = ""

    def line(self) -> str:
        where = " ".join(p for p in (self.config, self.solver) if p)
        return f"{self.kind.upper():8s} {self.suite}: " + (f"{where}: " if where else "") + self.message


# -- the suites file --------------------------------------------------------------------------------
def load_suites(directory: str | Path, only: Sequence[str] | None = None) -> tuple[list[Suite], Settings]:
    """The suites and settings of ``DIR/suites.toml`` (one-line :class:`ParamError` on anything wrong)."""
    path = Path(directory) / SUITES_FILE
    if not path.is_file():
        raise ParamError(f"no {SUITES_FILE} in {directory} (it lists the leaderboards to make and check)")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ParamError(f"{path}: {exc}") from None
    raw = data.get("suites")
    if not isinstance(raw, dict) or not raw:
        raise ParamError(f"{path}: expected a [suites] table of name = \"compare arguments\"")
    suites = []
    for name, text in raw.items():
        if not isinstance(text, str) or not name.replace("-", "").replace("_", "").isalnum():
            raise ParamError(f"{path}: suite {name!r} must be a name = \"compare arguments\" line")
        args = tuple(shlex.split(text))
        bad = [a for a in args if a.split("=")[0] in _FORBIDDEN]
        if bad:
            raise ParamError(f"{path}: suite {name!r} may not set {', '.join(bad)} (the check owns the database)")
        suites.append(Suite(name, args))
    if only:
        unknown = sorted(set(only) - {s.name for s in suites})
        if unknown:
            raise ParamError(f"unknown suite(s) {', '.join(unknown)}; valid: {', '.join(s.name for s in suites)}")
        suites = [s for s in suites if s.name in only]
    extra = data.get("settings", {})
    fields = Settings.__dataclass_fields__
    unknown = sorted(set(extra) - set(fields))
    if unknown:
        raise ParamError(f"{path}: unknown setting(s) {', '.join(unknown)}; valid: {', '.join(fields)}")
    plugins = extra.get("plugins", [])
    if not (isinstance(plugins, list) and all(isinstance(p, str) for p in plugins)):
        raise ParamError(f"{path}: bad [settings]: plugins must be a list of distribution names")
    try:
        settings = Settings(**{k: type(getattr(Settings, k))(v) for k, v in extra.items()})
    except (TypeError, ValueError) as exc:
        raise ParamError(f"{path}: bad [settings]: {exc}") from None
    return suites, settings


# -- writing -----------------------------------------------------------------------------------------
def versions() -> dict[str, str]:
    """Python, wbench and :data:`LIBRARIES` versions."""
    out = {"python": platform.python_version()}
    for dist in ("wbench", *LIBRARIES):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def provenance(suite: Suite, runs: pd.DataFrame) -> list[str]:
    """How a leaderboard was made: command, seed, channel fingerprints per configuration, versions."""
    from .channels.channelset import set_fingerprint

    lines = [f"command: {suite.command}",
             f"regenerate: wbench leaderboard --update <this directory> --suite {suite.name}",
             f"made: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
             "versions: " + ", ".join(f"{k} {v}" for k, v in versions().items())]
    for key, g in runs.groupby("config_key", sort=False):
        fps = g.drop_duplicates("instance").sort_values("instance")["fingerprint"]
        lines.append(f"channels {config_name(g.iloc[0], runs)}: seed {g['seed'].iloc[0]}, "
                     f"{len(fps)} realisations, set fingerprint {set_fingerprint(list(fps))}")
    return lines


def write_suite(directory: str | Path, suite: Suite, rows: Sequence[dict[str, Any]]) -> list[Path]:
    """Write ``NAME.md``, ``NAME.csv`` and ``NAME.runs.csv`` for one suite's stored rows."""
    from .ranking import leaderboard
    from .render import to_csv, to_markdown

    runs = runs_table(rows)
    head = provenance(suite, runs)
    lb = leaderboard(rows)
    directory = Path(directory)
    md = [f"# Leaderboard `{suite.name}`", ""] + [f"- {line}" for line in head] + ["", to_markdown(lb)]
    comment = "".join(f"# {line}\n" for line in head)
    files = {directory / f"{suite.name}.md": "\n".join(md),
             directory / f"{suite.name}.csv": comment + to_csv(lb),
             directory / f"{suite.name}.runs.csv": comment + runs.to_csv(index=False)}
    for path, text in files.items():
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)  # a file is either the old one or the new one, never half-written
    return list(files)


def runs_table(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Stored rows reduced to what the check compares (errors cut to one line of 200 characters)."""
    df = pd.DataFrame(list(rows))
    for c in RUN_COLUMNS:
        if c not in df:
            df[c] = None
    df = df[RUN_COLUMNS].copy()
    df["error"] = df["error"].map(lambda e: None if e is None or e != e else str(e).splitlines()[0][:200])
    return df.sort_values(["config_key", "label", "instance"], kind="stable").reset_index(drop=True)


def read_runs(path: str | Path) -> pd.DataFrame:
    """A committed ``NAME.runs.csv`` (its leading ``#`` lines skipped)."""
    lines = Path(path).read_text().splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    body = "".join(lines[start:])
    return pd.read_csv(io.StringIO(body), dtype={"config_key": str, "fingerprint": str, "label": str})


# -- comparing --------------------------------------------------------------------------------------
def config_name(row: Any, runs: pd.DataFrame) -> str:
    """``scenario`` plus the parameters that vary between the configurations of ``runs``."""
    params = json.loads(row["params"])
    others = [json.loads(p) for p in runs["params"].unique()]
    varying = [k for k in params if any(o.get(k) != params[k] for o in others)]
    inner = " ".join(f"{k}={params[k]}" for k in varying)
    return f"{row['scenario']}[{inner}]" if inner else str(row["scenario"])


def _time_median(g: pd.DataFrame, column: str = "cpu_s") -> float:
    t = g.loc[g["status"].isin(["ok", "infeasible", "timeout"]), column].astype(float).dropna()
    return float(t.median()) if len(t) else math.nan


def _time_column(old: pd.DataFrame, new: pd.DataFrame) -> str:
    """``cpu_s`` where both runs recorded it, else ``wall_s`` (committed files made before it existed)."""
    has = [("cpu_s" in df.columns and bool(df["cpu_s"].notna().any())) for df in (old, new)]
    return "cpu_s" if all(has) else "wall_s"


def compare_runs(suite: str, old: pd.DataFrame, new: pd.DataFrame, settings: Settings) -> list[Finding]:
    """The check's findings for one suite (see the module docstring for the rules)."""
    found: list[Finding] = []
    column = _time_column(old, new)
    if column == "wall_s":
        found.append(Finding("note", suite, "", "", "no CPU times (cpu_s) in the committed runs: runtimes "
                             "compared on wall time; regenerate with wbench leaderboard --update"))
    for key, o_cfg in old.groupby("config_key", sort=False):
        cfg = config_name(o_cfg.iloc[0], old)
        n_cfg = new[new["config_key"] == key]
        if n_cfg.empty:
            found.append(Finding("fail", suite, cfg, "", "configuration not produced by the re-run (parameters or "
                                 "defaults changed?): regenerate with wbench leaderboard --update"))
            continue
        o_fp = o_cfg.drop_duplicates("instance").set_index("instance")["fingerprint"]
        n_fp = n_cfg.drop_duplicates("instance").set_index("instance")["fingerprint"]
        changed = [i for i in o_fp.index if i not in n_fp.index or n_fp[i] != o_fp[i]]
        if changed:
            found.append(Finding("fail", suite, cfg, "", f"channels changed ({len(changed)} of {len(o_fp)} "
                                 f"realisations, first: instance {changed[0]}), regenerate with "
                                 "wbench leaderboard --update"))
            continue
        ref_old = _time_median(o_cfg[o_cfg["label"] == settings.reference], column)
        ref_new = _time_median(n_cfg[n_cfg["label"] == settings.reference], column)
        if not (ref_old > 0 and ref_new > 0):
            found.append(Finding("note", suite, cfg, "", f"no timed reference solver {settings.reference!r} "
                                 "in both runs: runtimes not checked"))
        for label, o in o_cfg.groupby("label", sort=False):
            n = n_cfg[n_cfg["label"] == label]
            if n.empty:
                found.append(Finding("fail", suite, cfg, label, "missing from the re-run"))
                continue
            found.extend(_compare_solver(suite, cfg, label, o, n, settings, (ref_old, ref_new), column))
        for label in sorted(set(n_cfg["label"]) - set(o_cfg["label"])):
            found.append(Finding("note", suite, cfg, label, "new: not in the committed leaderboard"))
    for key in sorted(set(new["config_key"]) - set(old["config_key"])):
        found.append(Finding("note", suite, config_name(new[new["config_key"] == key].iloc[0], new), "",
                             "new configuration: not in the committed leaderboard"))
    return found


def _compare_solver(suite: str, cfg: str, label: str, o: pd.DataFrame, n: pd.DataFrame, settings: Settings,
                    refs: tuple[float, float], column: str = "cpu_s") -> list[Finding]:
    out: list[Finding] = []

    def add(kind: str, message: str, rule: str = "") -> None:
        out.append(Finding(kind, suite, cfg, label, message, rule))

    o_i, n_i = o.set_index("instance"), n.set_index("instance")
    common = o_i.index.intersection(n_i.index)
    # statuses: a run that was ok and is not any more
    worse = [i for i in common if o_i.at[i, "status"] == "ok" and n_i.at[i, "status"] != "ok"]
    if worse:
        counts = n_i.loc[worse, "status"].value_counts()
        what = ", ".join(f"{s} {c}" for s, c in counts.items())
        err = n_i.loc[worse, "error"].dropna()
        add("fail", f"status was ok, now {what} (of {len(common)} channels)"
            + (f"; first error: {err.iloc[0]}" if len(err) else ""))
    f_old, f_new = (o["status"] == "ok").mean(), (n["status"] == "ok").mean()
    if f_new < f_old:
        add("fail", f"feasible rate dropped {f_old:.0%} -> {f_new:.0%}")
    # utility, paired on the channels where both are ok
    both = [i for i in common if o_i.at[i, "status"] == "ok" and n_i.at[i, "status"] == "ok"]
    if both:
        u_old = o_i.loc[both, "utility"].astype(float).to_numpy()
        d = n_i.loc[both, "utility"].astype(float).to_numpy() - u_old
        lo, hi = _paired_interval(d, settings.level)
        floor = 1e-6 * (1 + abs(float(u_old.mean())))
        summary = (f"mean {u_old.mean():.4f} -> {u_old.mean() + d.mean():.4f} (paired change {d.mean():+.4f}, "
                   f"{settings.level:.0%} CI [{lo:+.4f}, {hi:+.4f}], n={len(d)})")
        if hi < -floor:
            add("fail", "utility dropped: " + summary)
        elif lo > floor:
            add("improved", "utility rose: " + summary)
    # runtime as a ratio to the reference solver of the same run
    if label != settings.reference and all(r > 0 for r in refs):
        t_old, t_new = _time_median(o, column), _time_median(n, column)
        if t_old >= settings.min_time_s and t_new > 0:
            r_old, r_new = t_old / refs[0], t_new / refs[1]
            what = "CPU time" if column == "cpu_s" else "wall time"
            msg = (f"{what} relative to {settings.reference} {r_old:.3g}x -> {r_new:.3g}x "
                   f"(median {t_old:.3g} s -> {t_new:.3g} s; limit: factor {settings.time_factor:g})")
            if r_new > settings.time_factor * r_old:
                add("fail", "slower: " + msg, "runtime")
            elif r_new * settings.time_factor < r_old:
                add("improved", "faster: " + msg, "runtime")
    return out


def _paired_interval(d: np.ndarray, level: float) -> tuple[float, float]:
    """Student-t interval of the mean of paired differences (the value itself for one pair)."""
    mean = float(d.mean())
    if len(d) < 2:
        return mean, mean
    half = float(stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
    return mean - half, mean + half


# -- the two commands --------------------------------------------------------------------------------
@contextlib.contextmanager
def only_plugins(dists: Sequence[str]):
    """Rebuild the registry with only these installed plugin distributions, restored afterwards."""
    from .registry import get_registry

    saved = os.environ.get(ENV_ALLOW)
    os.environ[ENV_ALLOW] = ",".join(dists)
    get_registry(refresh=True)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(ENV_ALLOW, None)
        else:
            os.environ[ENV_ALLOW] = saved
        get_registry(refresh=True)


def update(directory: str | Path, runner: Runner, only: Sequence[str] | None = None,
           echo: Callable[[str], None] = print) -> list[Path]:
    """Run every suite on a fresh database and (re)write its committed files."""
    suites, settings = load_suites(directory, only)
    written: list[Path] = []
    with only_plugins(settings.plugins):
        for suite in suites:
            echo(f"wbench: {suite.name}: {suite.command}")
            written += write_suite(directory, suite, runner(suite.arguments))
    return written


def check(directory: str | Path, runner: Runner, only: Sequence[str] | None = None,
          echo: Callable[[str], None] = print) -> list[Finding]:
    """Re-run every suite and compare with its committed runs; returns every finding (see module doc)."""
    suites, settings = load_suites(directory, only)
    findings: list[Finding] = []
    with only_plugins(settings.plugins):
        for suite in suites:
            path = Path(directory) / f"{suite.name}.runs.csv"
            if not path.is_file():
                findings.append(Finding("fail", suite.name, "", "", f"no committed {path.name}: run "
                                        f"wbench leaderboard --update {directory} --suite {suite.name}"))
                continue
            echo(f"wbench: checking {suite.name}: {suite.command}")
            old = read_runs(path)
            new = runs_table(runner(suite.arguments))
            found = compare_runs(suite.name, old, new, settings)
            findings += confirm_runtime(suite, old, found, runner, settings, echo)
    return findings


def rerun_arguments(suite: Suite, labels: Sequence[str], settings: Settings) -> tuple[str, ...]:
    """The suite's ``compare`` arguments with ``--solvers`` narrowed to ``labels`` and the reference (a label
    is a valid selection item: the solver name and its non-default options)."""
    wanted = ",".join(dict.fromkeys([*labels, settings.reference]))
    args = list(suite.arguments)
    for i, a in enumerate(args):
        if a == "--solvers" and i + 1 < len(args):
            return tuple(args[:i + 1] + [wanted] + args[i + 2:])
        if a.startswith("--solvers="):
            return tuple(args[:i] + [f"--solvers={wanted}"] + args[i + 1:])
    return tuple(args)


def confirm_runtime(suite: Suite, old: pd.DataFrame, found: list[Finding], runner: Runner, settings: Settings,
                    echo: Callable[[str], None] = print) -> list[Finding]:
    """Re-run the solvers with a runtime failure (and the reference) once; keep the failures the re-run
    reproduces, turn the others into notes. A slowdown that comes and goes is the machine, not the code."""
    slow = [f for f in found if f.kind == "fail" and f.rule == "runtime"]
    if not slow:
        return found
    labels = sorted({f.solver for f in slow})
    echo(f"wbench: {suite.name}: slower {', '.join(labels)}: re-running to confirm")
    again = runs_table(runner(rerun_arguments(suite, labels, settings)))
    second = {(f.config, f.solver): f for f in compare_runs(suite.name, old, again, settings)
              if f.kind == "fail" and f.rule == "runtime"}
    out = []
    for f in found:
        if f not in slow:
            out.append(f)
        elif (f.config, f.solver) in second:
            out.append(dataclasses.replace(f, message=f"{f.message}; confirmed by a re-run: "
                                           f"{second[(f.config, f.solver)].message.removeprefix('slower: ')}"))
        else:
            out.append(dataclasses.replace(f, kind="note", message=f"{f.message}; not reproduced by a re-run, "
                                           "so not a regression (a busy machine?)"))
    return out
