"""Utility against a swept parameter, one curve per solver.

What it shows: for every configuration and solver, the leaderboard's mean utility over the runs with
status ``ok`` and its 95% Student-t confidence interval (``mean +- t_{0.975,n-1} s/sqrt(n)``), exactly the
``mean``, ``ci_low`` and ``ci_high`` of :func:`wbench.ranking.leaderboard`, plotted against the
parameter that varies between configurations (``snr_db``, ``pt_dbm``, ``Nt``, ``K``, ``B``,
``architecture`` ...). A numeric parameter gets a numeric axis (lines with a shaded band); any other
(e.g. ``architecture``) a categorical one (dodged points with error bars). When several parameters vary,
the x axis is the one asked for (``--x``), else the first numeric one, else the first; each combination
of the others gets its own panel. Bound rows (tag ``bound``, e.g. the DPC capacity) are dashed.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from . import data as D


def sweep_data(rows: Sequence[Mapping[str, Any]], x: str | None = None) -> pd.DataFrame:
    """One row per (configuration, solver): ``x`` (the swept value), ``facet`` (the other varying
    parameters), ``solver``, ``bound``, ``mean``, ``ci_low``, ``ci_high``, ``n`` (runs), ``n_ok``,
    ``budget``, ``config_key``. ``attrs`` holds ``x`` (the parameter), ``numeric``, ``facets``, ``caption``,
    ``channels``, ``budgets`` and ``scenario``."""
    from ..ranking import leaderboard

    runs = D.runs_table(rows)
    xname, facets = D.choose_x(runs, x, "sweep")
    lb = leaderboard(rows)
    order = {k: i for i, k in enumerate(D.config_order(runs))}
    out = pd.DataFrame({
        "config_key": lb["config_key"],
        "x": lb[xname],
        "facet": [D.config_label(r, facets) for r in lb[facets].to_dict("records")] if facets else "all",
        "solver": lb["solver"].astype(str),
        "bound": np.array(["bound" in str(t).split(",") for t in lb["tags"]], dtype=bool),  # not an optimum row
        "mean": lb["mean"].astype(float),
        "ci_low": lb["ci_low"].astype(float),
        "ci_high": lb["ci_high"].astype(float),
        "n": lb["n"].astype(int),
        "n_ok": lb["n_ok"].astype(int),
        "budget": lb["budget"].astype(str),
    })
    out["_order"] = out["config_key"].map(order)
    out = out.sort_values(["_order"], kind="stable").drop(columns="_order").reset_index(drop=True)
    first = runs.drop_duplicates("config_key")
    out.attrs.update(
        scenario=str(runs["scenario"].iloc[0]),
        x=xname,
        numeric=D.is_numeric(p.get(xname) for p in first["p"]),
        facets=facets,
        caption=D.caption(rows),
        channels=D.channels_text(runs),
        budgets=D.budgets_text(runs),
        solvers=D.solver_order(runs),
    )
    return out


def draw_sweep(data: pd.DataFrame) -> Any:
    """The sweep figure (a matplotlib Figure): one panel per facet, mean utility with 95% CI per solver."""
    plt = D.pyplot()
    xname = data.attrs["x"]
    numeric = bool(data.attrs["numeric"])
    facets = list(dict.fromkeys(data["facet"]))
    solvers = [s for s in data.attrs.get("solvers", []) if s in set(data["solver"])]
    solvers += [s for s in dict.fromkeys(data["solver"]) if s not in solvers]
    colours = D.palette(list(data.attrs.get("solvers", [])) + solvers)
    markers = dict(zip(solvers, "osD^vPX<>*ph" * 3))
    ncols = min(3, len(facets))
    nrows = int(np.ceil(len(facets) / ncols))
    xs = list(dict.fromkeys(data["x"]))
    panel_w = 4.6 if numeric else max(4.6, 1.2 + 0.4 * len(solvers) * len(xs))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_w * ncols, 3.6 * nrows), squeeze=False, sharey=True)
    if numeric:
        vals = np.array([float(v) for v in xs])
        log2 = bool(np.all(vals > 0) and vals.max() / vals.min() >= 8 and all(float(v).is_integer() for v in vals))
    for idx, facet in enumerate(facets):
        ax = axes[idx // ncols][idx % ncols]
        sub = data[data["facet"] == facet]
        width = 0.7
        for j, s in enumerate(solvers):
            g = sub[sub["solver"] == s]
            if g.empty:
                continue
            bound = bool(g["bound"].iloc[0])
            style = dict(color=colours[s], label=s, lw=1.6 if not bound else 1.4, ls="--" if bound else "-")
            if numeric:
                g = g.assign(xf=g["x"].astype(float)).sort_values("xf")
                ax.plot(g["xf"], g["mean"], marker=markers[s] if not bound else None, ms=4.5, **style)
                if g["ci_low"].notna().any():
                    ax.fill_between(g["xf"], g["ci_low"], g["ci_high"], color=colours[s], alpha=0.12, lw=0)
            else:
                off = (j - (len(solvers) - 1) / 2) * width / max(1, len(solvers))
                pos = np.array([xs.index(v) for v in g["x"]], dtype=float)
                if bound:
                    for p_, m in zip(pos, g["mean"]):
                        ax.hlines(m, p_ - width / 2, p_ + width / 2, colors=[colours[s]], linestyles="--", lw=1.4)
                    ax.plot([], [], **style)
                else:
                    err = np.vstack([g["mean"] - g["ci_low"], g["ci_high"] - g["mean"]])
                    err = np.where(np.isfinite(err), err, 0.0)
                    ax.errorbar(pos + off, g["mean"], yerr=err, fmt=markers[s], ms=4.5, capsize=2.5,
                                color=colours[s], label=s, lw=1.2)
        if numeric:
            if log2:
                from matplotlib.ticker import NullLocator

                ax.set_xscale("log", base=2)
                ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticks([float(v) for v in xs])
            ax.set_xticklabels([D.format_value(v) for v in xs])
        else:
            ax.set_xticks(range(len(xs)))
            ax.set_xticklabels([str(v) for v in xs])
            ax.set_xlim(-0.6, len(xs) - 0.4)
        ax.set_xlabel(D.param_label(xname))
        if idx % ncols == 0:
            ax.set_ylabel(f"mean utility (sum rate) [{D.UTILITY_UNIT}]")
        if len(facets) > 1 or facet != "all":
            ax.set_title(facet, fontsize=9.5)
    for k in range(len(facets), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    handles, labels = D.unique_legend(axes)
    title = "solver (dashed: bound)" if data["bound"].any() else "solver"
    D.legend_outside(fig, axes[0][0], handles, labels, title=title)
    n_lo = int(data["n"].min())
    n_hi = int(data["n"].max())
    runs = f"{n_hi}" if n_lo == n_hi else f"{n_lo}-{n_hi}"
    D.finish(
        fig,
        f"{data.attrs['caption']}\nmean utility over ok runs ({runs} channels per point), "
        "band/bars: 95% Student-t CI",
        data.attrs.get("budgets", ""),
    )
    return fig
