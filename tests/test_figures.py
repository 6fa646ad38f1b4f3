"""Figures and reports (issue 7): the data behind each figure, its labels, and the HTML report.

The databases are made with the real CLI (``wbench compare``) on cheap solvers; the scaling slope is
checked on synthetic runs with a known exponent.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shlex
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wbench.cli import main
from wbench.figures import anytime, cli as fcli, profile, report, scaling, sweep
from wbench.figures import data as D
from wbench.ranking import leaderboard
from wbench.params import ParamError
from wbench.store import COLUMN_NAMES, Store

MISO_SOLVERS = "wmmse,mrt,zf,dpc-bound,adam[iters=30]"
N = 5


@pytest.fixture(scope="module")
def miso_db(tmp_path_factory) -> Path:
    """miso, default SNR sweep (0, 10, 20, 30 dB), 5 channels, traces from wmmse and adam."""
    db = tmp_path_factory.mktemp("fig") / "miso.db"
    assert main(["compare", "--scenario", "miso", "--solvers", MISO_SOLVERS, "--instances", str(N),
                 "--db", str(db), "--format", "csv", "--jobs", "1"]) == 0
    return db


@pytest.fixture(scope="module")
def size_db(tmp_path_factory) -> Path:
    """miso with Nt swept (a problem size)."""
    db = tmp_path_factory.mktemp("fig") / "size.db"
    assert main(["compare", "--scenario", "miso", "--solvers", "mrt,wmmse[starts=1],adam[iters=30]",
                 "--sweep", "Nt=2,4,8", "--instances", "3", "--db", str(db), "--format", "csv",
                 "--jobs", "1"]) == 0
    return db


def rows_of(db: Path) -> list[dict]:
    with Store(db) as s:
        return s.rows()


def fake_rows(configs: list[dict], solvers: dict, n: int, scenario: str = "toy") -> list[dict]:
    """Complete store rows for synthetic runs: ``solvers[label](params, i) -> (utility, wall_s)``."""
    rows = []
    for params in configs:
        pj = json.dumps(params, sort_keys=True)
        key = hashlib.sha256(pj.encode()).hexdigest()[:24]
        for label, fn in solvers.items():
            for i in range(n):
                u, wall = fn(params, i)
                row = dict.fromkeys(COLUMN_NAMES)
                row.update(run_key=f"{key}-{label}-{i}", config_key=key, scenario=scenario, params=pj,
                           channels="gen:0", seed=0, instance=i, fingerprint=f"fp{i}", solver=label,
                           solver_version="1", options="{}", label=label, tags="conventional", budget="",
                           utility=u, feasible=1, max_violation=0.0, wall_s=wall, cpu_s=wall, iterations=1,
                           status="ok", trace="[]", threads=1, wbench_version="0")
                rows.append(row)
    return rows


def all_text(fig) -> str:
    """Every text of a matplotlib Figure: titles, axis labels, tick labels, legends, figure texts."""
    parts = [t.get_text() for t in fig.texts]
    if fig._suptitle is not None:
        parts.append(fig._suptitle.get_text())
    for leg in fig.legends:
        parts += [t.get_text() for t in leg.get_texts()]
    for ax in fig.axes:
        parts += [ax.get_xlabel(), ax.get_ylabel(), ax.get_title()]
        parts += [t.get_text() for t in ax.get_xticklabels()]
        if ax.get_legend() is not None:
            parts += [t.get_text() for t in ax.get_legend().get_texts()]
    return "\n".join(parts)


def monotone(values: np.ndarray, increasing: bool = True) -> bool:
    """Non-decreasing (or non-increasing) where defined, and undefined (NaN) only before the first value."""
    v = np.asarray(values, dtype=float)
    defined = np.isfinite(v)
    if defined.any():
        first = int(np.argmax(defined))
        if not defined[first:].all():
            return False
        d = np.diff(v[first:])
        return bool(np.all(d >= -1e-12) if increasing else np.all(d <= 1e-12))
    return True


# -- sweep ---------------------------------------------------------------------------------------------
def test_sweep_points_are_the_leaderboard_means(miso_db):
    rows = rows_of(miso_db)
    data = sweep.sweep_data(rows)
    lb = leaderboard(rows)
    assert data.attrs["x"] == "snr_db" and data.attrs["numeric"]
    assert len(data) == len(lb) == 4 * 5
    merged = data.merge(lb, left_on=["config_key", "solver"], right_on=["config_key", "solver"],
                        suffixes=("", "_lb"))
    assert len(merged) == len(lb)
    for col in ("mean", "ci_low", "ci_high"):
        np.testing.assert_array_equal(merged[col].to_numpy(), merged[f"{col}_lb"].to_numpy())
    assert (merged["x"] == merged["snr_db"]).all()
    assert sorted(set(data["x"])) == [0.0, 10.0, 20.0, 30.0]
    # the mean is over ok runs only: recompute one point from the rows
    ok = [r["utility"] for r in rows if r["label"] == "wmmse" and r["status"] == "ok"
          and json.loads(r["params"])["snr_db"] == 20.0]
    assert len(ok) == N  # WMMSE is feasible on every channel: the mean below is over all N of them
    point = data[(data["solver"] == "wmmse") & (data["x"] == 20.0)]["mean"].item()
    assert point == pytest.approx(np.mean(ok), rel=1e-12)
    assert set(data.loc[data["bound"], "solver"]) == {"dpc-bound"}


def test_sweep_categorical_x_and_facets():
    configs = [{"B": b, "architecture": a} for b in (8, 16) for a in ("diagonal", "fully")]
    rows = fake_rows(configs, {"s": lambda p, i: (p["B"] + i, 0.1)}, 3)
    data = sweep.sweep_data(rows, x="architecture")
    assert not data.attrs["numeric"] and data.attrs["facets"] == ["B"]
    assert set(data["facet"]) == {"B=8", "B=16"}
    assert sweep.sweep_data(rows).attrs["x"] == "B"  # numeric preferred without --x
    fig = sweep.draw_sweep(data)
    ticks = {t.get_text() for ax in fig.axes for t in ax.get_xticklabels()}
    assert {"diagonal", "fully"} <= ticks
    with pytest.raises(ParamError, match="nope"):
        sweep.sweep_data(rows, x="nope")
    flat = fake_rows([{"B": 8}], {"s": lambda p, i: (1.0, 0.1)}, 2)
    with pytest.raises(ParamError, match="no parameter varies"):
        sweep.sweep_data(flat)


# -- anytime -------------------------------------------------------------------------------------------
def test_best_so_far_step_function():
    trace = [[0.1, 0, 2.0, True], [0.2, 1, 5.0, False], [0.3, 2, 3.0, True], [0.4, 3, 2.5, True]]
    t, v = D.best_so_far(trace, 0.5, 2.8, "ok")
    np.testing.assert_array_equal(t, [0.1, 0.3, 0.4, 0.5])  # the infeasible checkpoint is not an answer
    np.testing.assert_array_equal(v, [2.0, 3.0, 3.0, 3.0])  # running best, never below an earlier value
    on = D.step_at(t, v, np.array([0.05, 0.1, 0.25, 0.35, 1.0]))
    assert np.isnan(on[0]) and list(on[1:]) == [2.0, 2.0, 3.0, 3.0]
    assert D.best_so_far(trace, 0.5, 2.8, "infeasible")[0].size == 0


def test_anytime_curves_never_decrease(miso_db):
    rows = rows_of(miso_db)
    data = anytime.anytime_data(rows)
    runs = D.runs_table(rows)
    assert {"wmmse", "adam[iters=30]", "mrt", "zf", "dpc-bound"} == set(data["solver"])
    for (key, solver), g in data.groupby(["config_key", "solver"]):
        for col in ("q25", "median", "q75"):
            assert monotone(g[col].to_numpy()), (key, solver, col)
        both = g[["q25", "median", "q75"]].dropna()
        assert (both["q25"] <= both["median"] + 1e-12).all() and (both["median"] <= both["q75"] + 1e-12).all()
        cfg = runs[(runs["config_key"] == key) & (runs["display"] == solver)]
        if solver != "dpc-bound":
            grid = g["t"].to_numpy()
            per_run = anytime.resample(cfg, grid)
            assert all(monotone(r) for r in per_run)
            # at the end every (ok) run has answered: the median is the median of the runs' best values
            best = [D.best_so_far(r.trace_list, r.wall_s, r.utility, r.status)[1][-1] for r in cfg.itertuples()]
            assert g["median"].iloc[-1] == pytest.approx(np.median(best), rel=1e-12)
            # a checkpoint before which runs have no answer: the median is undefined there
            assert np.isnan(g["median"].iloc[0]) or g["n_valid"].iloc[0] * 2 > len(cfg)
    # closed forms without a trace end at their answer
    zf = data[(data["solver"] == "zf")].groupby("config_key")["median"].last()
    for key, m in zf.items():
        u = runs[(runs["config_key"] == key) & (runs["display"] == "zf")]["utility"]
        assert m == pytest.approx(float(np.median(u)), rel=1e-12)


def test_anytime_gap_to_the_bound_never_increases(miso_db):
    rows = rows_of(miso_db)
    data = anytime.anytime_data(rows, gap=True)
    assert set(data.attrs["references"].values()) == {"dpc-bound"}
    assert "dpc-bound" not in set(data["solver"])
    for _, g in data.groupby(["config_key", "solver"]):
        assert monotone(g["median"].to_numpy(), increasing=False)
        assert (g["median"].dropna() >= -1e-9).all()  # no linear precoder beats the DPC capacity
    named = anytime.anytime_data(rows, gap=True, reference="zf")
    assert set(named.attrs["references"].values()) == {"zf"}
    end = named[named["solver"] == "zf"].groupby("config_key")["median"].last()
    assert np.allclose(end.to_numpy(), 0.0)
    with pytest.raises(ParamError, match="--reference"):
        anytime.anytime_data(rows, gap=True, reference="nosuch")


# -- profiles --------------------------------------------------------------------------------------------
def _independent_success(rows: list[dict], target: float) -> dict[str, float]:
    """Share of (configuration, channel) instances on which each solver reached target x best reached."""
    best: dict = {}
    reach: dict = {}
    for r in rows:
        if "bound" in r["tags"]:
            continue
        if r["status"] != "ok":
            value = -math.inf
        else:
            trace = json.loads(r["trace"] or "[]")
            value = max([r["utility"]] + [c[2] for c in trace if c[3]])
        inst = (r["config_key"], r["instance"])
        reach[(inst, r["label"])] = value
        best[inst] = max(best.get(inst, -math.inf), value)
    labels = {lab for _, lab in reach}
    return {lab: np.mean([reach.get((i, lab), -math.inf) >= b - (1 - target) * abs(b) - 1e-9
                          for i, b in best.items()])
            for lab in labels}


def test_profiles_are_monotone_and_end_at_the_success_rate(miso_db):
    rows = rows_of(miso_db)
    for target in (0.99, 0.9):
        data = profile.profile_data(rows, target=target)
        assert data.attrs["n_instances"] == 4 * N
        expected = _independent_success(rows, target)
        assert data.attrs["success"] == pytest.approx(expected)
        assert "dpc-bound" not in set(data["solver"])
        for (curve, solver), g in data.groupby(["curve", "solver"]):
            assert np.all(np.diff(g["x"].to_numpy()) > 0)
            assert np.all(np.diff(g["fraction"].to_numpy()) >= 0)
            assert g["fraction"].iloc[-1] == pytest.approx(expected[solver])
            if curve == "performance":
                assert g["x"].iloc[0] == 1.0
    # at tau = 1 the curves count the instances where a solver was (one of) the fastest: they cover all solved
    perf = data[data["curve"] == "performance"].groupby("solver")["fraction"].first()
    assert perf.sum() >= max(expected.values()) - 1e-12


def test_profile_counts_failed_runs_as_unsolved(miso_db):
    rows = rows_of(miso_db)
    base = profile.profile_data(rows).attrs["success"]["wmmse"]
    broken = [dict(r) for r in rows]
    hit = next(r for r in broken if r["label"] == "wmmse" and r["status"] == "ok"
               and r["instance"] == 0 and json.loads(r["params"])["snr_db"] == 10.0)
    times = profile.solve_times(rows)
    was_solved = math.isfinite(times[(times["solver"] == "wmmse") & (times["config_key"] == hit["config_key"])
                                     & (times["instance"] == 0)]["time"].item())
    hit["status"] = "infeasible"
    after = profile.profile_data(broken).attrs["success"]["wmmse"]
    assert after == pytest.approx(base - (1 / (4 * N) if was_solved else 0.0))
    ref = profile.profile_data(rows, target=0.9, reference="dpc-bound")
    assert ref.attrs["reference"] == "dpc-bound"
    assert max(ref.attrs["success"].values()) <= max(profile.profile_data(rows, 0.9).attrs["success"].values())
    with pytest.raises(ParamError, match="target"):
        profile.profile_data(rows, target=1.5)


# -- scaling -----------------------------------------------------------------------------------------------
def test_scaling_slope_recovers_a_known_exponent():
    sizes = [4, 8, 16, 32, 64]
    rows = fake_rows([{"M": n, "p": 1.0} for n in sizes],
                     {"square": lambda p, i: (1.0, 3e-6 * p["M"] ** 2),
                      "cube": lambda p, i: (1.0, 1e-7 * p["M"] ** 3 * (1 + 0.1 * (i - 1)))}, 3)
    data = scaling.scaling_data(rows)
    assert data.attrs["x"] == "M"
    slopes = data.attrs["slopes"].set_index("solver")["slope"]
    assert abs(slopes["square"] - 2.0) < 1e-9
    assert abs(slopes["cube"] - 3.0) < 1e-9  # medians of (0.9, 1.0, 1.1) x n^3
    assert scaling.loglog_slope([1, 10, 100], [5, 50, 500]) == pytest.approx((1.0, math.log(5)), abs=1e-12)
    assert math.isnan(scaling.loglog_slope([4, 4], [1.0, 2.0])[0])
    fig = scaling.draw_scaling(data)
    legend = all_text(fig)
    assert "square (slope 2.00)" in legend and "cube (slope 3.00)" in legend


def test_scaling_on_a_swept_size(size_db, miso_db):
    data = scaling.scaling_data(rows_of(size_db))
    assert data.attrs["x"] == "Nt" and sorted(set(data["size"])) == [2.0, 4.0, 8.0]
    assert np.isfinite(data.attrs["slopes"]["slope"]).all()
    assert (data["p10"] <= data["median"]).all() and (data["median"] <= data["p90"]).all()
    with pytest.raises(ParamError, match="swept problem size"):
        scaling.scaling_data(rows_of(miso_db))  # only snr_db varies


# -- labels --------------------------------------------------------------------------------------------------
def test_figures_carry_units_configuration_and_channel_count(miso_db, size_db):
    import matplotlib.pyplot as plt

    rows = rows_of(miso_db)
    figs = {
        "sweep": sweep.draw_sweep(sweep.sweep_data(rows)),
        "anytime": anytime.draw_anytime(anytime.anytime_data(rows)),
        "profile": profile.draw_profile(profile.profile_data(rows)),
        "scaling": scaling.draw_scaling(scaling.scaling_data(rows_of(size_db))),
    }
    try:
        for kind, fig in figs.items():
            text = all_text(fig)
            n = N if kind != "scaling" else 3
            assert f"{n} channels" in text, kind
            assert "K=4" in text, kind  # the constant parameters (the configuration)
        ylabels = {k: [ax.get_ylabel() for ax in f.axes] for k, f in figs.items()}
        xlabels = {k: [ax.get_xlabel() for ax in f.axes] for k, f in figs.items()}
        assert any("[bit/s/Hz]" in y for y in ylabels["sweep"]) and any("[dB]" in x for x in xlabels["sweep"])
        assert any("[bit/s/Hz]" in y for y in ylabels["anytime"]) and all("[s]" in x for x in xlabels["anytime"])
        assert any("[s]" in x for x in xlabels["profile"]) and "Dolan" in all_text(figs["profile"])
        assert any("[s]" in y for y in ylabels["scaling"]) and "slope" in all_text(figs["scaling"])
        assert "max_iter=100" in all_text(figs["sweep"])  # budgets
        assert figs["anytime"].axes[0].get_xscale() == "log"
        assert figs["scaling"].axes[0].get_yscale() == "log"
        styles = {line.get_label(): line.get_linestyle() for line in figs["sweep"].axes[0].get_lines()}
        assert styles["dpc-bound"] == "--" and styles["wmmse"] == "-"
    finally:
        for fig in figs.values():
            plt.close(fig)


# -- report ------------------------------------------------------------------------------------------------
class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in ("src", "href") and v is not None]


def test_report_is_self_contained(miso_db, size_db, tmp_path):
    db = tmp_path / "both.db"
    shutil.copy(miso_db, db)
    with Store(db) as s:  # a second scenario in the same db: every scenario gets its section
        s.write([dict(r, scenario="miso2", run_key=r["run_key"] + "x", config_key=r["config_key"] + "x")
                 for r in rows_of(size_db)])
    out = tmp_path / "rep"
    args = argparse.Namespace(db=str(db), out=str(out), scenario=None, target=0.99)
    assert fcli.cmd_report(args) == 0
    page = (out / "index.html").read_text()
    parser = _Links()
    parser.feed(page)
    assert parser.links, "the report shows no figure"
    for link in parser.links:
        assert "://" not in link and not link.startswith(("/", "//", "data:text")), link
        assert (out / link).is_file(), link
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert {"miso-sweep.png", "miso-anytime.png", "miso-profile.png", "miso2-scaling.png"} <= set(parser.links)
    assert "scaling: not drawn" in page  # miso sweeps no size
    with Store(db) as s:
        fps = report.fingerprints(s.rows("miso"))
    assert all(fp in page for fp in fps["set fingerprint"])
    assert "numpy" in page and "matplotlib" in page and "adam[iters=30]" in page
    # the reconstructed command reproduces exactly the stored runs: re-running it does nothing new
    cmds = report.commands(rows_of(miso_db))
    assert len(cmds) == 1 and f"&#x27;{MISO_SOLVERS}&#x27;" in page
    assert "they plan exactly the 100 stored runs" in page
    copy = tmp_path / "again.db"
    shutil.copy(miso_db, copy)
    before = len(rows_of(copy))
    assert main([*shlex.split(cmds[0].text())[1:], "--db", str(copy), "--format", "csv"]) == 0
    assert len(rows_of(copy)) == before


def test_commands_of_a_db_filled_by_several_compares(tmp_path):
    db = tmp_path / "two.db"
    first = ["--solvers", "mrt,zf", "--sweep", "snr_db=0,10", "--instances", "3"]
    second = ["--solvers", "mrt,rzf", "--sweep", "Nt=4,8", "--set", "snr_db=10", "--instances", "2"]
    for args in (first, second):
        assert main(["compare", "--scenario", "miso", *args, "--db", str(db), "--format", "csv"]) == 0
    rows = rows_of(db)
    cmds = report.commands(rows)
    texts = [c.text() for c in cmds]
    assert len(cmds) >= 2 and all(t.startswith("wbench compare --scenario miso") for t in texts)
    planned = set().union(*(c.run_keys() for c in cmds))
    assert planned == {r["run_key"] for r in rows}
    assert report.verified(cmds, rows).startswith("checked")
    assert report.verified(cmds[:1], rows).startswith("they plan")  # one command alone is not all


def test_report_escapes_html(tmp_path):
    rows = fake_rows([{"M": 2}, {"M": 4}], {"<b>x</b>": lambda p, i: (1.0 + i, 0.01 * p["M"])}, 2)
    db = tmp_path / "esc.db"
    with Store(db) as s:
        s.write(rows)
    page = report.write_report(db, tmp_path / "r").read_text()
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page


# -- command line --------------------------------------------------------------------------------------------
def _plot_args(**kw) -> argparse.Namespace:
    base = dict(kind="sweep", db=None, scenario=None, out=None, x=None, target=None, reference=None, gap=False)
    base.update(kw)
    return argparse.Namespace(**base)


def test_plot_command_writes_files(miso_db, tmp_path):
    for kind, ext, extra in (("sweep", "svg", {}), ("anytime", "png", {"gap": True}),
                             ("profile", "pdf", {"target": 0.95, "reference": "wmmse"})):
        out = tmp_path / f"f.{ext}"
        assert fcli.cmd_plot(_plot_args(kind=kind, db=str(miso_db), out=str(out), **extra)) == 0
        assert out.stat().st_size > 1000
    # through an argparse parser built by add_parsers, as the main CLI does
    p = argparse.ArgumentParser()
    fcli.add_parsers(p.add_subparsers(dest="command"))
    args = p.parse_args(["plot", "sweep", "--db", str(miso_db), "--out", str(tmp_path / "s.png"), "--x", "snr_db"])
    assert fcli.cmd_plot(args) == 0 and (tmp_path / "s.png").is_file()


@pytest.mark.parametrize("kw, message", [
    ({"db": "NODB"}, "no results database"),
    ({"scenario": "bdris"}, "no results for scenario 'bdris'"),
    ({"kind": "pie"}, "unknown figure kind 'pie'"),
    ({"out": "x.jpg"}, "unsupported extension"),
    ({"kind": "scaling"}, "swept problem size"),
    ({"kind": "sweep", "x": "K"}, "does not vary"),
    ({"kind": "sweep", "target": 0.9}, "--target applies to profile"),
    ({"kind": "anytime", "reference": "zf"}, "with --gap"),
])
def test_plot_command_refuses_bad_input_in_one_line(miso_db, tmp_path, kw, message):
    kw = dict(kw)
    kw["db"] = str(tmp_path / "none.db") if kw.get("db") == "NODB" else str(miso_db)
    kw.setdefault("out", str(tmp_path / "f.png"))
    with pytest.raises(ParamError) as exc:
        fcli.cmd_plot(_plot_args(**kw))
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert not (tmp_path / "f.png").exists()


def test_main_cli_runs_the_figure_commands(miso_db, tmp_path, capsys):
    """wbench/cli.py registers the figure commands: bad input is one line and exit status 2."""
    from wbench.cli import build_parser

    args = build_parser().parse_args(["plot", "sweep", "--db", str(miso_db), "--out", str(tmp_path / "s.png")])
    assert args.command == "plot"
    assert main(["plot", "scaling", "--db", str(miso_db), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wbench: error:") and "\n" not in err
    assert "invalid choice" not in err and "unknown figure kind" not in err  # refused by the figure code
    assert main(["report", "--db", str(miso_db), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "index.html").is_file()


def test_import_wbench_stays_light():
    import subprocess
    import sys

    code = ("import sys, wbench, wbench.figures, wbench.figures.cli; "
            "print(any(m.startswith(('matplotlib', 'seaborn')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_pandas_frames_are_plain(miso_db):
    data = sweep.sweep_data(rows_of(miso_db))
    assert isinstance(data, pd.DataFrame) and {"x", "solver", "mean", "ci_low", "ci_high"} <= set(data.columns)


def test_profile_against_the_optimum_and_the_tightest_bound_by_tag():
    # hand-built: per channel i the optimum (brb, tag optimum) is 10 + i, the bounds 12 + i and 11 + i + 0.5;
    # 'close' reaches 99.5% of the optimum, 'far' 95%: at target 0.99 only 'close' solves every instance.
    def tagged(rows, tag):
        for r in rows:
            r["tags"] = tag
        return rows

    cfg = [{"K": 2}]
    rows = (tagged(fake_rows(cfg, {"brb": lambda p, i: (10.0 + i, 1.0)}, 3), "optimum")
            + tagged(fake_rows(cfg, {"dpc": lambda p, i: (12.0 + i, 0.001)}, 3), "bound")
            + tagged(fake_rows(cfg, {"cf": lambda p, i: (11.5 + i, 0.001)}, 3), "bound")
            + fake_rows(cfg, {"close": lambda p, i: (0.995 * (10.0 + i), 0.01),
                              "far": lambda p, i: (0.95 * (10.0 + i), 0.02)}, 3))
    times = profile.solve_times(rows, target=0.99, reference="optimum")
    assert set(times["ref_utility"]) == {10.0, 11.0, 12.0}
    ok = times.groupby("solver")["time"].apply(lambda t: bool(np.isfinite(t).all()))
    assert ok["close"] and not ok["far"]
    bound = profile.solve_times(rows, target=0.99, reference="bound")
    assert set(bound["ref_utility"]) == {11.5, 12.5, 13.5}  # the tightest bound per channel
    data = profile.profile_data(rows, target=0.99, reference="optimum")
    assert data.attrs["success"]["close"] == 1.0 and data.attrs["success"]["far"] == 0.0
    assert "certified optimum" in all_text(profile.draw_profile(data))
    with pytest.raises(ParamError, match="tagged optimum"):
        profile.solve_times([r for r in rows if r["tags"] != "optimum"], reference="optimum")
