"""Stored solutions: kept for ok/infeasible runs, capped, switched off; older databases migrated; the export
re-scored without wbench (an independent sum-rate formula written here from the received-signal model)."""

from __future__ import annotations

import json
import re
import shlex
import sqlite3
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from wbench.cli import main
from wbench.solution_store import NOTE_OFF, decode_solution, encode_solution
from wbench.store import COLUMN_NAMES, Store, StoreError
from tests.helpers import compare, stored

README = Path(__file__).resolve().parents[1] / "README.md"

#: The ``runs`` columns of databases written before stored solutions (wbench 0.1.0 at commit ccbec32).
OLD_COLUMNS = (
    "run_key TEXT PRIMARY KEY", "config_key TEXT NOT NULL", "scenario TEXT NOT NULL", "params TEXT NOT NULL",
    "channels TEXT NOT NULL", "seed INTEGER", "instance INTEGER NOT NULL", "fingerprint TEXT NOT NULL",
    "solver TEXT NOT NULL", "solver_version TEXT NOT NULL", "options TEXT NOT NULL", "label TEXT NOT NULL",
    "tags TEXT NOT NULL", "budget TEXT", "budget_seconds REAL", "utility REAL", "feasible INTEGER",
    "violations TEXT", "max_violation REAL", "wall_s REAL", "cpu_s REAL", "iterations INTEGER",
    "status TEXT NOT NULL", "error TEXT", "trace TEXT", "batch INTEGER", "threads INTEGER",
    "wbench_version TEXT", "created REAL",
)


def miso_wsr(H: np.ndarray, V: np.ndarray, weights: np.ndarray, sigma2: float) -> float:
    """Received signal of user k: y_k = sum_j h_k^H v_j s_j + n_k (seed 001, eq. (2)); written per user."""
    rate = 0.0
    for k in range(H.shape[0]):
        h = H[k]
        powers = [abs(np.vdot(h, V[:, j])) ** 2 for j in range(V.shape[1])]
        interference = sum(p for j, p in enumerate(powers) if j != k)
        rate += weights[k] * np.log2(1.0 + powers[k] / (interference + sigma2))
    return rate


# -- encoding --------------------------------------------------------------------------------------
arrays = hnp.arrays(
    dtype=st.sampled_from([np.float64, np.complex128, np.float32, np.int64, np.bool_]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,5}", fullmatch=True), arrays, max_size=4))
def test_encoding_round_trip_is_exact(x):
    # also transposed and reversed views (not C-contiguous): the values, not the memory layout, come back
    for variant in (x, {k: v.T for k, v in x.items()}, {k: v[::-1] if v.ndim else v for k, v in x.items()}):
        back = decode_solution(encode_solution(variant))
        assert list(back) == list(variant)
        for name, value in variant.items():
            assert back[name].dtype == value.dtype and back[name].shape == value.shape
            assert np.array_equal(back[name], value, equal_nan=value.dtype.kind in "fc")


def test_large_values_are_compressed_small_ones_not():
    small = encode_solution({"V": np.ones((4, 4), complex)})
    assert small.startswith(b"[") and len(small) < 320
    zeros = {"Phi": np.zeros((64, 64), complex)}  # 64 KiB raw
    big = encode_solution(zeros)
    assert not big.startswith(b"[") and len(big) < 1000
    assert np.array_equal(decode_solution(big)["Phi"], zeros["Phi"])
    noise = {"P": np.random.default_rng(0).standard_normal(400)}  # 3.2 KiB of doubles: deflate would not help
    assert len(encode_solution(noise)) <= 3200 + 40


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 10**6))
def test_damaged_value_is_a_value_error(junk, cut):
    good = encode_solution({"V": np.arange(12.0).reshape(3, 4), "p": np.ones(2, complex)})
    big = encode_solution({"V": np.zeros((40, 40))})
    assert not big.startswith(b"[")  # compressed
    damaged = [
        b"\x78\x9c" + junk,  # a zlib header, then garbage
        b'[["V", "<f8", [3]]]\0' + junk[:23],  # fewer bytes than three doubles
        big[: cut % len(big)],  # a truncated compressed value
        good[: cut % len(good)],  # truncated
        good + b"x",  # a trailing byte
        zlib.compress(zlib.decompress(big) + b"x"),  # a trailing byte, compressed
        b'[["V", "<f8", [3, 4]]]',  # no separator
        b'[["V", "|O", [1]]]\0' + bytes(8),  # an object dtype
    ]
    for blob in damaged:
        with pytest.raises(ValueError, match="damaged stored solution"):
            decode_solution(blob)


# -- what is kept ----------------------------------------------------------------------------------
def test_solutions_are_kept_for_ok_and_infeasible_runs_only(tmp_path, faulty_registry):
    db = tmp_path / "r.db"
    assert compare(db, "--solvers", "t-raises,t-nan,t-slow[sleep=0.4],t-overpower,mrt",
                   "--set", "snr_db=10", "--instances", "2", "--budget-seconds", "0.05") == 0
    with Store(db) as s:
        rows = s.rows(solutions=True)
    assert {r["status"] for r in rows} == {"ok", "infeasible", "error", "nan", "timeout"}
    for r in rows:
        if r["status"] in ("ok", "infeasible"):
            x = decode_solution(r["solution"])
            assert r["solution_note"] is None and set(x) == {"V"} and x["V"].shape == (4, 4)
        else:
            assert r["solution"] is None
    # t-overpower returns MRT at twice the power: what is stored is the point that was scored infeasible
    over = next(r for r in rows if r["solver"] == "t-overpower")
    V = decode_solution(over["solution"])["V"]
    assert np.sum(np.abs(V) ** 2) == pytest.approx(2 * 10.0, rel=1e-12)


def test_rows_leave_the_blob_out_unless_asked(tmp_path):
    db = tmp_path / "r.db"
    assert compare(db, "--solvers", "mrt", "--set", "snr_db=10", "--instances", "3") == 0
    with Store(db) as s:
        plain, full = s.rows(), s.rows(solutions=True)
        by_key = s.solutions([r["run_key"] for r in plain] + ["no-such-key"])
    assert "solution" not in plain[0] and "solution_note" in plain[0]
    assert [r["run_key"] for r in plain] == [r["run_key"] for r in full]
    assert all(isinstance(r["solution"], bytes) for r in full)
    assert by_key == {r["run_key"]: r["solution"] for r in full}


def test_cap_drops_large_solutions_with_a_note(tmp_path, capsys):
    db = tmp_path / "r.db"
    # 4 x 4 complex precoder: about 300 bytes stored
    assert compare(db, "--solvers", "mrt", "--set", "snr_db=10", "--instances", "3",
                   "--solution-cap-mb", str(100 / 2**20)) == 0
    err = capsys.readouterr().err
    assert len(re.findall("over --solution-cap-mb", err)) == 1 and "3 run(s)" in err
    with Store(db) as s:
        rows = s.rows(solutions=True)
    assert all(r["solution"] is None and "exceeds the cap" in r["solution_note"] for r in rows)
    db2 = tmp_path / "r2.db"
    assert compare(db2, "--solvers", "mrt", "--set", "snr_db=10", "--instances", "3",
                   "--solution-cap-mb", str(2000 / 2**20)) == 0
    assert "solution-cap-mb" not in capsys.readouterr().err
    assert all(r["solution_note"] is None for r in stored(db2))


def test_no_solutions_keeps_none_and_export_says_so(tmp_path, capsys):
    db = tmp_path / "r.db"
    assert compare(db, "--solvers", "mrt", "--set", "snr_db=10", "--instances", "2", "--no-solutions") == 0
    with Store(db) as s:
        rows = s.rows(solutions=True)
    assert rows and all(r["solution"] is None and r["solution_note"] == NOTE_OFF for r in rows)
    capsys.readouterr()
    assert main(["solutions", "export", "--db", str(db), "--out", str(tmp_path / "s.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wbench: error:") and "no stored solutions" in err and "\n" not in err
    assert not (tmp_path / "s.npz").exists()


# -- older and newer databases ---------------------------------------------------------------------
def _old_database(path: Path, n: int = 2) -> None:
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        c.executemany("INSERT INTO meta VALUES (?, ?)", [("app", "wbench"), ("schema_version", "1")])
        c.execute(f"CREATE TABLE runs ({', '.join(OLD_COLUMNS)})")
        for i in range(n):
            c.execute("INSERT INTO runs (run_key, config_key, scenario, params, channels, seed, instance, "
                      "fingerprint, solver, solver_version, options, label, tags, utility, status) VALUES "
                      "(?, 'c', 'miso', '{}', 'gen:0', 0, ?, 'f', 'mrt', '1', '{}', 'mrt', 'baseline', ?, 'ok')",
                      (f"k{i}", i, 1.5 + i))


def test_older_database_opens_keeps_rows_new_columns_null(tmp_path):
    db = tmp_path / "old.db"
    _old_database(db)
    with Store(db) as s:
        rows = s.rows(solutions=True)
        cols = [r[1] for r in s.conn.execute("PRAGMA table_info(runs)")]
    assert sorted(cols) == sorted(COLUMN_NAMES)
    assert [(r["run_key"], r["instance"], r["utility"]) for r in rows] == [("k0", 0, 1.5), ("k1", 1, 2.5)]
    new = [c for c in COLUMN_NAMES if c not in {d.split()[0] for d in OLD_COLUMNS}]
    assert "solution" in new and all(r[c] is None for r in rows for c in new)
    with Store(db) as s:  # opening again is a no-op
        assert len(s.rows()) == 2


def test_database_stripped_of_new_columns_is_resumed(tmp_path, capsys):
    """A real database with the columns of an older wbench dropped: reused run by run, same leaderboard."""
    db = tmp_path / "r.db"
    args = ("--solvers", "mrt,zf", "--set", "snr_db=10", "--instances", "3")
    assert compare(db, *args) == 0
    before = capsys.readouterr().out
    old = {c.split()[0] for c in OLD_COLUMNS}
    with sqlite3.connect(db) as c:
        for name in COLUMN_NAMES:
            if name not in old:
                c.execute(f"ALTER TABLE runs DROP COLUMN {name}")
    assert compare(db, *args) == 0
    out = capsys.readouterr()
    assert "0 runs done" in out.err and "6 reused" in out.err
    assert out.out == before


def test_newer_schema_is_refused_with_one_line(tmp_path, capsys):
    db = tmp_path / "new.db"
    _old_database(db)
    with sqlite3.connect(db) as c:
        c.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 99, newer"):
        Store(db)
    assert main(["leaderboard", "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wbench: error:") and "newer" in err and "\n" not in err
    with sqlite3.connect(db) as c:  # refused before any change
        assert "solution" not in [r[1] for r in c.execute("PRAGMA table_info(runs)")]


# -- export ----------------------------------------------------------------------------------------
def _load_export(path: Path) -> tuple[dict, np.lib.npyio.NpzFile]:
    data = np.load(path, allow_pickle=False)
    meta = json.loads(data["meta"][()])
    assert meta["format"] == "wbench-solutions" and meta["format_version"] == 1
    return meta, data


def test_export_rescored_independently_reproduces_stored_utilities(tmp_path):
    db, out, ch = tmp_path / "a.db", tmp_path / "s.npz", tmp_path / "ch.npz"
    weights = np.array([1.0, 2.0, 0.5])
    common = ("--set", "Nt=3", "--set", "K=3", "--set", "weights=1;2;0.5")
    assert compare(db, "--solvers", "wmmse[starts=2],mrt,zf,dpc-bound", *common,
                   "--sweep", "snr_db=0,15", "--instances", "4") == 0
    assert main(["solutions", "export", "--db", str(db), "--out", str(out)]) == 0
    assert main(["channels", "export", "--scenario", "miso", *common, "--instances", "4",
                 "--out", str(ch)]) == 0
    meta, data = _load_export(out)
    chans = np.load(ch, allow_pickle=False)
    fps = json.loads(chans["__meta__"][()])["fingerprints"]
    runs = meta["runs"]
    rows = {r["run_key"]: r for r in stored(db)}
    # every ok run of a solver that returns variables, and no bound (a value, no variables)
    assert len(runs) == sum(1 for r in rows.values() if r["status"] == "ok" and r["solver"] != "dpc-bound") == 24
    assert set(data.files) == {"meta"} | {f"r{j}.V" for j in range(len(runs))}
    for j, r in enumerate(runs):
        assert r["fingerprint"] == fps[r["instance"]] == rows[r["run_key"]]["fingerprint"]
        assert r["params"]["Nt"] == 3 and r["variables"]["V"]["array"] == f"r{j}.V"
        V = data[f"r{j}.V"]
        assert V.dtype == np.complex128 and V.shape == (3, 3)
        power = 10 ** (r["params"]["snr_db"] / 10)
        assert np.sum(np.abs(V) ** 2) <= power * (1 + 1e-9)
        u = miso_wsr(chans["H"][r["instance"]], V, weights, 1.0)
        assert u == pytest.approx(r["utility"], abs=1e-9, rel=1e-12)
        assert r["utility"] == rows[r["run_key"]]["utility"]


def test_export_selection_by_scenario_and_solvers(tmp_path, capsys):
    db, out = tmp_path / "a.db", tmp_path / "s.npz"
    assert compare(db, "--solvers", "mrt,zf,wmmse[starts=1,max_iter=5]", "--set", "snr_db=10",
                   "--instances", "2") == 0
    assert compare(db, "--solvers", "mrt", "--instances", "2", "--set", "architecture=diagonal",
                   scenario="bdris") == 0
    capsys.readouterr()

    def export(*args):
        assert main(["solutions", "export", "--db", str(db), "--out", str(out), *args]) == 0
        meta, data = _load_export(out)
        return sorted((r["scenario"], r["label"]) for r in meta["runs"]), meta, data

    labels, _, _ = export("--solvers", "mrt")
    assert labels == [("bdris", "mrt")] * 2 + [("miso", "mrt")] * 2
    labels, meta, data = export("--scenario", "bdris")
    assert labels == [("bdris", "mrt")] * 2
    assert set(meta["runs"][0]["variables"]) == {"P", "Phi"} and "r1.Phi" in data.files
    assert data["r1.Phi"].shape == (16,)  # a diagonal RIS: the vector of phases
    labels, _, _ = export("--scenario", "miso", "--solvers", "baseline")  # a tag: mrt and zf (rzf not run)
    assert labels == [("miso", "mrt")] * 2 + [("miso", "zf")] * 2
    labels, _, _ = export("--solvers", "wmmse[max_iter=5,starts=1]")
    assert labels == [("miso", "wmmse[max_iter=5,starts=1]")] * 2


@pytest.mark.parametrize("args,expected", [
    (["--scenario", "nope"], "holds no results for scenario nope (it holds: bdris, miso)"),
    (["--solvers", "wmse"], "unknown solver or tag 'wmse'"),
    (["--solvers", "wmmse"], "holds no runs of --solvers 'wmmse' (it holds: mrt)"),
    (["--scenario", "bdris", "--solvers", "dpc-bound"], "does not support scenario"),
    (["--out", "{tmp}/missing/s.npz"], "directory {tmp}/missing does not exist"),
    (["--out", "{tmp}"], "is a directory"),
    (["--db", "{tmp}/none.db"], "no results database at"),
    (["--db", "{tmp}"], "no results database at"),
])
def test_export_bad_input_is_one_line_exit_2(tmp_path, capsys, args, expected):
    db = tmp_path / "a.db"
    assert compare(db, "--solvers", "mrt", "--set", "snr_db=10", "--instances", "1") == 0
    assert compare(db, "--solvers", "mrt", "--instances", "1", "--set", "architecture=diagonal",
                   scenario="bdris") == 0
    capsys.readouterr()
    argv = ["solutions", "export", "--db", str(db), "--out", str(tmp_path / "s.npz")]
    argv += [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wbench: error:") and "\n" not in err
    assert expected.replace("{tmp}", str(tmp_path)) in err
    assert not (tmp_path / "s.npz").exists() and not list(tmp_path.glob(".*.tmp"))


def test_export_notes_runs_without_solutions(tmp_path, faulty_registry, capsys):
    db, out = tmp_path / "a.db", tmp_path / "s.npz"
    assert compare(db, "--solvers", "mrt,t-raises,t-overpower", "--set", "snr_db=10", "--instances", "2") == 0
    capsys.readouterr()
    assert main(["solutions", "export", "--db", str(db), "--out", str(out)]) == 0
    cap = capsys.readouterr()
    assert "2 selected run(s) have no stored solution" in cap.err and "wrote 4 runs' solutions" in cap.out
    meta, _ = _load_export(out)
    assert sorted(r["status"] for r in meta["runs"]) == ["infeasible", "infeasible", "ok", "ok"]
    assert all(r["feasible"] is (r["status"] == "ok") for r in meta["runs"])


# -- the README's example, as written there ---------------------------------------------------------
def _readme_example() -> tuple[list[list[str]], str]:
    text = README.read_text()
    section = text[text.index("### Stored solutions"):]
    end = re.search(r"\n#{2,3} ", section[4:])
    section = section[: end.start() + 4] if end else section
    commands = [shlex.split(line.strip(), comments=True)[1:] for line in section.splitlines()
                if line.startswith("    wbench ") and ("s.npz" in line or "ch.npz" in line or "a.db" in line)]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    return commands, code


def test_readme_rescoring_example_runs_as_written(tmp_path, monkeypatch, capsys):
    commands, code = _readme_example()
    assert [c[0] for c in commands] == ["compare", "solutions", "channels"]
    assert "s.npz" in code and "ch.npz" in code and len(code.strip().splitlines()) <= 6
    monkeypatch.chdir(tmp_path)
    for argv in commands:
        assert main(argv) == 0, argv
    capsys.readouterr()
    exec(compile(code, "README.md", "exec"), {})  # its assert compares with the stored utilities
    meta, data = _load_export(tmp_path / "s.npz")
    assert len(meta["runs"]) == 160  # wmmse and mrt, 4 SNRs, 20 channels: all ok, all re-scored above
    # the snippet would notice a wrong point: perturb one stored solution and it fails
    arrays = {k: data[k] for k in data.files}
    arrays["r0.V"] = arrays["r0.V"] * 0.9
    np.savez(tmp_path / "s.npz", **arrays)
    with pytest.raises(AssertionError):
        exec(compile(code, "README.md", "exec"), {})
