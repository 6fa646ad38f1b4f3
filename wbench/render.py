"""Leaderboard output: a rich terminal table, Markdown for people, CSV for machines.

The table and Markdown show the parameters that vary between rows as columns and the constant ones in
the caption; the CSV keeps every column of :func:`wbench.leaderboard.leaderboard`.
"""

from __future__ import annotations

import io
import math
from typing import Any

import pandas as pd

from .harness import STATUSES

_META = {"scenario", "seed", "channels", "fingerprint", "config_key"}


def _param_columns(lb: pd.DataFrame) -> list[str]:
    start = list(lb.columns).index("scenario") + 1
    end = list(lb.columns).index("rank")
    return [c for c in lb.columns[start:end]]


def split_params(lb: pd.DataFrame) -> tuple[list[str], dict[str, Any]]:
    """(columns that vary between rows, constant column -> value)."""
    varying, constant = [], {}
    for c in _param_columns(lb):
        values = lb[c].astype(str).unique()
        if len(values) > 1:
            varying.append(c)
        else:
            constant[c] = lb[c].iloc[0]
    return varying, constant


def caption(lb: pd.DataFrame) -> str:
    _, constant = split_params(lb)
    scen = ", ".join(lb["scenario"].unique())
    parts = [f"{k}={v}" for k, v in constant.items() if k not in _META]
    n = int(lb["n"].max()) if len(lb) else 0
    seeds = constant.get("seed")
    src = constant.get("channels", "")
    where = f"seed {seeds}" if str(src).startswith("gen:") else f"channels {src}"
    return f"{scen}: {' '.join(parts)} | {where} | up to {n} channels per configuration"


def _fmt(x: Any, spec: str = ".3f") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return format(x, spec)


def _time(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x * 1e3:.3g} ms" if x < 1 else f"{x:.3g} s"


def _failures(r: pd.Series) -> str:
    parts = [f"{s} {int(r[f'n_{s}'])}" for s in STATUSES if s != "ok" and r[f"n_{s}"]]
    return ", ".join(parts) or "-"


def _stalled(r: pd.Series) -> str:
    """Runs that stopped early with budget left (a count), ``-`` for none."""
    n = r.get("stalled", 0)
    return str(int(n)) if n == n and n else "-"


def display_rows(lb: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and text cells shared by the terminal table and Markdown."""
    varying, _ = split_params(lb)
    varying = [c for c in varying if c not in ("channels",)]
    header = varying + ["#", "solver", "budget", "n", "mean [95% CI]", "time med", "time p90",
                        "iters", "feasible", "max viol", "stalled", "win vs best", "gap to best", "failures"]
    cells = []
    for _, r in lb.iterrows():
        ci = f"{_fmt(r['mean'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
        is_bound = bool(pd.isna(r["rank"]))
        rank = "bound" if is_bound else str(int(r["rank"]))
        win = "best" if rank == "1" else _fmt(r["win_rate"] * 100 if r["win_rate"] == r["win_rate"] else None, ".0f")
        if win not in ("best", "-"):
            win += "%"
        feas = "-" if is_bound else f"{r['feasible_rate'] * 100:.0f}%"
        viol = "-" if is_bound else _fmt(r["max_violation"], ".1e")
        cells.append(
            [str(r[c]) for c in varying]
            + [rank, str(r["solver"]), str(r["budget"] or "-"), str(int(r["n"])), ci,
               _time(r["time_median_s"]), _time(r["time_p90_s"]), _fmt(r["iters_median"], ".0f"),
               feas, viol, _stalled(r), win, _fmt(r["mean_gap"], "+.3f"), _failures(r)]
        )
    return header, cells


def to_markdown(lb: pd.DataFrame) -> str:
    if lb.empty:
        return "_no results_\n"
    header, cells = display_rows(lb)
    lines = [f"**{caption(lb)}**", "", "| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


def to_csv(lb: pd.DataFrame) -> str:
    buf = io.StringIO()
    lb.to_csv(buf, index=False, float_format="%.10g")
    return buf.getvalue()


def make_console() -> Any:
    """A rich console; wide when writing to a file or pipe, so tables are not squeezed to 80 columns."""
    import sys

    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 200)


def print_table(lb: pd.DataFrame, console: Any = None) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = console or make_console()
    if lb.empty:
        console.print("no results")
        return
    header, cells = display_rows(lb)
    table = Table(title=caption(lb), show_lines=False)
    for h in header:
        left = h in ("solver", "budget", "failures")
        # labels and budgets fold rather than lose their tail: "ao[starts=10]" must not read as "ao"
        fold = h in ("solver", "budget")
        table.add_column(h, justify="left" if left else "right", no_wrap=not fold,
                         overflow="fold" if fold else "ellipsis")
    prev = None
    for (_, r), row in zip(lb.iterrows(), cells):
        key = r["config_key"]
        if prev is not None and key != prev:
            table.add_section()
        prev = key
        style = "dim" if row[header.index("#")] == "bound" else None
        table.add_row(*(escape(c) for c in row), style=style)  # "ao[starts=10]" is not rich markup
    console.print(table)
    console.print(
        "mean over runs with status ok; CI: 95% Student-t; win/gap: paired on the same channels against "
        "the rank-1 solver; ranking: feasible rate, then mean; stalled: runs that stopped early with budget "
        "left (e.g. a failed line search)."
    )
