"""``wbench plot KIND`` and ``wbench report``: the figure commands, added to the main parser by
:func:`add_parsers`.

    wbench plot sweep   [--db PATH] [--scenario NAME] [--out FILE.png|.pdf|.svg] [--x PARAM]
    wbench plot anytime [--gap] [--reference SOLVER] ...
    wbench plot profile [--target F] [--reference SOLVER|optimum|bound] ...
    wbench plot scaling [--x PARAM] ...
    wbench plot NAME [--solver S] [--run KEY] ...   (a kind a plugin registered, e.g. isac's tradeoff, beampattern)
    wbench report [--db PATH] [--scenario NAME] --out DIR

Bad input (no database, unknown scenario or kind, unsupported extension, an option the kind does not
take, nothing to plot) raises :class:`wbench.params.ParamError` with one line; ``wbench``'s ``main``
prints it as ``wbench: error: ...`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..params import ParamError
from . import KINDS

DEFAULT_DB = "wbench.db"

#: Which options each kind takes (the others are refused rather than silently ignored).
_OPTIONS = {"x": ("sweep", "scaling"), "target": ("profile",), "reference": ("anytime", "profile"),
            "gap": ("anytime",)}


def add_parsers(subparsers: Any) -> None:
    """Add ``plot`` and ``report`` to the sub-commands of the ``wbench`` parser."""
    pl = subparsers.add_parser("plot", help="draw one figure (sweep, anytime, profile, scaling) from stored results")
    pl.add_argument("kind", metavar="KIND",
                    help=" | ".join(KINDS) + " | a kind a plugin registered (isac: tradeoff, beampattern; "
                         "star-ris-noma: training)")
    pl.add_argument("--db", default=DEFAULT_DB, help=f"results database (default {DEFAULT_DB})")
    pl.add_argument("--scenario", default=None, help="scenario (needed when the db holds several)")
    pl.add_argument("--out", default=None, metavar="FILE", help="FILE.png, .pdf or .svg (default SCENARIO-KIND.png)")
    pl.add_argument("--x", default=None, metavar="PARAM", help="sweep/scaling: the parameter on the x axis")
    pl.add_argument("--target", type=float, default=None, metavar="F",
                    help="profile: fraction of the reference utility to reach (default 0.99)")
    pl.add_argument("--reference", default=None, metavar="SOLVER",
                    help="profile/anytime --gap: reference solver (default: best reached / best bound); "
                         "profile also takes 'optimum' (the certified optimum, e.g. brb) or 'bound' (tightest bound)")
    pl.add_argument("--gap", action="store_true", help="anytime: plot the gap to the reference solver")
    pl.add_argument("--solver", default=None, help="plugin kinds that take it (e.g. beampattern): the solver")
    pl.add_argument("--run", default=None, metavar="KEY", help="plugin kinds that take it: one run (key prefix)")

    rp = subparsers.add_parser("report", help="write a self-contained HTML report (leaderboards, figures)")
    rp.add_argument("--db", default=DEFAULT_DB, help=f"results database (default {DEFAULT_DB})")
    rp.add_argument("--out", required=True, metavar="DIR", help="directory for index.html and its figures")
    rp.add_argument("--scenario", action="append", default=None, help="only this scenario (repeatable)")
    rp.add_argument("--target", type=float, default=0.99, metavar="F", help="profile target (default 0.99)")


def cmd_plot(args: argparse.Namespace) -> int:
    """Draw one figure and write it to ``--out``."""
    from . import data as D
    from . import draw, figure_data

    kind = args.kind
    if kind not in KINDS:
        return _plot_plugin_kind(args)
    for opt in ("solver", "run"):
        if getattr(args, opt, None) is not None:
            raise ParamError(f"--{opt} applies to plugin figure kinds that take it, not {kind}")
    for opt, kinds in _OPTIONS.items():
        value = getattr(args, opt, None)
        if value not in (None, False) and kind not in kinds:
            raise ParamError(f"--{opt} applies to {' and '.join(kinds)} plots, not {kind}")
    if getattr(args, "reference", None) and kind == "anytime" and not args.gap:
        raise ParamError("--reference applies to anytime plots with --gap")
    if args.out is not None:
        D.check_extension(args.out)
    scenario, rows = D.load_rows(args.db, args.scenario)
    target = args.target if getattr(args, "target", None) is not None else 0.99
    fd = figure_data(kind, rows, x=getattr(args, "x", None), target=target,
                     reference=getattr(args, "reference", None), gap=bool(getattr(args, "gap", False)))
    out = args.out or f"{scenario}-{kind}.png"
    path = D.save_figure(draw(kind, fd), out)
    print(f"wrote {path}")
    return 0


def _plot_plugin_kind(args: argparse.Namespace) -> int:
    """``wbench plot NAME`` for a kind registered through ``wbench_register_figures``."""
    from . import data as D
    from .plugin import plugin_kinds

    kinds = plugin_kinds()
    fk = kinds.get(args.kind)
    if fk is None:
        raise ParamError(f"unknown figure kind {args.kind!r}; valid: {', '.join([*KINDS, *kinds])}")
    for opt in _OPTIONS:
        if getattr(args, opt, None) not in (None, False):
            raise ParamError(f"--{opt} does not apply to {args.kind} plots")
    for opt in ("solver", "run"):
        if getattr(args, opt, None) is not None and opt not in fk.options:
            raise ParamError(f"--{opt} does not apply to {args.kind} plots")
    if args.out is not None:
        D.check_extension(args.out)
    scenario, rows = D.load_rows(args.db, args.scenario or (fk.scenarios[0] if len(fk.scenarios) == 1 else None))
    if not fk.applies(scenario):
        raise ParamError(f"{args.kind} plots apply to {', '.join(fk.scenarios)}, not {scenario}")
    fd = fk.figure_data(rows, args.db, solver=getattr(args, "solver", None), run=getattr(args, "run", None))
    path = D.save_figure(fk.draw(fd), args.out or f"{scenario}-{args.kind}.png")
    print(f"wrote {path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write ``--out``/index.html with the figures and tables of every scenario in the db."""
    from .report import write_report

    path = write_report(args.db, args.out, args.scenario, target=args.target)
    print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m wbench.figures.cli plot sweep ...``) with wbench's error convention."""
    p = argparse.ArgumentParser(prog="wbench")
    sub = p.add_subparsers(dest="command", required=True)
    add_parsers(sub)
    args = p.parse_args(argv)
    try:
        return {"plot": cmd_plot, "report": cmd_report}[args.command](args)
    except ParamError as exc:
        print(f"wbench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
