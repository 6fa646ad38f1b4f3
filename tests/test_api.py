"""The Python API (wbench.compare / runs / leaderboard / solutions): the same runs, rows and numbers as the
command line, one-line ParamErrors for bad arguments, and an ``import wbench`` that stays light."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import wbench
from wbench.cli import main
from wbench.params import ParamError
from wbench.store import ROW_COLUMNS, Store
from tests.helpers import stored

ARGS = ["--solvers", "wmmse[starts=2],mrt,zf,dpc-bound", "--set", "Nt=3", "--set", "K=2",
        "--sweep", "snr_db=0,20", "--instances", "4"]


def api_compare(db, quiet=True):
    return wbench.compare("miso", ["wmmse[starts=2]", "mrt", "zf", "dpc-bound"], set={"Nt": 3, "K": 2},
                          sweep={"snr_db": [0, 20]}, instances=4, db=db, quiet=quiet)


@pytest.fixture
def cli_db(tmp_path, capsys):
    db = tmp_path / "cli.db"
    assert main(["compare", "--scenario", "miso", "--db", str(db), "--format", "csv", *ARGS]) == 0
    capsys.readouterr()
    return db


def test_compare_returns_the_runs_the_cli_stores(tmp_path, cli_db):
    df = api_compare(tmp_path / "api.db")
    assert list(df.columns) == list(ROW_COLUMNS) and len(df) == 4 * 2 * 4
    cli = pd.DataFrame(stored(cli_db)).set_index("run_key")
    api = df.set_index("run_key")
    # same run identities (scenario, params, channels, solver, options), channels and scores
    assert sorted(api.index) == sorted(cli.index)
    api = api.loc[cli.index]
    for col in ("config_key", "params", "fingerprint", "label", "options", "status", "feasible", "iterations"):
        pd.testing.assert_series_equal(api[col], cli[col], check_dtype=False, obj=col)
    np.testing.assert_allclose(api["utility"].astype(float), cli["utility"].astype(float), rtol=1e-12)
    # what compare returned is what it stored
    with Store(tmp_path / "api.db") as s:
        again = pd.DataFrame(s.rows(), columns=list(ROW_COLUMNS))
    pd.testing.assert_frame_equal(df, again)


def test_runs_is_the_store_and_compare_resumes(cli_db, capsys):
    df = wbench.runs(cli_db)
    pd.testing.assert_frame_equal(df, pd.DataFrame(stored(cli_db), columns=list(ROW_COLUMNS)))
    again = api_compare(cli_db, quiet=False)  # everything reused: the stored rows, nothing new
    assert "0 runs done" in capsys.readouterr().err
    pd.testing.assert_frame_equal(again.sort_values("run_key", ignore_index=True),
                                  df.sort_values("run_key", ignore_index=True))
    assert set(wbench.runs(cli_db, solvers="mrt,zf")["label"]) == {"mrt", "zf"}


def test_leaderboard_has_the_cli_numbers(cli_db, capsys):
    assert main(["leaderboard", "--db", str(cli_db), "--format", "csv"]) == 0
    cli = pd.read_csv(io.StringIO(capsys.readouterr().out))
    api = wbench.leaderboard(cli_db)
    assert list(api.columns) == list(cli.columns) and len(api) == len(cli) == 2 * 4
    assert api["solver"].tolist() == cli["solver"].tolist()
    for col in ("mean", "ci_low", "ci_high", "feasible_rate", "win_rate", "mean_gap", "max_violation", "n"):
        np.testing.assert_allclose(api[col].astype(float), cli[col].astype(float), rtol=1e-9, err_msg=col)
    # the mean is the mean utility of the ok runs, straight from the store
    runs = wbench.runs(cli_db)
    ok = runs[(runs["label"] == "mrt") & (runs["status"] == "ok") & (runs["params"].str.contains('"snr_db": 20'))]
    row = api[(api["solver"] == "mrt") & (api["snr_db"] == 20.0)].iloc[0]
    assert row["mean"] == pytest.approx(ok["utility"].mean(), rel=1e-12) and row["n"] == len(ok) == 4
    # from the DataFrame compare returned: the same table
    pd.testing.assert_frame_equal(wbench.leaderboard(wbench.runs(cli_db)), api)


def test_leaderboard_is_the_api_function_whatever_was_imported(cli_db):
    """The statistics live in ``wbench.ranking``, so importing every module leaves ``wbench.leaderboard`` the
    notebook function (no submodule of that name shadows it)."""
    import wbench.ranking  # noqa: F401
    import wbench.render  # noqa: F401

    assert wbench.leaderboard is wbench.api.leaderboard
    pd.testing.assert_frame_equal(wbench.leaderboard(cli_db), wbench.api.leaderboard(cli_db))


def test_solutions_are_the_scored_variables(cli_db):
    sols = wbench.solutions(cli_db)
    runs = wbench.runs(cli_db)
    have = runs[runs["status"].isin(["ok", "infeasible"]) & (runs["solver"] != "dpc-bound")]
    assert sorted(sols["run_key"]) == sorted(have["run_key"]) and len(sols) == 3 * 2 * 4
    from tests.helpers import miso_problem

    for _, r in sols.iterrows():
        V = r["x"]["V"]
        assert V.shape == (3, 2) and V.dtype == np.complex128
        snr = float(__import__("json").loads(r["params"])["snr_db"])
        prob = miso_problem(3, 2, snr, int(r["instance"]), 0)
        assert prob.utility({"V": V}) == r["utility"]
    only = wbench.solutions(cli_db, solvers=["mrt"])
    assert set(only["label"]) == {"mrt"} and len(only) == 8


@pytest.mark.parametrize("call,expected", [
    (lambda db: wbench.compare("nope", "mrt", db=db), "unknown scenario 'nope'"),
    (lambda db: wbench.compare("miso", "wmse", db=db), "unknown solver or tag 'wmse'"),
    (lambda db: wbench.compare("miso", "mrt", set={"Ntt": 4}, db=db), "unknown parameter for scenario 'miso': Ntt"),
    (lambda db: wbench.compare("miso", "mrt", set=["Nt"], db=db), "--set expects KEY=VALUE"),
    (lambda db: wbench.compare("miso", "mrt", set={"Nt": "four"}, db=db), "Nt: cannot read 'four'"),
    (lambda db: wbench.compare("miso", "mrt", sweep={"snr_db": []}, db=db), "--sweep snr_db"),
    (lambda db: wbench.compare("miso", "mrt", sweep={"snr_db": 3}, db=db), "--sweep snr_db"),
    (lambda db: wbench.compare("miso", "mrt", instances=0, db=db), "--instances must be >= 1"),
    (lambda db: wbench.compare("miso", "mrt", instances="3", db=db), "--instances must be an integer"),
    (lambda db: wbench.compare("miso", "mrt", jobs=0, db=db), "--jobs must be >= 1"),
    (lambda db: wbench.compare("miso", "mrt", jobs="many", db=db), "--jobs must be a positive integer or auto"),
    (lambda db: wbench.compare("miso", "mrt", threads=0, db=db), "--threads must be >= 1"),
    (lambda db: wbench.compare("miso", "mrt", solution_cap_mb=0, db=db), "--solution-cap-mb must be > 0"),
    (lambda db: wbench.compare("miso", "mrt", executor="ray", db=db), "unknown executor 'ray'"),
    (lambda db: wbench.compare("miso", "mrt", scheduler="tcp://x:1", db=db), "--scheduler needs --executor dask"),
    (lambda db: wbench.compare("miso", "mrt", db=db.parent), "is a directory"),
    (lambda db: wbench.runs(db.parent / "missing.db"), "no results database at"),
    (lambda db: wbench.leaderboard(db, scenario="bdris"), "holds no results for scenario bdris (it holds: miso)"),
    (lambda db: wbench.solutions(db, solvers="wmmse"), "holds no runs of --solvers 'wmmse' (it holds: mrt)"),
    (lambda db: wbench.export_solutions(db, db.parent / "no" / "s.npz"), "does not exist"),
])
def test_bad_arguments_raise_one_line(tmp_path, call, expected):
    db = tmp_path / "a.db"
    wbench.compare("miso", "mrt", set={"snr_db": 10}, instances=1, db=db, quiet=True)
    before = wbench.runs(db)
    with pytest.raises(ParamError) as info:
        call(db)
    msg = str(info.value)
    assert expected in msg and "\n" not in msg
    pd.testing.assert_frame_equal(wbench.runs(db), before)  # nothing stored changed


def test_import_wbench_is_light_and_the_api_loads_on_use():
    code = ("import sys, wbench; light = not {'pandas', 'wbench.api', 'torch'} & set(sys.modules); "
            "f = wbench.compare; sys.exit(0 if light and 'wbench.api' in sys.modules "
            "and f is sys.modules['wbench.api'].compare else 1)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    code = "import sys, wbench.cli; sys.exit(1 if {'pandas', 'torch'} & set(sys.modules) else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
