"""Wall time against problem size on log-log axes, with the fitted exponent per solver.

What it shows: per configuration and solver, the median wall time per run [s] with the 10-90% band,
against a swept size parameter (a positive integer: ``Nt``, ``K``, ``B`` ...; ``--x`` picks it, else the
first varying one that is a size), on log-log axes. The times are those the leaderboard uses (runs with
status ``ok``, ``infeasible`` or ``timeout``; errors are left out). The legend gives each solver's
least-squares slope of ``log(median time)`` on ``log(size)``: time grows like ``size^slope``. Other
varying parameters get their own panels.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..params import ParamError
from . import data as D

TIMED = ("ok", "infeasible", "timeout")


def loglog_slope(sizes: Sequence[float], times: Sequence[float]) -> tuple[float, float]:
    """(slope, intercept) of the least-squares line ``log t = intercept + slope log n`` (natural logs);
    NaN with fewer than two distinct sizes."""
    x = np.log(np.asarray(sizes, dtype=float))
    y = np.log(np.asarray(times, dtype=float))
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(np.unique(x)) < 2:
        return math.nan, math.nan
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


def choose_size(runs: pd.DataFrame, x: str | None) -> tuple[str, list[str]]:
    """The size parameter and the other varying parameters (facets)."""
    varying, constant = D.varying_params(runs)
    first = runs.drop_duplicates("config_key")
    scen = runs["scenario"].iloc[0]
    if x is not None:
        name, facets = D.choose_x(runs, x, "scaling plot")
        if not D.is_numeric(p.get(name) for p in first["p"]) or any(float(p.get(name)) <= 0 for p in first["p"]):
            raise ParamError(f"--x {x}: a scaling plot needs a positive numeric size parameter")
        return name, facets
    sizes = [v for v in varying if D.is_size(p.get(v) for p in first["p"])]
    if not sizes:
        raise ParamError(
            f"nothing to plot: a scaling plot needs a swept problem size (a positive integer parameter, e.g. "
            f"--sweep Nt=2,4,8); scenario {scen} varies {', '.join(varying) or 'nothing'} here")
    return sizes[0], [v for v in varying if v != sizes[0]]


def scaling_data(rows: Sequence[Mapping[str, Any]], x: str | None = None) -> pd.DataFrame:
    """One row per (configuration, solver): ``size``, ``facet``, ``solver``, ``bound``, ``median``,
    ``p10``, ``p90`` (wall time per run [s]), ``n``. ``attrs``: ``x``, ``slopes`` (a frame of
    ``facet``, ``solver``, ``slope``, ``intercept``, ``points``), ``caption``, ``channels``, ``budgets``."""
    runs = D.runs_table(rows)
    name, facets = choose_size(runs, x)
    out = []
    for key in D.config_order(runs):
        cfg = runs[runs["config_key"] == key]
        p = cfg["p"].iloc[0]
        for solver, g in cfg.groupby("display", sort=False):
            w = g.loc[g["status"].isin(TIMED), "wall_s"].astype(float)
            w = w[np.isfinite(w) & (w > 0)]
            if w.empty:
                continue
            out.append({"config_key": key, "size": float(p[name]), "facet": D.config_label(p, facets),
                        "solver": str(solver), "bound": bool(g["is_bound"].iloc[0]),
                        "median": float(w.median()), "p10": float(w.quantile(0.1)),
                        "p90": float(w.quantile(0.9)), "n": int(len(w))})
    if not out:
        raise ParamError("nothing to plot: no timed run")
    df = pd.DataFrame(out)
    df.attrs.update(scenario=str(runs["scenario"].iloc[0]), x=name, slopes=fit_slopes(df),
                    caption=D.caption(rows), channels=D.channels_text(runs), budgets=D.budgets_text(runs),
                    solvers=D.solver_order(runs))
    return df


def fit_slopes(data: pd.DataFrame) -> pd.DataFrame:
    """Per (facet, solver): the log-log least-squares slope of median time on size (:func:`loglog_slope`)."""
    rows = []
    for (facet, solver), g in data.groupby(["facet", "solver"], sort=False):
        slope, intercept = loglog_slope(g["size"], g["median"])
        rows.append({"facet": facet, "solver": solver, "slope": slope, "intercept": intercept,
                     "points": int(g["size"].nunique())})
    return pd.DataFrame(rows, columns=["facet", "solver", "slope", "intercept", "points"])


def draw_scaling(data: pd.DataFrame) -> Any:
    """The scaling figure: log-log median time with p10-p90 band and the fitted slope in the legend."""
    plt = D.pyplot()
    from matplotlib.ticker import NullLocator

    facets = list(dict.fromkeys(data["facet"]))
    solvers = [s for s in data.attrs.get("solvers", []) if s in set(data["solver"])]
    solvers += [s for s in dict.fromkeys(data["solver"]) if s not in solvers]
    colours = D.palette(list(data.attrs.get("solvers", [])) + solvers)
    slopes = data.attrs["slopes"]
    ncols = min(3, len(facets))
    nrows = int(np.ceil(len(facets) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.8 * ncols, 3.6 * nrows), squeeze=False, sharey=True)
    sizes = sorted(set(data["size"]))
    for idx, facet in enumerate(facets):
        ax = axes[idx // ncols][idx % ncols]
        sub = data[data["facet"] == facet]
        handles, labels = [], []
        for s in solvers:
            g = sub[sub["solver"] == s].sort_values("size")
            if g.empty:
                continue
            bound = bool(g["bound"].iloc[0])
            row = slopes[(slopes["facet"] == facet) & (slopes["solver"] == s)]
            slope = float(row["slope"].iloc[0]) if len(row) else math.nan
            lab = f"{s} (slope {slope:.2f})" if math.isfinite(slope) else f"{s} (slope n/a)"
            (h,) = ax.plot(g["size"], g["median"], marker="o", ms=4, lw=1.5, ls="--" if bound else "-",
                           color=colours[s], label=lab)
            ax.fill_between(g["size"], g["p10"], g["p90"], color=colours[s], alpha=0.15, lw=0)
            handles.append(h)
            labels.append(lab)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(sizes)
        ax.set_xticklabels([D.format_value(int(v) if float(v).is_integer() else v) for v in sizes])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel(D.param_label(data.attrs["x"]) + " (log scale)")
        if idx % ncols == 0:
            ax.set_ylabel("wall time per run [s]")
        D.log_ticks(ax.yaxis, *ax.get_ylim())
        if len(facets) == 1:
            D.legend_outside(fig, ax, handles, labels, title="solver (fitted slope)")
        else:
            ax.legend(handles, labels, fontsize=8, frameon=False, title="solver (fitted slope)", title_fontsize=8,
                      loc="upper center", bbox_to_anchor=(0.5, -0.2))
        if facet != "all":
            ax.set_title(facet, fontsize=9.5)
    for k in range(len(facets), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    D.finish(
        fig,
        f"{data.attrs['caption']}\nmedian wall time per run, band 10-90%; slope: least squares on "
        f"log-log medians (time ~ {data.attrs['x']}^slope)",
        data.attrs.get("budgets", ""),
    )
    return fig
