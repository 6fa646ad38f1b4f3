"""The command line as a user meets it: one-line errors with what is valid, non-zero exit, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wbench.cli import main


def wbench(*args, cwd=None):
    env = dict(os.environ, WBENCH_LOAD_PLUGINS="")
    return subprocess.run([sys.executable, "-m", "wbench.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


@pytest.mark.parametrize(
    "args,expected",
    [
        (["compare", "--scenario", "nope", "--solvers", "mrt"], "unknown scenario 'nope'; valid: bdris, miso"),
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
                                      "snr_db=x", "wmmse[", "mrt", "=", ",", "[]", "-1", "1e9", "nan"]),
                     max_size=6))
@settings(max_examples=60, deadline=None)
def test_fuzzed_compare_arguments_never_raise(args, tmp_path_factory):
    db = tmp_path_factory.mktemp("f") / "f.db"
    try:
        code = main(["compare", "--scenario", "miso", "--db", str(db), "--instances", "1", *args])
    except SystemExit as exc:  # --help/--version paths only
        code = exc.code
    assert code in (0, 2)
