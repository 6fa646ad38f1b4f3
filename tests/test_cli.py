"""The command line as a user meets it: one-line errors with what is valid, non-zero exit, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from wbench.cli import main


def wbench(*args, cwd=None):
    env = dict(os.environ, WBENCH_LOAD_PLUGINS="")
    return subprocess.run([sys.executable, "-m", "wbench.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


@pytest.mark.parametrize(
    "args,expected",
    [
        (["compare", "--scenario", "nope", "--solvers", "mrt"], "unknown scenario 'nope'; valid: bdris, "),
        (["compare", "--scenario", "miso", "--solvers", "wmse"], "unknown solver or tag 'wmse'; valid: "),
        (["compare", "--scenario", "miso", "--solvers", "mrt", "--set", "Ntt=4"],
         "unknown parameter for scenario 'miso': Ntt; valid: K, Nt, snr_db, weights"),
        (["compare", "--scenario", "miso", "--solvers", "mrt", "--set", "Nt=four"], "Nt: cannot read 'four'"),
        (["compare", "--scenario", "miso", "--solvers", "mrt", "--sweep", "snr_db="], "--sweep snr_db"),
        (["compare", "--scenario", "miso", "--solvers", "wmmse[max_iter=0]"], "max_iter: must be >= 1"),
        (["leaderboard", "--db", "missing.db"], "no results database"),
        (["compare", "--scenario", "miso"], "--solvers"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(tmp_path, args, expected):
    r = wbench(*args, "--db", str(tmp_path / "x.db")) if args[0] == "compare" else wbench(*args, cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("wbench: error: ") and expected in lines[0]
    assert "Traceback" not in r.stderr


def test_foreign_database_is_refused(tmp_path):
    import sqlite3

    path = tmp_path / "other.db"
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE t (x)")
    r = wbench("leaderboard", "--db", str(path))
    assert r.returncode == 2 and "not a wbench results database" in r.stderr


def test_list_shows_solvers_with_tags_and_origin():
    r = wbench("list", "solvers")
    assert r.returncode == 0
    line = next(l for l in r.stdout.splitlines() if l.split("│")[1:2] == [" wmmse      "] or l.startswith("│ wmmse "))
    assert "conventional" in line and "built-in" in line


@given(args=st.lists(st.sampled_from(["--set", "--sweep", "--solvers", "--instances", "--jobs", "Nt=", "K=0",
                                      "snr_db=x", "wmmse[", "mrt", "=", ",", "[]", "-1", "1e9", "nan",
                                      "--solution-cap-mb", "--no-solutions"]),
                     max_size=6))
@settings(max_examples=60, deadline=None)
def test_fuzzed_compare_arguments_never_raise(args, tmp_path_factory):
    db = tmp_path_factory.mktemp("f") / "f.db"
    try:
        code = main(["compare", "--scenario", "miso", "--db", str(db), "--instances", "1", *args])
    except SystemExit as exc:  # --help/--version paths only
        code = exc.code
    assert code in (0, 2)


# -- bad input everywhere: property-based ----------------------------------------------------------------
_JUNK = st.one_of(
    st.sampled_from(["", "-1", "0", "1e9", "nan", "inf", "-inf", "none", "true", "x", "4.5", "1,2", "[", "]",
                     "=", ";", "1e-300", "99999999999999999999", "é", " "]),
    st.text(max_size=6),
    st.integers(-10**6, 10**6).map(str),
)


def _one_line_or_ok(argv: list[str], capsys) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # --help and --version only
        code = exc.code
    err = capsys.readouterr().err
    assert code in (0, 2), err
    if code == 2:
        errors = [line for line in err.splitlines() if line.startswith("wbench: error:")]
        assert len(errors) == 1 and "Traceback" not in err


@given(scenario=st.sampled_from(["miso", "bdris"]), data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzzed_parameter_values_give_one_line_or_run(scenario, data, tmp_path_factory, capsys):
    """Random values for a random scenario parameter (--set or --sweep): a run (only a cheap solver, one
    channel, and sizes capped so that a valid draw stays small) or one line and exit 2, never a traceback."""
    from wbench.registry import get_registry

    params = sorted(get_registry().scenario(scenario).params)
    key = data.draw(st.sampled_from(params + ["nope", "", "Nt "]))
    value = data.draw(_JUNK)
    flag = data.draw(st.sampled_from(["--set", "--sweep"]))
    sized = {"Nt", "K", "B"}
    assume(not (key in sized and value.strip().lstrip("+").isdecimal() and int(value) > 64))
    db = tmp_path_factory.mktemp("p") / "p.db"
    _one_line_or_ok(["compare", "--scenario", scenario, "--solvers", "mrt", "--instances", "1", "--db", str(db),
                     "--format", "csv", flag, f"{key}={value}"], capsys)


@given(solver=st.sampled_from(["wmmse", "adam", "metaopt", "multistart", "manifold", "ao", "mrt"]), data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzzed_solver_options_give_one_line_or_plan(solver, data, tmp_path_factory, capsys):
    """Random option names and values are refused in one line at selection; valid ones are only planned
    (``--max-memory`` tiny: the plan is refused by the memory guard, again in one line, and nothing runs)."""
    from wbench.registry import get_registry

    opts = sorted(get_registry().solver(solver).options) or ["x"]
    key = data.draw(st.sampled_from(opts + ["nope"]))
    value = data.draw(_JUNK)
    db = tmp_path_factory.mktemp("o") / "o.db"
    scenario = "bdris" if solver == "ao" else "miso"
    _one_line_or_ok(["compare", "--scenario", scenario, "--solvers", f"{solver}[{key}={value}]", "--instances",
                     "1", "--db", str(db), "--max-memory", "1e-9", "--sweep",
                     "architecture=fully" if scenario == "bdris" else "snr_db=10"], capsys)


@given(argv=st.lists(st.sampled_from(["check", "leaderboard", "plot", "report", "channels", "export", "--update",
                                      "--db", "--out", "--suite", "--scenario", "miso", "sweep", "x.png",
                                      "/nonexistent", "--executor", "dask", "--timeout", "-1", "--jobs", "0",
                                      "--max-memory", "nan", "--scheduler", "tcp://", "--instances",
                                      "solutions", "--solvers", "mrt", "wmse"]),
                     min_size=1, max_size=6))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzzed_subcommands_never_raise(argv, capsys, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("s"))
    if "--executor" in argv and "compare" not in argv:
        argv = [a for a in argv if a != "--executor"]
    _one_line_or_ok(argv, capsys)
