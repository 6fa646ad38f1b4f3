"""The ``isac`` scenario's own figure kinds (hook ``wbench_register_figures``; seed 000, Figs. 6 and 7).

* ``tradeoff`` (:func:`tradeoff_data`): ESR against sum probing power over the ``lambda_r`` sweep (Cerna Loli &
  Clerckx, Fig. 6), one curve per solver and scheme (and per other swept parameter, e.g. ``se2``), the means over
  the realisations of the run metrics ``esr`` and ``probing`` with 95% Student-t intervals on both axes.
* ``beampattern`` (:func:`beampattern_data`): ``a(theta)^H P P^H a(theta)`` over the azimuth of stored solutions
  (Fig. 7), split by stream group (the global common ``p_c``, the group commons, the privates; the total is their
  sum), the users' group azimuths and the targets marked (rows of ``group`` ``user group`` / ``target`` with no
  value). ``--solver`` picks the solver (default: the first with stored solutions), ``--run`` one run by its key
  (a unique prefix); default: per scheme, the run of the largest ``lambda_r`` on realisation 0.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..params import ParamError
from ..rsma import RsmaLayout
from .hrsma import parse_azimuths, user_groups
from .isac import beampattern, parse_targets, steering_vectors

STREAM_GROUPS = ("total", "common", "group commons", "privates")


def _ci(values: np.ndarray) -> tuple[float, float, float]:
    from ..figures.data import tinv

    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if v.size < 2:
        return m, m, m
    h = tinv(0.95, v.size - 1) * float(v.std(ddof=1)) / math.sqrt(v.size)
    return m, m - h, m + h


def tradeoff_data(rows: Sequence[Mapping[str, Any]], db: str | Path | None = None) -> pd.DataFrame:
    """Per curve (solver label, scheme, other varying parameters) and ``lambda_r``: the number of ok runs with
    metrics and the mean ESR and probing power with their 95% Student-t intervals (columns ``esr``,
    ``esr_lo``, ``esr_hi``, ``probing``, ``probing_lo``, ``probing_hi``)."""
    from ..figures import data as D

    runs = D.runs_table(rows)
    if str(runs["scenario"].iloc[0]) != "isac":
        raise ParamError("the tradeoff figure needs isac runs")
    ok = runs[(runs["status"] == "ok") & runs["metrics"].notna()]
    if ok.empty:
        raise ParamError("no ok isac runs with recorded metrics to plot")
    varying, _ = D.varying_params(runs)
    others = [k for k in varying if k not in ("lambda_r", "scheme")]
    out = []
    keyed: dict[tuple, list] = {}
    for _, r in ok.iterrows():
        p = r["p"]
        m = json.loads(r["metrics"]) if isinstance(r["metrics"], str) else dict(r["metrics"])
        curve = D.config_label(p, others) if others else ""
        keyed.setdefault((str(r["display"]), str(p["scheme"]), curve, float(p["lambda_r"])), []).append(
            (m["esr"], m["probing"]))
    for (label, scheme, curve, lam), vals in sorted(keyed.items()):
        v = np.array(vals)
        e, elo, ehi = _ci(v[:, 0])
        pr, plo, phi = _ci(v[:, 1])
        out.append({"solver": label, "scheme": scheme, "curve": curve, "lambda_r": lam, "n": len(vals),
                    "esr": e, "esr_lo": elo, "esr_hi": ehi, "probing": pr, "probing_lo": plo, "probing_hi": phi})
    df = pd.DataFrame(out)
    if df["lambda_r"].nunique() < 2:
        raise ParamError("the tradeoff figure needs runs at two or more lambda_r values (--sweep lambda_r=...)")
    return df


def draw_tradeoff(df: pd.DataFrame) -> Any:
    """One panel per scheme (shared axes, so H-RSMA and SDMA read side by side), one curve per solver (and
    other varying parameters), coloured alike in every panel."""
    from ..figures import data as D

    plt = D.pyplot()
    schemes = sorted(df["scheme"].unique(), key=lambda s: (s != "hrsma", s))
    fig, axes = plt.subplots(1, len(schemes), figsize=(5.2 * len(schemes), 4.6), sharex=True, sharey=True,
                             squeeze=False)
    series = list(dict.fromkeys(zip(df["solver"], df["curve"])))
    colours = D.palette([f"{s} {c}".strip() for s, c in series])
    for ax, scheme in zip(axes[0], schemes):
        for solver, curve in series:
            g = df[(df["solver"] == solver) & (df["scheme"] == scheme) & (df["curve"] == curve)]
            if g.empty:
                continue
            g = g.sort_values("lambda_r")
            name = " ".join(x for x in (solver, curve) if x)
            ax.errorbar(g["probing"], g["esr"],
                        xerr=[g["probing"] - g["probing_lo"], g["probing_hi"] - g["probing"]],
                        yerr=[g["esr"] - g["esr_lo"], g["esr_hi"] - g["esr"]], marker="o",
                        color=colours[name], capsize=2, label=name)
        ax.set_title(scheme)
        ax.set_xlabel("sum probing power at the targets")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("ESR (held-out draws) [bit/s/Hz]")
    handles, labels = {}, {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    D.legend_outside(fig, axes[0][-1], list(handles.values()), list(handles))
    lams = sorted(df["lambda_r"].unique())
    D.finish(fig, "ESR vs probing power over the radar weight",
             f"lambda_r from {lams[0]:.3g} to {lams[-1]:.3g}; means over realisations, 95% Student-t intervals")
    return fig


def _pick_runs(sols: pd.DataFrame, run: str | None) -> pd.DataFrame:
    if run is not None:
        hit = sols[sols["run_key"].astype(str).str.startswith(str(run))]
        if len(hit) != 1:
            raise ParamError(f"--run {run}: {len(hit)} stored isac solutions match (give a unique run-key prefix)")
        return hit
    picked = []
    for scheme, g in sols.groupby(sols["p"].map(lambda p: p["scheme"]), sort=True):
        lam = g["p"].map(lambda p: float(p["lambda_r"]))
        g = g[lam == lam.max()].sort_values("instance")
        picked.append(g.iloc[:1])
    return pd.concat(picked)


def beampattern_data(rows: Sequence[Mapping[str, Any]], db: str | Path, solver: str | None = None,
                     run: str | None = None, points: int = 721) -> pd.DataFrame:
    """Columns ``run_key, solver, scheme, lambda_r, instance, group, theta, value``: the beampattern of each
    picked solution per stream group over ``theta in [-pi, pi]`` (``points`` samples), and marker rows
    (``group`` ``user group`` / ``target``, ``value`` NaN) at the azimuths."""
    from .. import api

    isac = [r for r in rows if r.get("scenario") == "isac" and "bound" not in str(r.get("tags", "")).split(",")]
    if not isac:
        raise ParamError("the beampattern figure needs isac runs")
    labels = sorted({str(r["label"]) for r in isac if solver is None or solver in (r["label"], r["solver"])})
    if not labels:
        raise ParamError(f"no isac runs of solver {solver!r}; stored: "
                         f"{', '.join(sorted({str(r['label']) for r in isac}))}")
    try:
        sols = api.solutions(db, "isac", labels[0])
    except Exception as exc:  # StoreError / ParamError: one line
        raise ParamError(str(exc).splitlines()[0]) from None
    if sols.empty:
        raise ParamError(f"no stored isac solutions of {solver}")
    sols = sols.assign(p=[json.loads(p) if isinstance(p, str) else dict(p) for p in sols["params"]])
    theta = np.linspace(-np.pi, np.pi, points)
    out = []
    for _, r in _pick_runs(sols, run).iterrows():
        p = r["p"]
        lay = RsmaLayout(p["scheme"], user_groups(p["K"], p["G"]))
        P = np.asarray(r["x"]["P"])
        per = beampattern(P, steering_vectors(p["Nt"], theta, p["steering"]))  # (points, S)
        parts = {"common": per[:, [lay.common]] if lay.has_common else None,
                 "group commons": per[:, 1:1 + lay.G] if lay.has_group_commons else None,
                 "privates": per[:, lay.first_private:]}
        base = {"run_key": str(r["run_key"]), "solver": str(r["label"]), "scheme": p["scheme"],
                "lambda_r": float(p["lambda_r"]), "instance": int(r["instance"])}
        curves = {"total": per.sum(axis=1), **{k: v.sum(axis=1) for k, v in parts.items() if v is not None}}
        for group, values in curves.items():
            out += [{**base, "group": group, "theta": float(t), "value": float(v)} for t, v in zip(theta, values)]
        for group, angles in (("user group", parse_azimuths(p["azimuths"], p["G"])),
                              ("target", parse_targets(p["targets"]))):
            out += [{**base, "group": group, "theta": float(a), "value": float("nan")} for a in angles]
    return pd.DataFrame(out)


def draw_beampattern(df: pd.DataFrame) -> Any:
    from ..figures import data as D

    plt = D.pyplot()
    keys = list(dict.fromkeys(df["run_key"]))
    fig, axes = plt.subplots(len(keys), 1, figsize=(7.5, 2.9 * len(keys)), squeeze=False, sharex=True)
    styles = {"total": ("k", "-"), "common": ("tab:red", "-"), "group commons": ("tab:green", "--"),
              "privates": ("tab:blue", ":")}
    for ax, key in zip(axes[:, 0], keys):
        g = df[df["run_key"] == key]
        for group in STREAM_GROUPS:
            c = g[g["group"] == group]
            if not c.empty:
                colour, ls = styles[group]
                ax.plot(np.degrees(c["theta"]), c["value"], color=colour, linestyle=ls, label=group)
        for a in g.loc[g["group"] == "target", "theta"]:
            ax.axvline(np.degrees(a), color="tab:orange", linewidth=1.2, label="target")
        for a in g.loc[g["group"] == "user group", "theta"]:
            ax.axvline(np.degrees(a), color="grey", linewidth=0.8, linestyle="-.", label="user group")
        r0 = g.iloc[0]
        ax.set_title(f"{r0['solver']} {r0['scheme']}, lambda_r = {r0['lambda_r']:.3g}, realisation "
                     f"{r0['instance']}", fontsize=9)
        ax.set_ylabel("a^H P P^H a")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("azimuth [deg]")
    handles, labels = D.unique_legend(axes[:, 0])
    D.legend_outside(fig, axes[0, 0], handles, labels)
    D.finish(fig, "Beampattern per stream group", "users' group azimuths dash-dotted, targets orange")
    return fig


def register_figures(register: Any) -> None:
    from ..figures.plugin import FigureKind

    register(FigureKind("tradeoff", ("isac",), tradeoff_data, draw_tradeoff,
                        "ESR against sum probing power over the lambda_r sweep, 95% intervals (seed 000 Fig. 6)"))
    register(FigureKind("beampattern", ("isac",), beampattern_data, draw_beampattern,
                        "a(theta)^H P P^H a(theta) of stored solutions per stream group (seed 000 Fig. 7)",
                        options=("solver", "run")))
