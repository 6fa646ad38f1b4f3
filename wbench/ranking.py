"""Leaderboards: per configuration and solver, statistics over the shared channel realisations.

For each (configuration, solver) row:

* ``mean`` utility over the runs with status ``ok`` (feasible, finite, within budget) and its 95%
  Student-t confidence interval ``mean +- t_{0.975, n-1} s / sqrt(n)``;
* ``time_median_s`` and ``time_p90_s`` of the wall time per run, ``iters_median``; ``batch``: the largest
  number of runs solved together as one batch (1: every run alone). A batched run's time is its share of the
  batch's time (the batch's wall time divided by its size), not the time of a run alone;
* ``feasible_rate``: the fraction of runs whose answer was feasible (and finite and within budget);
* ``stalled``: the runs whose solver reported an early stop with budget left (``Solution.info["stalled"]``,
  e.g. a line search that failed away from a stationary point): their utility is what the method reached
  when it gave up, not where it converged;
* paired statistics against the best solver of the configuration on the same channels: ``win_rate`` (a
  tie counts one half) and ``mean_gap`` (mean of ``u_solver - u_best`` over realisations where both are
  ``ok``). A run that is not ``ok`` scores minus infinity in the pairing: an infeasible answer never beats
  a feasible one.

Where the scenario scores on data the solvers did not see (imperfect channel knowledge), and only then, the
leaderboard adds ``in_sample``, the mean over the same ``ok`` runs of the objective the solver optimised on
its own problem, and ``optimism``, the mean of ``in_sample - utility`` per run with its 95% Student-t interval
(``optimism_ci_low``, ``optimism_ci_high``): how much better a design looks on the data it was fitted to.
There a ``bound`` row's value is an in-sample value (it was computed on what solvers see): ``in_sample``, no ``mean``.

Where runs recorded further numbers (``metrics``, from the scoring problem's
:meth:`~wbench.problem.Problem.extra_metrics`, e.g. a held-out QoS shortfall), and only then, each becomes a
column ``metric_<name>``: its mean over the ``ok`` runs that have it.

Ranking: solvers are ordered by feasible rate, then mean utility, so a solver that is infeasible on some
channel never ranks above one that is feasible on all. Solvers tagged ``bound`` or ``reference`` (a value that
bounds nothing, e.g. fully-digital WMMSE beside hybrid designs) are listed first, unranked.
Solvers tagged ``optimum`` (``brb``: a certified global optimum, a real feasible answer scored like any
other) are listed next, also unranked, so that no heuristic is ever ranked above the optimum of its own
channels; the win rate and gap to the best of an optimum row compare it with the rank-1 solver like any row.

Gaps to references (DESIGN.md, "a reference per instance"), added only where the configuration has one:

* ``gap_opt``: mean over channels of ``optimum_i - u_i``, paired on the same channel indices, where the
  reference is the largest ``ok`` utility of the configuration's ``optimum`` rows on channel ``i``;
  ``gap_opt_rel`` the mean of ``(optimum_i - u_i) / |optimum_i|``;
* ``gap_bound``, ``gap_bound_rel``: the same against the smallest utility of the ``bound`` rows on channel
  ``i`` (the tightest bound: DPC capacity, a closed form). A bound computed on what the solvers saw (imperfect
  channel knowledge) has no utility, so no gap to it.

Both are over the channels where the row's run is ``ok`` and the reference exists (an infeasible answer has
no gap; its share shows in ``feasible_rate``); a reference row has none to itself (NaN).
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .channels.channelset import set_fingerprint
from .engine.scoring import STATUSES
from .solver import VALUE_TAGS

STAT_COLUMNS = [
    "rank", "solver", "tags", "budget", "n", "mean", "ci_low", "ci_high", "time_median_s", "time_p90_s", "batch",
    "iters_median", "feasible_rate", "max_violation", "stalled", "win_rate", "mean_gap",
] + [f"n_{s}" for s in STATUSES]
#: Added after :data:`STAT_COLUMNS` only when some run has an in-sample value.
IN_SAMPLE_COLUMNS = ["in_sample", "optimism", "optimism_ci_low", "optimism_ci_high"]
#: Prefix of the columns of run metrics (``metric_<name>``: the mean over ``ok`` runs), added when some run has one.
METRIC_PREFIX = "metric_"
#: Added after :data:`STAT_COLUMNS` only when some configuration has an ``optimum`` (resp. ``bound``) row.
GAP_OPT_COLUMNS = ["gap_opt", "gap_opt_rel"]
GAP_BOUND_COLUMNS = ["gap_bound", "gap_bound_rel"]


def runs_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Store rows as a DataFrame with a display label per (solver, options, version, time budget)."""
    df = pd.DataFrame(list(rows))
    if df.empty:
        return df
    secs = df["budget_seconds"].map(lambda s: "" if s is None or s != s else f"{s:g} s")
    df["budget"] = [", ".join(p for p in (b or "", s) if p) for b, s in zip(df["budget"], secs)]
    display = df["label"].astype(str)
    # Runs that differ only in time budget or solver version get the difference in their label.
    n_secs = df.groupby(["config_key", display])["budget_seconds"].transform(lambda x: x.astype(str).nunique())
    display = display.where(n_secs <= 1, display + " @" + secs)
    versions = df.groupby(["config_key", display])["solver_version"].transform("nunique")
    display = display.where(versions <= 1, display + " v" + df["solver_version"].astype(str))
    df["display"] = display
    return df


def leaderboard(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per (configuration, solver), ordered by configuration then rank."""
    df = runs_frame(rows)
    if df.empty:
        return pd.DataFrame(columns=["scenario"] + STAT_COLUMNS)
    out = []
    for _, cfg in df.groupby("config_key", sort=False):
        out.extend(_config_rows(cfg))
    lb = pd.DataFrame(out)
    param_cols = list(dict.fromkeys(k for p in lb["params"] for k in p))
    for k in param_cols:
        lb[k] = [p.get(k) for p in lb["params"]]
    lb = lb.sort_values(param_cols + ["seed", "_rank_sort"], kind="stable")
    lb["rank"] = lb["rank"].astype("Int64")
    extra = IN_SAMPLE_COLUMNS if lb["in_sample"].notna().any() else []
    extra = extra + sorted(c for c in lb.columns if c.startswith(METRIC_PREFIX))
    extra += GAP_OPT_COLUMNS if lb["_has_opt"].any() else []
    extra += GAP_BOUND_COLUMNS if lb["_has_bound"].any() else []
    cols = ["scenario"] + param_cols + ["seed", "channels"] + STAT_COLUMNS + extra + ["fingerprint", "config_key"]
    return lb[cols].reset_index(drop=True)


def _config_rows(cfg: pd.DataFrame) -> list[dict[str, Any]]:
    first = cfg.iloc[0]
    params = json.loads(first["params"])
    by_instance = cfg.drop_duplicates("instance").sort_values("instance")
    fp = set_fingerprint(list(by_instance["fingerprint"]))
    rows: list[dict[str, Any]] = []
    scores: dict[str, pd.Series] = {}
    refs: dict[str, list[pd.Series]] = {"opt": [], "bound": []}
    for disp, g in cfg.groupby("display", sort=False):
        ok = g[g["status"] == "ok"]
        u = ok["utility"].astype(float).dropna().to_numpy()  # a bound on an in-sample objective has none
        mean, lo, hi = _mean_ci(u)
        in_sample, optimism = _in_sample(ok)
        tags = str(g["tags"].iloc[0]).split(",")
        is_bound = bool(VALUE_TAGS & set(tags))  # bound or reference: a value row, unranked
        is_opt = "optimum" in tags and not is_bound
        feasible = (g["status"] == "ok").mean() if not is_bound else math.nan
        walls = g.loc[g["status"].isin(["ok", "infeasible", "timeout"]), "wall_s"].astype(float)
        viol = g["max_violation"].astype(float)
        row = {
            "scenario": first["scenario"],
            "params": params,
            "seed": int(first["seed"]) if first["seed"] is not None else None,
            "channels": first["channels"],
            "solver": disp,
            "tags": g["tags"].iloc[0],
            "budget": g["budget"].iloc[0] or "",
            "n": len(g),
            "mean": mean,
            "ci_low": lo,
            "ci_high": hi,
            "time_median_s": float(walls.median()) if len(walls) else math.nan,
            "time_p90_s": float(walls.quantile(0.9)) if len(walls) else math.nan,
            "batch": _batch_size(g),
            "iters_median": float(g["iterations"].astype(float).median()),
            "feasible_rate": feasible,
            "max_violation": float(viol.max()) if viol.notna().any() else math.nan,
            "in_sample": in_sample,
            "optimism": optimism[0],
            "optimism_ci_low": optimism[1],
            "optimism_ci_high": optimism[2],
            "stalled": _count_true(g["stalled"]) if "stalled" in g else 0,
            "fingerprint": fp,
            "config_key": first["config_key"],
            "_bound": is_bound,
            "_opt": is_opt,
        }
        for s in STATUSES:
            row[f"n_{s}"] = int((g["status"] == s).sum())
        row.update(_metric_means(ok))
        rows.append(row)
        s = g.set_index("instance")
        if not is_bound:
            scores[disp] = s["utility"].astype(float).where(s["status"] == "ok", -np.inf)
        if is_bound or is_opt:
            ref = s["utility"].astype(float).where(s["status"] == "ok")
            if is_opt:
                refs["opt"].append(ref)
            elif "bound" in tags:  # a reference value (not a bound) is no target for gap_bound
                refs["bound"].append(ref)
    ranked = sorted(
        (r for r in rows if not r["_bound"] and not r["_opt"]),
        key=lambda r: (-_nz(r["feasible_rate"]), -_nz(r["mean"]), r["solver"]),
    )
    for i, r in enumerate(ranked, start=1):
        r["rank"] = i
    best = ranked[0]["solver"] if ranked else None
    # per channel: the best certified optimum, the tightest bound (NaN where none has an ok answer)
    opt = pd.concat(refs["opt"], axis=1).max(axis=1) if refs["opt"] else None
    bound = pd.concat(refs["bound"], axis=1).min(axis=1) if refs["bound"] else None
    for r in rows:
        mine = scores.get(r["solver"])
        r["_has_opt"], r["_has_bound"] = opt is not None, bound is not None and bool(bound.notna().any())
        r["gap_opt"], r["gap_opt_rel"] = (math.nan, math.nan) if r["_opt"] or mine is None else reference_gap(
            mine, opt)
        r["gap_bound"], r["gap_bound_rel"] = (math.nan, math.nan) if mine is None else reference_gap(mine, bound)
    for r in rows:
        r["_rank_sort"] = r.get("rank", 0.5 if r["_opt"] else 0)
        if r["_opt"]:
            r["rank"] = None
        if r["_bound"] or best is None:
            r["rank"] = None
            r["win_rate"] = r["mean_gap"] = math.nan
        elif r["solver"] == best:
            r["win_rate"] = r["mean_gap"] = math.nan
        else:
            r["win_rate"], r["mean_gap"] = paired(scores[r["solver"]], scores[best])
    return rows


def _in_sample(ok: pd.DataFrame) -> tuple[float, tuple[float, float, float]]:
    """Mean in-sample value and the optimism (mean of ``in_sample - utility``, 95% CI) of ``ok`` runs that
    have one (NaN where none has)."""
    if "in_sample" not in ok:
        return math.nan, (math.nan, math.nan, math.nan)
    ins = ok["in_sample"].astype(float).dropna()
    both = ok[ok["in_sample"].notna() & ok["utility"].notna()]
    gap = both["in_sample"].astype(float).to_numpy() - both["utility"].astype(float).to_numpy()
    return (float(ins.mean()) if len(ins) else math.nan), _mean_ci(gap)
def _metric_means(ok: pd.DataFrame) -> dict[str, float]:
    """``metric_<name>``: the mean of each recorded run metric over the ``ok`` runs that have it."""
    if "metrics" not in ok:
        return {}
    values: dict[str, list[float]] = {}
    for text in ok["metrics"].dropna():
        for name, v in (json.loads(text) if isinstance(text, str) else text).items():
            values.setdefault(METRIC_PREFIX + name, []).append(float(v))
    return {name: float(np.mean(v)) for name, v in values.items()}


def _batch_size(g: pd.DataFrame) -> int:
    """The largest batch among the runs (rows stored before the column existed count as unbatched)."""
    sizes = pd.to_numeric(g["batch"], errors="coerce").dropna() if "batch" in g else pd.Series(dtype=float)
    return int(sizes.max()) if len(sizes) else 1


def _count_true(values: pd.Series) -> int:
    """How many entries are true (1); unknown (NULL) entries count as not stalled."""
    return int((pd.to_numeric(values, errors="coerce").fillna(0) != 0).sum())


def _nz(x: float) -> float:
    return -math.inf if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _mean_ci(u: np.ndarray) -> tuple[float, float, float]:
    if u.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(u.mean())
    if u.size < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.975, u.size - 1) * u.std(ddof=1) / math.sqrt(u.size))
    return mean, mean - half, mean + half


def reference_gap(u: pd.Series, ref: pd.Series | None) -> tuple[float, float]:
    """Mean of ``ref_i - u_i`` and of ``(ref_i - u_i) / |ref_i|`` over the channels ``i`` where both are finite
    (``u`` is minus infinity where a run is not ``ok``, ``ref`` NaN where there is no reference)."""
    if ref is None:
        return math.nan, math.nan
    u, ref = u.align(ref, join="inner")
    both = np.isfinite(u.to_numpy()) & np.isfinite(ref.to_numpy())
    if not both.any():
        return math.nan, math.nan
    diff = ref.to_numpy()[both] - u.to_numpy()[both]
    scale = np.abs(ref.to_numpy()[both])
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(scale > 0, diff / scale, np.nan)
    return float(diff.mean()), (float(np.nanmean(rel)) if np.isfinite(rel).any() else math.nan)


def paired(a: pd.Series, b: pd.Series) -> tuple[float, float]:
    """Win rate of ``a`` over ``b`` (ties half) and mean gap where both are finite, on shared instances."""
    a, b = a.align(b, join="inner")
    if a.empty:
        return math.nan, math.nan
    av, bv = a.to_numpy(), b.to_numpy()
    both_inf = np.isneginf(av) & np.isneginf(bv)
    with np.errstate(invalid="ignore"):
        tol = 1e-9 * np.maximum(1.0, np.abs(np.where(np.isfinite(bv), bv, 0.0)))
        tie = both_inf | (np.abs(av - bv) <= tol)
        win = ~tie & (av > bv)
    finite = np.isfinite(av) & np.isfinite(bv)
    gap = float(np.mean(av[finite] - bv[finite])) if finite.any() else math.nan
    return float(np.mean(win + 0.5 * tie)), gap
