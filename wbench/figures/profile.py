"""Performance profiles (Dolan & Moré 2002) and the fixed-target ECDF of the time to a target utility.

Dolan, E. D. and Moré, J. J. (2002), "Benchmarking optimization software with performance profiles",
Mathematical Programming 91(2), 201-213.

The instances are the (configuration, channel) pairs of a scenario. On each instance the target is a
fraction ``target`` (default 0.99) of a reference utility: by default the best utility any solver (bounds
excluded) reached on that instance, at any checkpoint or in its answer; or the ``ok`` answer of a named
solver (which may be a bound, e.g. ``dpc-bound``); or, with the keyword ``optimum``, the certified optimum
of the instance (the largest ``ok`` utility of the solvers tagged ``optimum``, e.g. ``brb``), and with
``bound`` the tightest bound (the smallest utility of the solvers tagged ``bound``); a solver whose label is
one of these words is meant by it. For a target ``u*`` the threshold is
``u* - (1 - target) |u*|``. A solver's time on an instance is the time of the first point of its
best-so-far trace (:func:`wbench.figures.data.best_so_far`: the feasible checkpoints and the returned
answer at the wall time) whose utility reaches the threshold; a run that is not ``ok``, that never reaches
it, or that does not exist (a solver that declined the configuration; the legend then says on how many
instances it ran) counts as infinity. With a named reference, instances where the reference has no
``ok`` answer are left out (there is no target).

What it shows: left, the performance profile ``rho_s(tau) = |{p : t_{p,s} / min_s' t_{p,s'} <= tau}| / n``
on a log2 tau axis (``rho_s(1)`` is the share of instances where ``s`` was fastest, the right end its
success rate); right, the fixed-target ECDF, the fraction of instances solved within an absolute time.
Both curves are non-decreasing and end at the solver's success rate (share of instances on which it
reached the target at all).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..params import ParamError
from . import data as D

#: Times below this are read as this (a ratio needs a positive denominator).
TIME_FLOOR = 1e-9


def _check_target(target: float) -> float:
    if not (isinstance(target, (int, float)) and 0 < float(target) <= 1):
        raise ParamError(f"--target must be in (0, 1], got {target}")
    return float(target)


def solve_times(rows: Sequence[Mapping[str, Any]], target: float = 0.99,
                reference: str | None = None) -> pd.DataFrame:
    """Time to target per (instance, solver): columns ``config_key``, ``instance``, ``solver``,
    ``ref_utility``, ``threshold``, ``time`` [s] (``inf`` if never reached or not ``ok``). Bounds are not
    profiled. ``attrs``: ``dropped`` (instances without a reference answer), ``solvers``."""
    target = _check_target(target)
    runs = D.runs_table(rows)
    labels = list(dict.fromkeys(runs["display"]))
    by_tag = reference in REFERENCE_TAGS and reference not in labels
    if reference is not None and reference not in labels and not by_tag:
        raise ParamError(f"--reference {reference}: no such solver in scenario {runs['scenario'].iloc[0]}; "
                         f"valid: {', '.join(labels)}")
    solvers = [s for s in D.solver_order(runs) if not bool(runs.loc[runs["display"] == s, "is_bound"].iloc[0])]
    if not solvers:
        raise ParamError("nothing to plot: only bounds in these runs, no solver to profile")
    curves: dict[tuple[str, int, str], tuple[np.ndarray, np.ndarray]] = {}
    for r in runs.itertuples():
        curves[(r.config_key, int(r.instance), r.display)] = D.best_so_far(r.trace_list, r.wall_s, r.utility,
                                                                            r.status)
    ref_answer = {}
    if by_tag:
        ref_answer = tag_reference(runs, str(reference))
        if not ref_answer:
            raise ParamError(f"--reference {reference}: no solver tagged {reference} has an ok answer in "
                             f"scenario {runs['scenario'].iloc[0]}")
    elif reference is not None:
        ok = runs[(runs["display"] == reference) & (runs["status"] == "ok")]
        ref_answer = {(k, int(i)): float(u) for k, i, u in zip(ok["config_key"], ok["instance"], ok["utility"])}
    out, dropped = [], 0
    problems = runs[["config_key", "instance"]].drop_duplicates()
    order = {k: i for i, k in enumerate(D.config_order(runs))}
    problems = problems.assign(o=problems["config_key"].map(order)).sort_values(["o", "instance"])
    for key, inst in zip(problems["config_key"], problems["instance"]):
        inst = int(inst)
        if reference is not None:
            ref = ref_answer.get((key, inst))
            if ref is None:
                dropped += 1
                continue
        else:
            reached = [curves[(key, inst, s)][1][-1] for s in solvers
                       if (key, inst, s) in curves and len(curves[(key, inst, s)][1])]
            ref = max(reached) if reached else math.nan
        thr = ref - (1.0 - target) * abs(ref) if math.isfinite(ref) else math.nan
        tol = 1e-12 * max(1.0, abs(ref)) if math.isfinite(ref) else 0.0
        for s in solvers:
            t, v = curves.get((key, inst, s), (np.empty(0), np.empty(0)))
            hit = np.nonzero(v >= thr - tol)[0] if math.isfinite(thr) else []
            time = max(float(t[hit[0]]), TIME_FLOOR) if len(hit) else math.inf
            out.append({"config_key": key, "instance": inst, "solver": s, "ref_utility": ref,
                        "threshold": thr, "time": time, "ran": (key, inst, s) in curves})
    if not out:
        raise ParamError(f"nothing to plot: the reference {reference} has no ok answer on any instance")
    df = pd.DataFrame(out)
    df.attrs.update(dropped=dropped, solvers=solvers)
    return df


#: ``--reference`` keywords: the per-instance reference from the solvers with this tag.
REFERENCE_TAGS = ("optimum", "bound")


def tag_reference(runs: pd.DataFrame, tag: str) -> dict[tuple[str, int], float]:
    """Per (configuration, instance): the largest ``ok`` utility of the runs tagged ``optimum`` (the best
    certified optimum), or the smallest of those tagged ``bound`` (the tightest bound)."""
    tagged = runs[[tag in str(t).split(",") for t in runs["tags"]]]
    tagged = tagged[(tagged["status"] == "ok") & tagged["utility"].notna()]
    agg = tagged.groupby(["config_key", "instance"])["utility"].agg("max" if tag == "optimum" else "min")
    return {(str(k), int(i)): float(u) for (k, i), u in agg.items()}


def performance_ratios(times: pd.DataFrame) -> pd.DataFrame:
    """``times`` with ``ratio`` = time / best time on the instance (``inf`` where not solved)."""
    best = times.groupby(["config_key", "instance"])["time"].transform("min")
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(np.isfinite(times["time"]) & np.isfinite(best), times["time"] / best, np.inf)
    out = times.assign(ratio=ratio)
    out.attrs.update(times.attrs)
    return out


def _curve(values: np.ndarray, n: int, start: float) -> tuple[list[float], list[float]]:
    """Points of the step function x -> |{v <= x}| / n from ``start`` to the largest finite value."""
    finite = np.sort(values[np.isfinite(values)])
    xs = [start] + [float(x) for x in np.unique(finite) if x > start]
    ys = [float(np.searchsorted(finite, x, side="right")) / n for x in xs]
    return xs, ys


def profile_data(rows: Sequence[Mapping[str, Any]], target: float = 0.99,
                 reference: str | None = None) -> pd.DataFrame:
    """The curves: columns ``curve`` (``performance``: x = ratio tau; ``ecdf``: x = time to target [s]),
    ``solver``, ``x``, ``fraction`` (of instances), one row per step of each curve, in increasing x.
    ``attrs``: ``success`` (solver -> share of instances solved, where every curve ends), ``n_instances``,
    ``target``, ``reference``, ``dropped``, ``caption``, ``channels``, ``budgets``."""
    target = _check_target(target)
    times = performance_ratios(solve_times(rows, target, reference))
    solvers = times.attrs["solvers"]
    n = int(times[["config_key", "instance"]].drop_duplicates().shape[0])
    finite_t = times.loc[np.isfinite(times["time"]), "time"]
    if finite_t.empty:
        raise ParamError(f"nothing to plot: no solver reached {target:g} of the reference on any instance")
    t0 = float(finite_t.min())
    out = []
    success, ran = {}, {}
    for s in solvers:
        g = times[times["solver"] == s]
        success[s] = float(np.isfinite(g["time"]).sum()) / n
        ran[s] = int(g["ran"].sum())
        for curve, col, start in (("performance", "ratio", 1.0), ("ecdf", "time", t0)):
            xs, ys = _curve(g[col].to_numpy(dtype=float), n, start)
            out.extend({"curve": curve, "solver": s, "x": x, "fraction": y} for x, y in zip(xs, ys))
    df = pd.DataFrame(out)
    runs = D.runs_table(rows)
    df.attrs.update(
        scenario=str(runs["scenario"].iloc[0]), success=success, ran=ran, n_instances=n, target=target,
        reference=reference, dropped=int(times.attrs.get("dropped", 0)), caption=D.caption(rows),
        channels=D.channels_text(runs), budgets=D.budgets_text(runs, solvers),
        n_configs=runs["config_key"].nunique(),
        solvers=D.solver_order(runs),
    )
    return df


def draw_profile(data: pd.DataFrame) -> Any:
    """Two panels: the performance profile (log2 tau) and the fixed-target ECDF (log time)."""
    plt = D.pyplot()
    solvers = list(dict.fromkeys(data["solver"]))
    colours = D.palette(list(data.attrs.get("solvers", [])) + solvers)
    success = data.attrs["success"]
    ran = data.attrs.get("ran", {})
    n = data.attrs["n_instances"]

    def label(s: str) -> str:
        missing = f", ran on {ran[s]}/{n}" if ran.get(s, n) < n else ""
        return f"{s} ({success[s]:.0%} solved{missing})"

    fig, axes = plt.subplots(1, 2, figsize=(10.0, 3.7))
    for ax, curve in zip(axes, ("performance", "ecdf")):
        sub = data[data["curve"] == curve]
        right = float(sub["x"].max()) * (1.6 if curve == "performance" else 1.6)
        for s in solvers:
            g = sub[sub["solver"] == s]
            xs = list(g["x"]) + [right]
            ys = list(g["fraction"]) + [float(g["fraction"].iloc[-1])]
            ax.step(xs, ys, where="post", lw=1.6, color=colours[s], label=label(s))
        ax.set_ylim(-0.02, 1.04)
        ax.set_xlim(sub["x"].min(), right)
    axes[0].set_xscale("log", base=2)
    D.plain_log_ticks(axes[0].xaxis)
    axes[0].set_xlabel("performance ratio τ = time / best time on the instance")
    axes[0].set_ylabel("fraction of instances with ratio ≤ τ")
    axes[0].set_title("performance profile (Dolan & Moré 2002)", fontsize=9.5)
    axes[1].set_xscale("log")
    D.log_ticks(axes[1].xaxis, *axes[1].get_xlim())
    axes[1].set_xlabel("time to target [s]")
    axes[1].set_ylabel("fraction of instances solved")
    axes[1].set_title("fixed-target ECDF", fontsize=9.5)
    D.legend_outside(fig, axes[0], title="solver (share solved)")
    ref = data.attrs.get("reference")
    tgt = data.attrs["target"]
    what = (f"{tgt:.0%} of the certified optimum" if ref == "optimum" else f"{tgt:.0%} of the tightest bound"
            if ref == "bound" else f"{tgt:.0%} of {ref}'s utility" if ref
            else f"{tgt:.0%} of the best utility any solver reached")
    dropped = data.attrs.get("dropped", 0)
    extra = f"; {dropped} instances without a reference answer left out" if dropped else ""
    D.finish(
        fig,
        f"{data.attrs['caption']}\ntarget: {what} on each instance; {n} instances "
        f"({data.attrs['channels']}){extra}; failed or never reached = not solved",
        data.attrs.get("budgets", ""),
    )
    return fig
