"""Leaderboard output: a rich terminal table, Markdown for people, CSV for machines.

The table and Markdown show the parameters that vary between rows as columns and the constant ones in
the caption; the CSV keeps every column of :func:`wbench.ranking.leaderboard`. The terminal table fits
120 columns by default (:func:`terminal_rows`: rarely needed columns behind ``--wide``, long budgets in a
numbered legend under the table); Markdown keeps every column with the budgets inline. Cells are plain
text, never rich markup: a label such as ``wmmse[init=mrt]`` prints as written.
"""

from __future__ import annotations

import io
import math
from typing import Any

import pandas as pd

from .engine.scoring import STATUSES
from .ranking import METRIC_PREFIX

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


#: Appended to the time cells of rows whose runs were solved in batches (:func:`batch_note`).
BATCH_MARK = "\u2020"


def _batched(r: pd.Series) -> bool:
    b = r.get("batch", 1)
    return b == b and b is not None and int(b) > 1


def batch_note(lb: pd.DataFrame) -> str:
    """The note under a table with batched rows (empty when no row's runs were batched)."""
    if "batch" not in lb.columns:
        return ""
    sizes = sorted({int(b) for b in lb["batch"] if b == b and b is not None and int(b) > 1})
    if not sizes:
        return ""
    size = f"batches of {sizes[0]}" if len(sizes) == 1 else f"batches of up to {sizes[-1]}"
    return (f"{BATCH_MARK} batched: the runs were solved in {size} realisations as one computation; their time "
            "is the batch's wall time divided by its size.")


def _failures(r: pd.Series) -> str:
    parts = [f"{s} {int(r[f'n_{s}'])}" for s in STATUSES if s != "ok" and r[f"n_{s}"]]
    return ", ".join(parts) or "-"


def has_in_sample(lb: pd.DataFrame) -> bool:
    """Whether the leaderboard carries in-sample values (scenarios scored on data solvers did not see)."""
    return "in_sample" in lb.columns and bool(lb["in_sample"].notna().any())
def _stalled(r: pd.Series) -> str:
    """Runs that stopped early with budget left (a count), ``-`` for none."""
    n = r.get("stalled", 0)
    return str(int(n)) if n == n and n else "-"


#: The reference-gap columns of :func:`display_rows` (leaderboard column, header), in display order.
GAP_COLUMNS = (("gap_opt", "gap to opt"), ("gap_opt_rel", "gap to opt %"), ("gap_bound", "gap to bound"),
               ("gap_bound_rel", "gap to bound %"))


def _row_kind(r: pd.Series) -> str:
    """``bound``, ``ref`` (a reference value that bounds nothing), ``opt`` (a certified optimum, unranked) or the
    rank as text."""
    tags = str(r.get("tags", "")).split(",")
    if "reference" in tags:
        return "ref"
    if "bound" in tags or (pd.isna(r["rank"]) and "optimum" not in tags):
        return "bound"
    return "opt" if "optimum" in tags else str(int(r["rank"]))


def display_rows(lb: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and text cells shared by the terminal table and Markdown.

    The rank column reads ``bound`` for a bound row and ``opt`` for a certified-optimum row (both unranked);
    where the leaderboard has gaps to references, ``gap to opt`` / ``gap to bound`` (mean of reference minus
    utility, bit/s/Hz or the scenario's unit) and their relative versions in percent follow the paired gap
    to the best."""
    varying, _ = split_params(lb)
    varying = [c for c in varying if c not in ("channels",)]
    optimism = has_in_sample(lb)
    metrics = [c for c in lb.columns if c.startswith(METRIC_PREFIX)]
    gaps = [(c, h) for c, h in GAP_COLUMNS if c in lb.columns]
    header = varying + ["#", "solver", "budget", "n", "mean [95% CI]"] \
        + (["in-sample", "optimism [95% CI]"] if optimism else []) \
        + [c[len(METRIC_PREFIX):].replace("_", " ") for c in metrics] \
        + ["time med", "time p90", "iters", "feasible", "max viol", "stalled", "win vs best", "gap to best"] \
        + [h for _, h in gaps] + ["failures"]
    cells = []
    for _, r in lb.iterrows():
        ci = f"{_fmt(r['mean'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
        extra = [_fmt(r["in_sample"]), f"{_fmt(r['optimism'], '+.3f')} [{_fmt(r['optimism_ci_low'], '+.3f')}, "
                 f"{_fmt(r['optimism_ci_high'], '+.3f')}]"] if optimism else []
        rank = _row_kind(r)
        is_bound = rank in ("bound", "ref")
        gap_cells = [_fmt(r[c] * 100, ".2f") + ("%" if r[c] == r[c] else "") if c.endswith("_rel")
                     else _fmt(r[c], ".3f") for c, _ in gaps]
        win = "best" if rank == "1" else _fmt(r["win_rate"] * 100 if r["win_rate"] == r["win_rate"] else None, ".0f")
        if win not in ("best", "-"):
            win += "%"
        feas = "-" if is_bound else f"{r['feasible_rate'] * 100:.0f}%"
        mark = BATCH_MARK if _batched(r) and r["time_median_s"] == r["time_median_s"] else ""
        viol = "-" if is_bound else _fmt(r["max_violation"], ".1e")
        cells.append(
            [str(r[c]) for c in varying]
            + [rank, str(r["solver"]), str(r["budget"] or "-"), str(int(r["n"])), ci] + extra
            + [_fmt(r[c]) for c in metrics]
            + [_time(r["time_median_s"]) + mark, _time(r["time_p90_s"]) + mark, _fmt(r["iters_median"], ".0f"),
               feas, viol, _stalled(r), win, _fmt(r["mean_gap"], "+.3f")] + gap_cells + [_failures(r)]
        )
    return header, cells


def to_markdown(lb: pd.DataFrame) -> str:
    if lb.empty:
        return "_no results_\n"
    header, cells = display_rows(lb)
    lines = [f"**{caption(lb)}**", "", "| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    note = batch_note(lb)
    return "\n".join(lines + (["", note] if note else [])) + "\n"


def to_csv(lb: pd.DataFrame) -> str:
    buf = io.StringIO()
    lb.to_csv(buf, index=False, float_format="%.10g")
    return buf.getvalue()


#: Terminal width the default table fits (``--wide`` lifts it).
TABLE_WIDTH = 120
#: Columns of the full table that the default terminal table leaves out (``--wide`` shows them).
WIDE_ONLY = ("time p90", "iters", "max viol")
_SHORT = {"mean [95% CI]": "mean ± 95% CI", "win vs best": "win", "gap to best": "gap", "gap to opt": "to opt",
          "gap to bound": "to bound"}


def make_console(wide: bool = False) -> Any:
    """A rich console: the terminal's width, or 120 columns when writing to a file or pipe (``wide``:
    250 columns there, and never narrower than the table needs)."""
    import sys

    from rich.console import Console

    if sys.stdout.isatty():
        return Console()
    return Console(width=250 if wide else TABLE_WIDTH)


def _width(header: list[str], cells: list[list[str]]) -> int:
    """Width of a rich table with these cells unwrapped: cells plus 3 per column (padding, rule) plus 1."""
    cols = [max([len(h)] + [len(r[j]) for r in cells]) for j, h in enumerate(header)]
    return sum(cols) + 3 * len(cols) + 1


def terminal_rows(lb: pd.DataFrame, width: int = TABLE_WIDTH, wide: bool = False
                  ) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, cells and budget legend of the terminal table.

    The default (narrow) table keeps what a reader compares at a glance: the varying parameters, rank,
    solver, budget, n, mean with its 95% interval as ``mean ± half-width`` (Student-t, symmetric), median
    time, feasible rate and the paired win rate and gap to the best, and one reference gap (``to opt`` where
    there is an optimum row, else ``to bound``); the failures and stalled columns only when some run failed
    or stopped early. Budgets stay in the table when it then fits ``width``; otherwise the longest budgets, one by
    one, become numbered references to a legend printed under the table, and if that is not enough, solver
    labels may wrap after the commas of their options. ``wide``: every column of :func:`display_rows`.
    """
    header, cells = display_rows(lb)
    if wide:
        return header, cells, []
    gap_heads = [h for _, h in GAP_COLUMNS if h in header]
    narrow_gap = next((h for h in ("gap to opt", "gap to bound") if h in header), None)
    keep = [j for j, h in enumerate(header) if h not in WIDE_ONLY and (h not in gap_heads or h == narrow_gap)]
    for name in ("failures", "stalled"):  # shown only when some run failed / stopped early
        j = header.index(name)
        if all(r[j] == "-" for r in cells):
            keep.remove(j)
    ci = header.index("mean [95% CI]")
    pm = [_pm(r) for _, r in lb.iterrows()]
    cells = [[pm[i] if j == ci else row[j] for j in keep] for i, row in enumerate(cells)]
    header = [_SHORT.get(header[j], header[j]) for j in keep]
    b = header.index("budget")
    moved: set[str] = set()
    while _width(header, [r[:b] + (["[9]"] if r[b] in moved else [r[b]]) + r[b + 1:] for r in cells]) > width:
        inline = sorted({r[b] for r in cells if r[b] not in moved and len(r[b]) > 4}, key=lambda t: (-len(t), t))
        if not inline:
            break
        moved.add(inline[0])  # the longest budget goes to the legend first; short ones stay inline
    # still too wide (in-sample and metric columns of imperfect-CSI scenarios): the optimism interval gives way
    # to its point value, then metric columns go from the last one (all of them stay in --wide and the exports)
    if _width(header, cells) > width and "optimism [95% CI]" in header:
        j = header.index("optimism [95% CI]")
        header[j] = "optimism"
        for row in cells:
            row[j] = row[j].split(" [")[0]
    metric_heads = [c[len(METRIC_PREFIX):].replace("_", " ") for c in lb.columns if c.startswith(METRIC_PREFIX)]
    for h in reversed(metric_heads):
        if _width(header, cells) <= width:
            break
        if h in header:
            j = header.index(h)
            header.pop(j)
            for row in cells:
                row.pop(j)
    if _width(header, cells) > width:  # still too wide: let long labels wrap after their commas
        j = header.index("solver")
        for row in cells:
            row[j] = row[j].replace(",", ", ")
    legend: list[str] = []
    for row in cells:
        if row[b] in moved:
            if row[b] not in legend:
                legend.append(row[b])
            row[b] = f"[{legend.index(row[b]) + 1}]"
    return header, cells, legend


def _pm(r: pd.Series) -> str:
    if r["mean"] != r["mean"]:
        return "-"
    if r["ci_high"] != r["ci_high"]:
        return _fmt(r["mean"])
    return f"{_fmt(r['mean'])} ± {_fmt((r['ci_high'] - r['ci_low']) / 2)}"


def print_table(lb: pd.DataFrame, console: Any = None, wide: bool = False) -> None:
    """The leaderboard as a rich table: by default it fits the console (120 columns off a terminal) with
    budgets in a numbered legend when they do not fit; ``wide`` shows every column."""
    from rich.table import Table
    from rich.text import Text

    console = console or make_console(wide)
    if lb.empty:
        console.print("no results")
        return
    header, cells, legend = terminal_rows(lb, console.width, wide)
    table = Table(title=caption(lb), show_lines=False)
    for h in header:
        left = h in ("solver", "budget", "failures")
        table.add_column(h, justify="left" if left else "right", overflow="fold",
                         no_wrap=h not in ("solver", "budget", "failures"))
    prev = None
    rank = header.index("#")
    for (_, r), row in zip(lb.iterrows(), cells):
        key = r["config_key"]
        if prev is not None and key != prev:
            table.add_section()
        prev = key
        style = "dim" if row[rank] in ("bound", "ref") else ("bold" if row[rank] == "opt" else None)
        table.add_row(*(Text(c) for c in row), style=style)  # Text: "wmmse[init=mrt]" is not markup
    console.print(table)
    for i, text in enumerate(legend, start=1):
        console.print(f"[{i}] {text}", markup=False, highlight=False)
    if batch_note(lb):
        console.print(batch_note(lb), markup=False, highlight=False)
    console.print(
        "mean over runs with status ok; CI: 95% Student-t; win/gap: paired on the same channels against "
        "the rank-1 solver; ranking: feasible rate, then mean."
        + (" in-sample: the solver's own objective on what it saw; optimism: in-sample minus scored utility."
           if has_in_sample(lb) else "")
        + (" stalled: runs that stopped early with budget left (e.g. a failed line search)."
           if "stalled" in lb.columns and bool((lb["stalled"].fillna(0) > 0).any()) else "")
        + (" opt: a certified global optimum (unranked); to opt / to bound: mean over the same channels of the "
           "reference minus the utility." if any(c in lb.columns for c, _ in GAP_COLUMNS) else "")
        + ("" if wide else " More columns (time p90, iters, max viol, failures"
           + (", relative gaps" if any(c in lb.columns for c, _ in GAP_COLUMNS) else "") + "): --wide."),
        highlight=False,
    )
