"""Loading runs from a results database and what every figure shares: parameters, labels, traces.

The figure modules take the store's rows (``Store(path).rows(scenario)``: one dict per run) and turn them
into small DataFrames; :func:`runs_table` is the common starting point (the leaderboard's
:func:`~wbench.ranking.runs_frame`, so solver labels are the leaderboard's ``display`` labels, plus
the parsed parameters, a bound flag and the parsed trace).

Anytime traces. The harness stores, per run, the checkpoints ``[time_s, iteration, utility, feasible]``
reported by the solver, with time measured on the solver's own clock (checkpoint copying excluded, a
batched solver's times being shares of the batch's time like its wall time) and utility and feasibility
scored after the clock stopped. :func:`best_so_far` turns a run into a non-decreasing step function of
time: the feasible checkpoints plus the returned answer at the run's wall time (when the run is ``ok``),
then a running maximum. A run that is not ``ok`` (infeasible, error, timeout, nan) has no value at any
time, the same rule as the leaderboard's mean, which counts ``ok`` runs only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..params import ParamError, format_value
from ..solver import VALUE_TAGS

#: Unit of every built-in utility (sum rates, weighted sum rates).
UTILITY_UNIT = "bit/s/Hz"
TIME_UNIT = "s"
#: Extensions ``wbench plot --out`` and :func:`save_figure` accept.
EXTENSIONS = (".png", ".pdf", ".svg")
#: Columns of the store that identify a configuration, not a parameter.
_NOT_PARAMS = ("seed", "channels")
#: Axis labels for the built-in scenarios' parameters (others: the name, with a unit from its suffix).
PARAM_LABELS = {
    "snr_db": "SNR P/σ² [dB]",
    "pt_dbm": "transmit power $P_t$ [dBm]",
    "noise_dbm": "noise power σ² [dBm]",
    "Nt": "BS antennas $N_t$",
    "K": "users $K$",
    "B": "RIS elements $B$",
    "architecture": "RIS architecture",
    "group_size": "group size",
    "d_br": "BS-RIS distance [m]",
    "d_ru": "RIS-user distance [m]",
}
DPI = 120


# -- loading -------------------------------------------------------------------------------------------
def scenarios_in(db: str | Path) -> list[str]:
    """Scenarios with at least one stored run in ``db`` (a one-line :class:`ParamError` if there is no db)."""
    from ..store import Store

    path = Path(db)
    if not path.is_file():
        raise ParamError(f"no results database at {db} (run 'wbench compare' first, or pass --db)")
    with Store(path) as store:
        names = [r[0] for r in store.conn.execute("SELECT DISTINCT scenario FROM runs ORDER BY scenario")]
    if not names:
        raise ParamError(f"{db} holds no results (run 'wbench compare --db {db}' first)")
    return names


def load_rows(db: str | Path, scenario: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """(scenario, its stored rows). Without ``scenario`` the db must hold exactly one."""
    from ..store import Store

    names = scenarios_in(db)
    if scenario is None:
        if len(names) > 1:
            raise ParamError(f"{db} holds several scenarios ({', '.join(names)}); pick one with --scenario")
        scenario = names[0]
    elif scenario not in names:
        raise ParamError(f"{db} holds no results for scenario {scenario!r}; it holds: {', '.join(names)}")
    with Store(db) as store:
        return scenario, store.rows(scenario)


def runs_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The runs as a DataFrame: the leaderboard's ``runs_frame`` (``display`` label per solver, budget
    with the time budget) plus ``p`` (parameters as a dict), ``is_bound`` and ``trace_list``."""
    from ..ranking import runs_frame

    if not rows:
        raise ParamError("no runs to plot")
    scen = {r["scenario"] for r in rows}
    if len(scen) > 1:
        raise ParamError(f"runs of several scenarios ({', '.join(sorted(scen))}) in one figure; pick one")
    df = runs_frame(list(rows))
    df["p"] = [json.loads(p) if isinstance(p, str) else dict(p) for p in df["params"]]
    df["is_bound"] = [bool(VALUE_TAGS & set(str(t).split(","))) for t in df["tags"]]
    df["trace_list"] = [_parse_trace(t) for t in df["trace"]]
    df["utility"] = pd.to_numeric(df["utility"], errors="coerce")
    df["wall_s"] = pd.to_numeric(df["wall_s"], errors="coerce")
    return df


def _parse_trace(t: Any) -> list[list[Any]]:
    if t is None or (isinstance(t, float) and math.isnan(t)):
        return []
    if isinstance(t, str):
        return json.loads(t) if t.strip() else []
    return list(t)


# -- parameters ----------------------------------------------------------------------------------------
def config_order(runs: pd.DataFrame) -> list[str]:
    """Configuration keys ordered like the leaderboard (by parameter values, numbers numerically)."""
    first = runs.drop_duplicates("config_key")
    keys = list(first["config_key"])
    params = list(first["p"])
    names = list(dict.fromkeys(k for p in params for k in p))

    def sort_key(i: int) -> tuple:
        out = []
        for k in names:
            v = params[i].get(k)
            out.append((0, float(v), "") if _is_number(v) else (1, 0.0, str(v)))
        return tuple(out)

    return [keys[i] for i in sorted(range(len(keys)), key=sort_key)]


def varying_params(runs: pd.DataFrame) -> tuple[list[str], dict[str, Any]]:
    """(parameters that differ between configurations, constant parameter -> value)."""
    first = runs.drop_duplicates("config_key")
    names = list(dict.fromkeys(k for p in first["p"] for k in p))
    varying, constant = [], {}
    for k in names:
        values = {format_value(p.get(k)) for p in first["p"]}
        if len(values) > 1:
            varying.append(k)
        else:
            constant[k] = first["p"].iloc[0].get(k)
    return varying, constant


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def is_numeric(values: Iterable[Any]) -> bool:
    """Whether every value is a number (not a bool): such a parameter gets a numeric axis."""
    values = list(values)
    return bool(values) and all(_is_number(v) for v in values)


def is_size(values: Iterable[Any]) -> bool:
    """Whether every value is a positive integer (antennas, users, elements): a problem size."""
    values = list(values)
    return is_numeric(values) and all(float(v) > 0 and float(v).is_integer() for v in values)


def param_label(name: str) -> str:
    """Axis label with the unit, e.g. ``SNR P/σ² [dB]``."""
    if name in PARAM_LABELS:
        return PARAM_LABELS[name]
    for suffix, unit in (("_dbm", "dBm"), ("_db", "dB"), ("_s", "s"), ("_m", "m")):
        if name.endswith(suffix):
            return f"{name} [{unit}]"
    return name


def config_label(params: Mapping[str, Any], names: Sequence[str]) -> str:
    """``name=value`` of the given parameters, e.g. ``snr_db=20``; ``all`` when there are none."""
    return ", ".join(f"{k}={format_value(params.get(k))}" for k in names) or "all"


def choose_x(runs: pd.DataFrame, x: str | None, what: str = "sweep") -> tuple[str, list[str]]:
    """The parameter on the x axis (``x``, else the first numeric varying one, else the first varying
    one) and the other varying parameters (which become facets)."""
    varying, constant = varying_params(runs)
    scenario = runs["scenario"].iloc[0]
    if x is not None:
        if x in varying:
            return x, [v for v in varying if v != x]
        if x in constant:
            raise ParamError(f"--x {x}: {x} does not vary in scenario {scenario} (it is {format_value(constant[x])} "
                             f"in every configuration); varying: {', '.join(varying) or 'none'}")
        raise ParamError(f"--x {x}: no parameter {x!r} in scenario {scenario}; "
                         f"varying: {', '.join(varying) or 'none'}")
    if not varying:
        raise ParamError(f"nothing to plot: no parameter varies between the configurations of scenario {scenario} "
                         f"(a {what} needs one, e.g. 'wbench compare ... --sweep KEY=V1,V2')")
    first = runs.drop_duplicates("config_key")
    numeric = [v for v in varying if is_numeric(p.get(v) for p in first["p"])]
    chosen = numeric[0] if numeric else varying[0]
    return chosen, [v for v in varying if v != chosen]


# -- captions ----------------------------------------------------------------------------------------
def caption(rows: Sequence[Mapping[str, Any]]) -> str:
    """The leaderboard's caption (constant parameters, channel seed, channels per configuration)."""
    from ..ranking import leaderboard
    from ..render import caption as lb_caption

    return lb_caption(leaderboard(rows))


def channel_counts(runs: pd.DataFrame) -> tuple[int, int]:
    """(fewest, most) channel realisations per configuration."""
    n = runs.groupby("config_key")["instance"].nunique()
    return int(n.min()), int(n.max())


def channels_text(runs: pd.DataFrame) -> str:
    lo, hi = channel_counts(runs)
    per = f"{hi}" if lo == hi else f"{lo}-{hi}"
    n_cfg = runs["config_key"].nunique()
    return f"{per} channels per configuration" + (f" x {n_cfg} configurations" if n_cfg > 1 else "")


def budgets(runs: pd.DataFrame) -> dict[str, str]:
    """Solver label -> its budget text (iterations, starts, time budget), for those that have one."""
    out: dict[str, str] = {}
    for disp, g in runs.groupby("display", sort=False):
        b = str(g["budget"].iloc[0] or "")
        if b:
            out[str(disp)] = b
    return out


def budgets_text(runs: pd.DataFrame, solvers: Sequence[str] | None = None, width: int = 10_000) -> str:
    """``budgets: wmmse max_iter=100,...; adam iters=300`` wrapped to lines of about ``width`` characters."""
    b = budgets(runs)
    order = [s for s in solver_order(runs) if s in b]
    items = [f"{k}: {b[k]}" for k in order if solvers is None or k in solvers]
    if not items:
        return ""
    lines, cur = [], "budgets: "
    for it in items:
        piece = it + "; "
        if len(cur) + len(piece) > width and cur.strip() != "budgets:":
            lines.append(cur.rstrip("; "))
            cur = "  "
        cur += piece
    lines.append(cur.rstrip("; "))
    return "\n".join(lines)


def solver_order(runs: pd.DataFrame) -> list[str]:
    """Solver labels: bounds first, then by mean utility over all ok runs (best first)."""
    ok = runs[runs["status"] == "ok"]
    mean = ok.groupby("display")["utility"].mean()
    labels = list(dict.fromkeys(runs["display"]))
    bound = dict(zip(runs["display"], runs["is_bound"]))
    return sorted(labels, key=lambda s: (not bound[s], -float(mean.get(s, -np.inf)), s))


# -- traces ------------------------------------------------------------------------------------------
def best_so_far(trace: Sequence[Sequence[Any]], wall_s: float | None, utility: float | None,
                status: str) -> tuple[np.ndarray, np.ndarray]:
    """A run's anytime curve as (times, values): the feasible checkpoints and, for an ``ok`` run, the
    returned answer at its wall time, sorted by time, with the running maximum taken (never decreasing).
    A run that is not ``ok`` gets no points."""
    if status != "ok":
        return np.empty(0), np.empty(0)
    pts = [(float(c[0]), float(c[2])) for c in trace
           if len(c) >= 3 and c[2] is not None and (len(c) < 4 or bool(c[3])) and math.isfinite(float(c[2]))]
    if utility is not None and wall_s is not None and math.isfinite(utility) and math.isfinite(wall_s):
        pts.append((float(wall_s), float(utility)))
    if not pts:
        return np.empty(0), np.empty(0)
    pts.sort(key=lambda p: p[0])
    t = np.array([p[0] for p in pts])
    v = np.maximum.accumulate(np.array([p[1] for p in pts]))
    return t, v


def step_at(times: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The step function's value on ``grid``: the last point at or before each grid time, NaN before the
    first point (the run has no answer yet)."""
    out = np.full(len(grid), np.nan)
    if len(times):
        idx = np.searchsorted(times, grid, side="right") - 1
        have = idx >= 0
        out[have] = values[idx[have]]
    return out


def order_quantile(values: np.ndarray, q: float, axis: int = 0) -> np.ndarray:
    """Linear-interpolation quantile (numpy's default) along ``axis`` of data that may hold -inf and +inf
    (runs with no value yet); the result is NaN wherever the interpolation would touch an infinity, i.e.
    where too few runs have a value for this quantile to be known."""
    s = np.sort(values, axis=axis)
    n = s.shape[axis]
    h = (n - 1) * q
    lo, hi = int(math.floor(h)), int(math.ceil(h))
    a = np.take(s, lo, axis=axis)
    b = np.take(s, hi, axis=axis)
    with np.errstate(invalid="ignore"):
        out = a + (h - lo) * (b - a)
    out = np.where(np.isfinite(a) & np.isfinite(b), out, np.nan)
    return out


def tinv(level: float, dof: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, dof))


# -- drawing helpers --------------------------------------------------------------------------------------
def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend with the seaborn theme (imported here, not at package import)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper", font_scale=1.05)
    return plt


def palette(labels: Sequence[str]) -> dict[str, Any]:
    """A colour per solver label (seaborn's colour-blind palette); pass the scenario's full solver list
    (``attrs["solvers"]``) so that a solver has the same colour in every figure of a report."""
    import seaborn as sns

    labels = list(dict.fromkeys(labels))
    colours = sns.color_palette("colorblind", 10) + sns.color_palette("dark", 10) + sns.color_palette("pastel", 10)
    return {lab: colours[i % len(colours)] for i, lab in enumerate(labels)}


def check_extension(path: str | Path) -> Path:
    p = Path(path)
    if p.suffix.lower() not in EXTENSIONS:
        raise ParamError(f"--out {path}: unsupported extension {p.suffix or '(none)'!r}; use one of "
                         f"{', '.join(EXTENSIONS)}")
    return p


def save_figure(fig: Any, path: str | Path, dpi: int = DPI) -> Path:
    """Write ``fig`` to ``path`` (.png, .pdf or .svg) and close it."""
    import matplotlib.pyplot as plt

    p = check_extension(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return p


def finish(fig: Any, title: str, footer: str = "") -> None:
    """Lay the panels out, then put the title (what, and the configuration) above them and the footer
    (budgets) below, both wrapped to the figure's width; ``save_figure`` crops to include both."""
    import textwrap

    fig.tight_layout()
    width = max(100, int(fig.get_figwidth() * 15))
    title = "\n".join(textwrap.fill(line, width) for line in title.split("\n"))
    fig.suptitle(title, fontsize=10, y=1.0, va="bottom")
    if footer:
        footer = "\n".join(textwrap.fill(line, int(width * 1.35), subsequent_indent="  ")
                            for line in footer.split("\n"))
        fig.text(0.01, -0.01, footer, fontsize=7.5, va="top", ha="left", color="0.25")


def log_ticks(axis: Any, lo: float, hi: float) -> None:
    """Plain tick labels (``0.1``, ``1``, ``10``) on a log axis from ``lo`` to ``hi``: the decades when
    at least two fall in the range, else 1-2-5 steps so that the axis always has a few labelled ticks."""
    from matplotlib.ticker import LogLocator

    if not (lo > 0 and hi > lo):
        return
    decades = math.floor(math.log10(hi)) - math.ceil(math.log10(lo)) + 1
    if decades < 2:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    plain_log_ticks(axis)


def plain_log_ticks(axis: Any) -> None:
    """Tick labels of a log axis as plain numbers (``20``, ``0.5``), not ``2 x 10^1``."""
    from matplotlib.ticker import FuncFormatter

    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    axis.set_major_formatter(fmt)
    axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def legend_outside(fig: Any, ax: Any, handles: Sequence[Any] | None = None, labels: Sequence[str] | None = None,
                   title: str | None = None) -> None:
    """One legend for the figure, right of the panels."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8.5,
               title=title, title_fontsize=8.5)


def finite_or_none(x: Any) -> float | None:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def unique_legend(axes: Any) -> tuple[list[Any], list[str]]:
    """Legend entries of all panels, each label once, in order of first appearance."""
    handles, labels = [], []
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    return handles, labels

