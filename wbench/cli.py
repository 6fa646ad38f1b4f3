"""The ``wbench`` command: ``list``, ``compare``, ``leaderboard``, ``check``, ``claims``, ``channels export``,
``solutions export``, ``plot`` and ``report``. ``compare``, ``leaderboard`` and ``solutions export`` call
the functions of :mod:`wbench.api` (the Python API), so both behave the same.

Every user error (unknown name, malformed or out-of-range parameter, a results file that is not ours)
ends in one line ``wbench: error: ...`` and exit status 2; an interrupted benchmark keeps every committed
row and says how to resume (exit status 130).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from . import __version__
from .api import DEFAULT_DB, SOLUTION_CAP_MB, parse_jobs, parse_sets
from .params import ParamError, format_value

FORMATS = ("table", "md", "csv")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        raise ParamError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="wbench", description="Benchmark optimisers for wireless systems on shared channels.")
    p.add_argument("--version", action="version", version=f"wbench {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    ls = sub.add_parser("list", help="list scenarios and solvers (with their origin and version)")
    ls.add_argument("what", nargs="?", choices=("scenarios", "solvers", "plugins"), default=None)

    cmp_ = sub.add_parser("compare", help="run solvers on a scenario's channels and print the leaderboard")
    cmp_.add_argument("--scenario", required=True)
    cmp_.add_argument("--solvers", required=True, help="names and/or tags, e.g. 'wmmse[max_iter=10],mrt,bound'")
    cmp_.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="fix a parameter")
    cmp_.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2,...", help="sweep a parameter")
    cmp_.add_argument("--instances", type=int, default=None, help="channel realisations per configuration")
    cmp_.add_argument("--seed", type=int, default=0, help="channel seed (same seed, same channels)")
    cmp_.add_argument("--channels", default=None, metavar="FILE.npz", help="benchmark channels from a file")
    cmp_.add_argument("--jobs", default=os.environ.get("WBENCH_JOBS", "auto"),
                      help="worker processes, or auto: one per usable CPU core (default: $WBENCH_JOBS or auto)")
    cmp_.add_argument("--threads", type=int, default=1, help="BLAS/torch threads per run (fixed for fairness)")
    cmp_.add_argument("--db", default=DEFAULT_DB, help=f"results database (default {DEFAULT_DB})")
    cmp_.add_argument("--budget-seconds", type=float, default=None, help="wall-clock budget per run")
    cmp_.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                      help="enforced wall-clock limit per run: the run is stopped and recorded as timeout "
                           "(default with --budget-seconds: the budget + 20%% + 1 s; otherwise none)")
    cmp_.add_argument("--max-memory", type=float, default=None, metavar="GIB",
                      help="refuse plans whose estimated memory exceeds this (default: what is available)")
    cmp_.add_argument("--executor", choices=("local", "dask"), default="local",
                      help="local processes (default) or a dask.distributed cluster")
    cmp_.add_argument("--scheduler", default=None, metavar="ADDRESS",
                      help="with --executor dask: join this scheduler (default: a LocalCluster of --jobs workers)")
    cmp_.add_argument("--device", default="cpu", help="torch device for solvers that use it: cpu, cuda, "
                      "cuda:N or auto (CUDA where available); CPU-only torch solvers are skipped under cuda")
    cmp_.add_argument("--fresh", action="store_true", help="discard stored results of these runs first")
    cmp_.add_argument("--no-solutions", dest="solutions", action="store_false",
                      help="do not keep the returned variables of the runs (kept by default)")
    cmp_.add_argument("--solution-cap-mb", type=float, default=SOLUTION_CAP_MB, metavar="MB",
                      help="largest stored solution kept per run (default %(default)g MiB); a larger "
                           "one is dropped with a note in the run's solution_note column")
    cmp_.add_argument("--format", choices=FORMATS, default="table")
    cmp_.add_argument("--wide", action="store_true",
                      help="terminal table with every column (default: fits 120 columns, budgets in a legend)")

    lb = sub.add_parser("leaderboard", help="print the leaderboard of stored results, or regenerate committed ones")
    lb.add_argument("--db", default=DEFAULT_DB)
    lb.add_argument("--scenario", default=None)
    lb.add_argument("--format", choices=FORMATS, default="table")
    lb.add_argument("--wide", action="store_true",
                      help="terminal table with every column (default: fits 120 columns, budgets in a legend)")
    lb.add_argument("--update", default=None, metavar="DIR",
                    help="re-run the suites of DIR/suites.toml and rewrite their committed leaderboards")
    lb.add_argument("--suite", action="append", default=[], help="with --update: only this suite (repeatable)")
    lb.add_argument("--jobs", default=os.environ.get("WBENCH_JOBS", "auto"), help="with --update: worker processes")

    ck = sub.add_parser("check", help="re-run committed leaderboards and fail on regressions")
    ck.add_argument("directory", metavar="DIR", help="directory with suites.toml and committed NAME.runs.csv")
    ck.add_argument("--suite", action="append", default=[], help="only this suite (repeatable)")
    ck.add_argument("--jobs", default=os.environ.get("WBENCH_JOBS", "auto"), help="worker processes")

    cl = sub.add_parser("claims", help="check the seed papers' claims: supported, refuted or inconclusive")
    cl.add_argument("pattern", nargs="?", default=None, metavar="PATTERN",
                    help="claim ids to run: a glob (seed000/*) or a substring (mlbf); default: all")
    cl.add_argument("--scale", choices=("small", "paper"), default="small",
                    help="small: minutes on 2 cores (default); paper: the papers' sizes (slow, see claims/)")
    cl.add_argument("--dir", default=None, help="claim files (default: ./claims, else the repository's)")
    cl.add_argument("--db", default=DEFAULT_DB, help=f"results database (default {DEFAULT_DB}; resumable)")
    cl.add_argument("--jobs", default=os.environ.get("WBENCH_JOBS", "auto"), help="worker processes")
    cl.add_argument("--write", default=None, metavar="FILE.md",
                    help="write the verdicts as Markdown, and as CSV beside it (FILE.csv)")
    cl.add_argument("--list", action="store_true", help="list the claims and their configurations, run nothing")

    ch = sub.add_parser("channels", help="export a seeded channel set to .npz")
    ch_sub = ch.add_subparsers(dest="action", parser_class=_Parser)
    ex = ch_sub.add_parser("export", help="write realisations 0..N-1 to a .npz file")
    ex.add_argument("--scenario", required=True)
    ex.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ex.add_argument("--instances", type=int, required=True)
    ex.add_argument("--seed", type=int, default=0)
    ex.add_argument("--out", required=True)

    so = sub.add_parser("solutions", help="export stored solutions (the runs' variables) to .npz")
    so_sub = so.add_subparsers(dest="action", parser_class=_Parser)
    se = so_sub.add_parser("export", help="write stored solutions with run keys, fingerprints and configuration")
    se.add_argument("--db", default=DEFAULT_DB)
    se.add_argument("--scenario", default=None)
    se.add_argument("--solvers", default=None, help="a selection as in compare (default: every solver)")
    se.add_argument("--out", required=True, metavar="FILE.npz")

    from .figures.cli import add_parsers

    add_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from .figures.cli import cmd_plot, cmd_report
    from .store import StoreError

    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            return 0
        return {"list": cmd_list, "compare": cmd_compare, "leaderboard": cmd_leaderboard,
                "check": cmd_check, "claims": cmd_claims, "channels": cmd_channels, "solutions": cmd_solutions,
                "plot": cmd_plot,
                "report": cmd_report}[args.command](args)
    except (ParamError, StoreError) as exc:
        print(f"wbench: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


# -- list ------------------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    from .registry import get_registry
    from .render import make_console

    reg = get_registry()
    console = make_console()
    if args.what in (None, "scenarios"):
        t = Table(title="scenarios")
        for c in ("name", "parameters (default)", "default sweep", "origin", "description"):
            t.add_column(c)
        for s in sorted(reg.scenarios.values(), key=lambda s: s.name):
            params = ", ".join(f"{k}={format_value(p.default)}" for k, p in s.params.items())
            sweep = "; ".join(f"{k}={','.join(map(format_value, v))}" for k, v in s.default_sweep.items())
            t.add_row(*map(Text, (s.name, params, sweep, s.origin, s.description)))
        console.print(t)
    if args.what in (None, "solvers"):
        t = Table(title="solvers")
        for c in ("name", "tags", "scenarios", "options (default)", "origin", "version", "description"):
            t.add_column(c)
        for s in sorted(reg.solvers.values(), key=lambda s: s.name):
            shown = s.effective_options(s.resolve_options({}))  # real values, not placeholders like 0
            opts = ", ".join(f"{k}={'none' if v is None else format_value(v)}" for k, v in shown.items())
            scen = ", ".join(s.scenarios) if s.scenarios is not None else "any"
            t.add_row(*map(Text, (s.name, ",".join(sorted(s.tags)), scen, opts, s.origin, s.version, s.description)))
        console.print(t)
    if args.what == "plugins":
        t = Table(title="plugins")
        for c in ("module", "origin", "version", "hooks"):
            t.add_column(c)
        for p in reg.plugins:
            t.add_row(*map(Text, (p.name, p.origin, p.version, ", ".join(p.hooks))))
        console.print(t)
    return 0


# -- compare ---------------------------------------------------------------------------------------
def cmd_compare(args: argparse.Namespace) -> int:
    try:
        rows = run_compare(args)
    except KeyboardInterrupt:
        print(f"\nwbench: interrupted; completed runs are saved in {args.db}. "
              "Run the same command again to resume.", file=sys.stderr)
        return 130
    _emit(rows, args.format, args.wide)
    return 0


def run_compare(args: argparse.Namespace) -> list[dict]:
    """Plan and execute a ``compare`` (notes and the summary on stderr); the stored rows of its runs."""
    from .api import compare_rows

    return compare_rows(
        args.scenario, args.solvers, args.set, args.sweep, args.instances, args.db, args.seed, args.channels,
        args.jobs, args.threads, args.budget_seconds, args.timeout, args.max_memory, args.executor,
        args.scheduler, args.device, args.fresh, args.solutions, args.solution_cap_mb,
        echo=lambda line: print(line, file=sys.stderr), progress=_progress_bar,
    )


@contextlib.contextmanager
def _progress_bar(todo: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    show = sys.stderr.isatty() and todo > 0
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), disable=not show, transient=True) as progress:
        bar = progress.add_task("runs", total=todo)
        yield lambda n: progress.advance(bar, n)


def _emit(rows, fmt: str, wide: bool = False) -> None:
    from .ranking import leaderboard

    _emit_table(leaderboard(rows), fmt, wide)


def _emit_table(lb, fmt: str, wide: bool = False) -> None:
    from .render import print_table, to_csv, to_markdown

    if fmt == "csv":
        sys.stdout.write(to_csv(lb))
    elif fmt == "md":
        sys.stdout.write(to_markdown(lb))
    else:
        print_table(lb, wide=wide)


# -- leaderboard -----------------------------------------------------------------------------------
def cmd_leaderboard(args: argparse.Namespace) -> int:
    from .api import leaderboard_tables

    if args.update:
        from . import regression

        with _suite_runner(args.jobs) as runner:
            written = regression.update(args.update, runner, args.suite,
                                        echo=lambda m: print(m, file=sys.stderr))
        print("\n".join(f"wrote {p}" for p in written))
        return 0

    for i, lb in enumerate(leaderboard_tables(args.db, args.scenario)):
        if i and args.format != "csv":
            print()
        _emit_table(lb, args.format, args.wide)
    return 0


# -- check ---------------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0 when every committed leaderboard is reproduced without regression, 1 otherwise."""
    from . import claims, regression

    echo = lambda m: print(m, file=sys.stderr)  # noqa: E731
    spec = claims.load_check(args.directory)
    only = [s for s in args.suite if s != "claims"]
    if "claims" in args.suite and spec is None:
        raise ParamError(f"--suite claims: {args.directory}/suites.toml has no [claims] table")
    findings = []
    if not args.suite or only:
        with _suite_runner(args.jobs) as runner:
            findings = regression.check(args.directory, runner, only, echo=echo)
    if spec is not None and (not args.suite or "claims" in args.suite):
        jobs = parse_jobs(args.jobs)
        with tempfile.TemporaryDirectory(prefix="wbench-claims-") as tmp:
            def run_claims(selected, scale):
                echo(f"wbench: checking claims: {', '.join(c.full_id for c in selected)} ({scale} scale)")
                return claims.run(selected, scale, Path(tmp) / "claims.db", jobs, echo=echo)

            with regression.only_plugins(regression.load_suites(args.directory)[1].plugins):
                findings += claims.check(spec, run_claims)
    fails = [f for f in findings if f.kind == "fail"]
    for f in sorted(findings, key=lambda f: ("fail", "improved", "note").index(f.kind)):
        print(f.line())
    suites = len({f.suite for f in fails})
    print(f"wbench check: {len(fails)} regression(s) in {suites} leaderboard(s)" if fails
          else "wbench check: no regression")
    return 1 if fails else 0


@contextlib.contextmanager
def _suite_runner(jobs: str):
    """A :data:`wbench.regression.Runner`: each suite on a fresh database in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="wbench-check-") as tmp:
        count = itertools.count()

        def run(arguments: Sequence[str]) -> list[dict]:
            db = Path(tmp) / f"suite{next(count)}.db"
            args = build_parser().parse_args(["compare", *arguments, "--db", str(db), "--jobs", str(jobs)])
            return run_compare(args)

        yield run


# -- claims ----------------------------------------------------------------------------------------
def _claims_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    here = Path("claims")
    if here.is_dir():
        return here
    repo = Path(__file__).resolve().parents[1] / "claims"  # an editable install's repository
    return repo if repo.is_dir() else here


def cmd_claims(args: argparse.Namespace) -> int:
    """Run the claims at a scale and print (and with --write, write) their verdicts."""
    from . import claims
    from .regression import versions

    jobs = parse_jobs(args.jobs)
    selected = claims.select_claims(claims.load(_claims_dir(args.dir)), args.pattern)
    if args.list:
        for c in selected:
            sc = c.scales[args.scale]
            print(f"{c.full_id}: {c.assertion.text}" + (f" for each {c.for_each}" if c.for_each else ""))
            print(f"    {args.scale}: {claims.config_text(c, args.scale)}; A = {sc.A.text()}; B = {sc.B.text()}")
        return 0

    def execute(plan, store) -> None:
        from .engine import execute as run_plan

        with _progress_bar(plan.total - plan.done) as advance:
            run_plan(plan, store, jobs, on_rows=advance)

    t0 = time.perf_counter()
    try:
        results = claims.run(selected, args.scale, args.db, jobs, execute=execute,
                             echo=lambda m: print(m, file=sys.stderr))
    except KeyboardInterrupt:
        print(f"\nwbench: interrupted; completed runs are saved in {args.db}. "
              "Run the same command again to resume.", file=sys.stderr)
        return 130
    print(f"wbench: claims evaluated in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    claims.print_results(results)
    if args.write:
        command = " ".join(["wbench claims"] + ([args.pattern] if args.pattern else [])
                           + ["--scale", args.scale, "--jobs", str(jobs), "--write", args.write])
        for path in claims.write(args.write, results, command, versions()):
            print(f"wrote {path}")
    return 0


# -- channels --------------------------------------------------------------------------------------
def cmd_channels(args: argparse.Namespace) -> int:
    from .channels.channelset import export_npz
    from .registry import get_registry

    if args.action != "export":
        raise ParamError("usage: wbench channels export --scenario NAME --instances N --out FILE.npz")
    if args.instances < 1:
        raise ParamError(f"--instances must be >= 1, got {args.instances}")
    sc = get_registry().scenario(args.scenario)
    params = sc.resolve_params(parse_sets(args.set))
    fps = export_npz(args.out, sc, params, args.seed, args.instances)
    print(f"wrote {len(fps)} realisations of {sc.name} to {args.out}")
    return 0


# -- solutions -------------------------------------------------------------------------------------
def cmd_solutions(args: argparse.Namespace) -> int:
    from .api import export_solutions

    if args.action != "export":
        raise ParamError("usage: wbench solutions export --db DB [--scenario S] [--solvers SEL] --out FILE.npz")
    written, missing = export_solutions(args.db, args.out, args.scenario, args.solvers)
    if missing:
        print(f"wbench: note: {missing} selected run(s) have no stored solution (status not ok/infeasible, "
              "over the size cap, or run with --no-solutions) and are not exported", file=sys.stderr)
    print(f"wrote {written} runs' solutions to {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
