"""Anytime curves: best-so-far utility (or its gap to a reference) against wall time.

What it shows: per configuration and solver, the median over channels of the best-so-far utility at time
``t`` with the 25-75% inter-quantile band, on a log time axis [s]. Each run's trace (the checkpoints the
solver reported, scored after the clock stopped, see :mod:`wbench.figures.data`) becomes a step function:
its value at ``t`` is the best feasible utility among the checkpoints at or before ``t`` (the returned
answer counting as a checkpoint at the run's wall time), so it never decreases. The step functions are
resampled on a common grid of log-spaced times per configuration, from the earliest first checkpoint to
the latest wall time of any run.

Before its first checkpoint a run has no answer. Such a run (and a run whose status is not ``ok``, at
every time) ranks below every value in the quantiles, so the median appears only once at least half the
channels have an answer, the 75% quantile once a quarter have, the 25% quantile once three quarters
have: a curve never shows a value better than what that share of runs had actually reached by then.
Solvers without checkpoints (closed forms) show their answer from their wall time on; bounds are dashed
horizontal lines (median over channels).

With ``gap=True`` the quantity is ``u_ref(channel) - best_so_far(t)`` on the same channel, where the
reference is the named solver or by default the best bound of the configuration (highest mean), else its
rank-1 solver; channels where the reference has no ``ok`` answer are left out.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..params import ParamError
from . import data as D

QUANTILES = (0.25, 0.5, 0.75)


def time_grid(runs: pd.DataFrame, points: int = 60) -> np.ndarray:
    """Log-spaced times from the earliest first checkpoint to the latest end of any run (``ok`` runs of
    non-bound solvers)."""
    starts, ends = [], []
    for r in runs.itertuples():
        if r.is_bound:
            continue
        t, _ = D.best_so_far(r.trace_list, r.wall_s, r.utility, r.status)
        if len(t):
            starts.append(t[0])
            ends.append(t[-1])
    if not starts:
        return np.empty(0)
    lo = max(min(starts), 1e-7)
    hi = max(max(ends), lo * 1.5)
    return np.geomspace(lo, hi, points)


def resample(runs: pd.DataFrame, grid: np.ndarray) -> np.ndarray:
    """Best-so-far utility of each run (rows) on ``grid`` (columns); NaN where a run has no answer yet."""
    out = np.full((len(runs), len(grid)), np.nan)
    for i, r in enumerate(runs.itertuples()):
        t, v = D.best_so_far(r.trace_list, r.wall_s, r.utility, r.status)
        out[i] = D.step_at(t, v, grid)
    return out


def reference_for(runs: pd.DataFrame, reference: str | None) -> str:
    """The reference solver of one configuration: ``reference`` if given, else the bound with the highest
    mean, else the rank-1 solver (feasible rate, then mean)."""
    labels = list(dict.fromkeys(runs["display"]))
    if reference is not None:
        if reference not in labels:
            raise ParamError(f"--reference {reference}: no such solver in this configuration; "
                             f"valid: {', '.join(labels)}")
        return reference
    ok = runs["status"] == "ok"
    stats = pd.DataFrame({
        "rate": ok.groupby(runs["display"]).mean(),
        "mean": runs[ok].groupby("display")["utility"].mean(),
        "bound": runs.groupby("display")["is_bound"].first(),
    })
    bounds = stats[stats["bound"] & stats["mean"].notna()]
    if len(bounds):
        return str(bounds["mean"].idxmax())
    rest = stats[~stats["bound"]].fillna({"mean": -np.inf})
    if rest.empty:
        raise ParamError("no solver to take as the reference")
    return str(rest.sort_values(["rate", "mean"], ascending=False).index[0])


def anytime_data(rows: Sequence[Mapping[str, Any]], gap: bool = False, reference: str | None = None,
                 points: int = 60) -> pd.DataFrame:
    """The anytime curves: one row per (configuration, solver, grid time) with ``t`` [s], ``q25``,
    ``median``, ``q75`` of best-so-far utility (or of the gap to the reference, ``gap=True``), ``n_runs``
    and ``n_valid`` (runs with an answer at ``t``), ``bound`` and ``config`` (label of the varying
    parameters). ``attrs``: ``gap``, ``references`` (configuration -> reference), ``caption``,
    ``channels``, ``budgets``, ``solvers``."""
    runs = D.runs_table(rows)
    varying, _ = D.varying_params(runs)
    if reference is not None and reference not in set(runs["display"]):
        raise ParamError(f"--reference {reference}: no such solver in scenario {runs['scenario'].iloc[0]}; "
                         f"valid: {', '.join(dict.fromkeys(runs['display']))}")
    frames, refs = [], {}
    for key in D.config_order(runs):
        cfg = runs[runs["config_key"] == key]
        label = D.config_label(cfg["p"].iloc[0], varying)
        grid = time_grid(cfg, points)
        if not len(grid):
            continue
        ref_u = None
        if gap:
            if reference is not None and reference not in set(cfg["display"]):
                continue
            ref = reference_for(cfg, reference)
            refs[label] = ref
            r = cfg[(cfg["display"] == ref) & (cfg["status"] == "ok")]
            ref_u = dict(zip(r["instance"], r["utility"].astype(float)))
        for solver, g in cfg.groupby("display", sort=False):
            bound = bool(g["is_bound"].iloc[0])
            if gap and bound:
                continue
            if bound:
                u = g.loc[g["status"] == "ok", "utility"].astype(float).to_numpy()
                if not len(u):
                    continue
                qs = [float(np.quantile(u, q)) for q in QUANTILES]
                vals = np.tile(np.array(qs)[:, None], (1, len(grid)))
                n_valid = np.full(len(grid), len(u))
            else:
                if gap:
                    g = g[g["instance"].isin(list(ref_u))]
                    if g.empty:
                        continue
                m = resample(g, grid)
                n_valid = np.isfinite(m).sum(axis=0)
                if gap:
                    refs_col = np.array([ref_u[i] for i in g["instance"]])[:, None]
                    m = np.where(np.isnan(m), np.inf, refs_col - m)
                else:
                    m = np.where(np.isnan(m), -np.inf, m)
                vals = np.vstack([D.order_quantile(m, q, axis=0) for q in QUANTILES])
            frames.append(pd.DataFrame({
                "config_key": key, "config": label, "solver": str(solver), "bound": bound, "t": grid,
                "q25": vals[0], "median": vals[1], "q75": vals[2], "n_runs": len(g), "n_valid": n_valid,
            }))
    if not frames:
        raise ParamError("nothing to plot: no run has a scored answer (all failed?)")
    out = pd.DataFrame(pd.concat(frames, ignore_index=True))
    out.attrs.update(
        scenario=str(runs["scenario"].iloc[0]), gap=gap, references=refs, caption=D.caption(rows),
        channels=D.channels_text(runs), budgets=D.budgets_text(runs), solvers=D.solver_order(runs),
    )
    return out


def draw_anytime(data: pd.DataFrame) -> Any:
    """The anytime figure: one panel per configuration, median (line) and 25-75% band per solver."""
    plt = D.pyplot()
    gap = bool(data.attrs.get("gap"))
    configs = list(dict.fromkeys(data["config"]))
    solvers = [s for s in data.attrs.get("solvers", []) if s in set(data["solver"])]
    solvers += [s for s in dict.fromkeys(data["solver"]) if s not in solvers]
    colours = D.palette(list(data.attrs.get("solvers", [])) + solvers)
    ncols = min(4, len(configs))
    nrows = int(np.ceil(len(configs) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.9 * ncols, 3.3 * nrows), squeeze=False)
    for idx, cfg in enumerate(configs):
        ax = axes[idx // ncols][idx % ncols]
        sub = data[data["config"] == cfg]
        for s in solvers:
            g = sub[sub["solver"] == s]
            if g.empty:
                continue
            if bool(g["bound"].iloc[0]):
                ax.plot(g["t"], g["median"], ls="--", lw=1.3, color=colours[s], label=s)
                continue
            ax.step(g["t"], g["median"], where="post", lw=1.5, color=colours[s], label=s)
            ax.fill_between(g["t"], g["q25"], g["q75"], step="post", color=colours[s], alpha=0.13, lw=0)
        ax.set_xscale("log")
        vals = sub["median"].to_numpy(dtype=float)
        vals = vals[np.isfinite(vals)]
        if gap and len(vals) and np.all(vals > 0):
            ax.set_yscale("log")
            D.plain_log_ticks(ax.yaxis)
        ax.set_xlabel("wall time [s]")
        if idx % ncols == 0:
            ax.set_ylabel(f"gap to reference [{D.UTILITY_UNIT}]" if gap
                          else f"best-so-far utility [{D.UTILITY_UNIT}]")
        title = cfg if cfg != "all" else ""
        if gap:
            ref = data.attrs.get("references", {}).get(cfg)
            title = f"{title} (ref. {ref})" if title else f"reference: {ref}"
        if title:
            ax.set_title(title, fontsize=9.5)
    for k in range(len(configs), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    handles, labels = D.unique_legend(axes)
    title = "solver (dashed: bound)" if data["bound"].any() else "solver"
    D.legend_outside(fig, axes[0][0], handles, labels, title=title)
    n = int(data["n_runs"].max())
    what = "gap to the reference" if gap else "best-so-far utility"
    D.finish(
        fig,
        f"{data.attrs['caption']}\n{what} vs wall time: median over {n} channels, band 25-75%; "
        "shown once enough runs have an answer",
        data.attrs.get("budgets", ""),
    )
    return fig
