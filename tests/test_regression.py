"""Regression leaderboards and ``wbench check`` (``wbench/regression.py``).

The end-to-end oracle: a suite made with the real solvers passes its own check; the same check with a
degraded copy of WMMSE fails naming the solver, the configuration and the drop, and passes again once
WMMSE is restored. The comparison rules are tested one by one on synthetic runs whose verdict is known
by construction; the committed ``leaderboards/`` are checked to cover every built-in scenario and to
hold channel fingerprints that the generator still reproduces (cheap: no solver runs).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wbench import regression
from wbench.cli import main
from wbench.params import ParamError
from wbench.regression import Settings, compare_runs, load_suites, read_runs

REPO = Path(__file__).resolve().parents[1]
SUITE = ('[suites]\nquick = "--scenario miso --solvers wmmse,mrt --instances 6 --sweep snr_db=10,30"\n'
         '[settings]\nreference = "wmmse"\n')


def write_suites(tmp_path: Path, text: str = SUITE) -> Path:
    d = tmp_path / "lb"
    d.mkdir(parents=True)
    (d / "suites.toml").write_text(text)
    return d


def test_degrading_a_solver_fails_the_check_naming_it_and_restoring_it_passes(tmp_path, fresh_registry,
                                                                               monkeypatch, capsys):
    from wbench.solvers.wmmse.wmmse import Wmmse

    d = write_suites(tmp_path)
    assert main(["leaderboard", "--update", str(d)]) == 0
    assert {p.name for p in d.iterdir()} >= {"quick.md", "quick.csv", "quick.runs.csv"}
    capsys.readouterr()
    assert main(["check", str(d)]) == 0
    assert "no regression" in capsys.readouterr().out

    original = Wmmse.solve_batch

    def degraded(self, problems, options, ctxs):  # a patched copy: two iterations from one start
        return original(self, problems, {**options, "max_iter": 2, "starts": 1}, ctxs)

    monkeypatch.setattr(Wmmse, "solve_batch", degraded)
    assert main(["check", str(d)]) == 1
    out = capsys.readouterr().out
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert fails and all(" wmmse: " in line for line in fails)
    assert any("miso[snr_db=30.0]" in line and "utility dropped" in line for line in fails)
    drop = re.search(r"paired change (-[0-9.]+)", fails[0])
    assert drop and float(drop.group(1)) < -1e-3
    assert "1 leaderboard" in out

    monkeypatch.setattr(Wmmse, "solve_batch", original)
    assert main(["check", str(d)]) == 0


def test_committed_files_record_how_they_were_made(tmp_path, fresh_registry):
    d = write_suites(tmp_path)
    assert main(["leaderboard", "--update", str(d)]) == 0
    for name in ("quick.md", "quick.csv", "quick.runs.csv"):
        text = (d / name).read_text()
        assert "wbench compare --scenario miso --solvers wmmse,mrt --instances 6 --sweep snr_db=10,30" in text
        assert re.search(r"versions: python [0-9.]+, wbench [0-9.]+, numpy", text)
        assert re.search(r"channels miso\[snr_db=10.0\]: seed 0, 6 realisations, set fingerprint [0-9a-f]{16}", text)
    runs = read_runs(d / "quick.runs.csv")
    assert len(runs) == 2 * 2 * 6 and set(runs["label"]) == {"wmmse", "mrt"}
    lb = pd.read_csv(d / "quick.csv", comment="#")
    assert set(lb["solver"]) == {"wmmse", "mrt"}


# -- the runtime rule end to end: CPU time, confirmed by a re-run ---------------------------------------
TIMED = ('[suites]\ntimed = "--scenario miso --solvers wmmse,adam[iters=30] --instances 6 --sweep snr_db=10"\n'
         '[settings]\nreference = "adam[iters=30]"\nmin_time_s = 0.001\n')


@contextlib.contextmanager
def cpu_hogs(seconds: float = 90.0):
    """A busy-loop process on every core this process may use, each ending by itself after ``seconds``.
    Yields a dict that holds, once the block has ended, the wall time of the block and each hog's CPU time."""
    loop = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"
    procs = [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(len(os.sched_getaffinity(0)))]
    usage: dict = {"hog_cpu_s": []}
    try:
        time.sleep(0.2)  # running before the timed work starts
        assert all(p.poll() is None for p in procs)
        t0 = time.monotonic()
        yield usage
        usage["wall_s"] = time.monotonic() - t0
    finally:
        for p in procs:
            p.kill()
            _, _, ru = os.wait4(p.pid, 0)  # the hog's own CPU time (Popen.wait would drop it)
            p.returncode = -9
            usage["hog_cpu_s"].append(ru.ru_utime + ru.ru_stime)


def _timed_check(d: Path) -> tuple[list, list[list[dict]]]:
    """``regression.check`` with the CLI's suite runner, recording the rows of every run it makes."""
    from wbench.cli import _suite_runner

    made: list[list[dict]] = []
    with _suite_runner("1") as run:
        def runner(arguments):
            made.append(run(arguments))
            return made[-1]

        return regression.check(d, runner, echo=lambda m: None), made


def test_unchanged_code_passes_the_runtime_rule_while_cpu_hogs_run_beside_it(tmp_path, fresh_registry):
    d = write_suites(tmp_path, TIMED)
    assert main(["leaderboard", "--update", str(d)]) == 0
    assert read_runs(d / "timed.runs.csv")["cpu_s"].notna().all()
    with cpu_hogs() as usage:
        found, made = _timed_check(d)
    assert kinds(found, "fail") == [], [f.line() for f in found]
    # the hogs did run beside the check, each busy for most of it (the scheduler may still favour the
    # check's short runs, so their own wall/CPU ratio is not a reliable sign of the load) ...
    assert made and all(cpu >= 0.3 * usage["wall_s"] for cpu in usage["hog_cpu_s"]), usage
    # ... and the runtime rule was applied (not skipped for want of a timed reference or solver)
    assert not [f for f in found if "runtimes not checked" in f.message]


def test_a_solver_slowed_five_times_fails_the_runtime_rule_confirmed_by_a_rerun(tmp_path, fresh_registry,
                                                                               monkeypatch, capsys):
    from wbench.solvers.wmmse.wmmse import Wmmse

    d = write_suites(tmp_path, TIMED)
    assert main(["leaderboard", "--update", str(d)]) == 0
    original = Wmmse.solve_batch

    def slowed(self, problems, options, ctxs):  # the same answers for five times the CPU, or more
        c0 = time.process_time()
        out = original(self, problems, options, ctxs)
        # at least 50 ms: a warm batch of six 4x4 WMMSE runs can take about a millisecond, no more than the
        # harness's own per-call CPU, so 5x the call alone could grow the recorded time by less than 3x
        end = time.process_time() + max(4 * (time.process_time() - c0), 0.05)
        while time.process_time() < end:
            pass
        return out

    monkeypatch.setattr(Wmmse, "solve_batch", slowed)
    capsys.readouterr()
    code = main(["check", str(d)])
    out = capsys.readouterr()
    assert code == 1, out
    fails = [line for line in out.out.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1 and " wmmse: slower: CPU time" in fails[0] and "confirmed by a re-run" in fails[0]
    assert "re-running to confirm" in out.err


def test_a_slowdown_the_rerun_does_not_reproduce_is_a_note(tmp_path, fresh_registry, monkeypatch):
    from wbench.solvers.wmmse.wmmse import Wmmse

    d = write_suites(tmp_path, TIMED)
    assert main(["leaderboard", "--update", str(d)]) == 0
    original = Wmmse.solve_batch
    calls = {"n": 0}

    def slow_once(self, problems, options, ctxs):  # 5x CPU (or more) in the check's first run only
        calls["n"] += 1
        c0 = time.process_time()
        out = original(self, problems, options, ctxs)
        if calls["n"] == 1:
            end = time.process_time() + max(4 * (time.process_time() - c0), 0.05)  # as above: >= 50 ms
            while time.process_time() < end:
                pass
        return out

    monkeypatch.setattr(Wmmse, "solve_batch", slow_once)
    found, made = _timed_check(d)
    assert len(made) == 2 and {r["label"] for r in made[1]} == {"wmmse", "adam[iters=30]"}
    assert kinds(found, "fail") == []
    notes = [f for f in kinds(found, "note") if f.solver == "wmmse"]
    assert len(notes) == 1 and "not reproduced by a re-run" in notes[0].message


# -- the rules, on synthetic runs ---------------------------------------------------------------------
def runs(label: str, utilities, status="ok", wall=0.1, fp="f", key="c1", error=None, cpu=None) -> pd.DataFrame:
    """Synthetic runs; the CPU time is the wall time unless given (a quiet machine)."""
    n = len(utilities)
    cpu = wall if cpu is None else cpu
    statuses = [status] * n if isinstance(status, str) else list(status)
    return pd.DataFrame({
        "config_key": key, "scenario": "miso", "params": json.dumps({"snr_db": 10.0}), "seed": 0,
        "channels": "gen:0", "instance": range(n), "fingerprint": [f"{fp}{i}" for i in range(n)],
        "label": label, "solver": label, "solver_version": "1", "tags": "conventional", "budget": "",
        "status": statuses, "utility": list(utilities), "max_violation": 0.0,
        "wall_s": wall if np.ndim(wall) else [wall] * n, "cpu_s": cpu if np.ndim(cpu) else [cpu] * n,
        "iterations": 1, "error": error,
    })


def kinds(found, kind):
    return [f for f in found if f.kind == kind]


RNG = np.random.default_rng(0)
BASE = 10 + RNG.standard_normal(20)
REF = runs("adam", BASE, wall=0.01)


def test_identical_runs_pass_and_rounding_noise_is_not_a_regression():
    old = pd.concat([REF, runs("x", BASE - 1)])
    assert compare_runs("s", old, old.copy(), Settings()) == []
    noisy = pd.concat([REF, runs("x", BASE - 1 + 1e-9 * RNG.standard_normal(20))])
    assert kinds(compare_runs("s", old, noisy, Settings()), "fail") == []


def test_a_significant_paired_drop_fails_and_a_rise_is_reported_not_failed():
    old = pd.concat([REF, runs("x", BASE - 1)])
    lower = pd.concat([REF, runs("x", BASE - 1.05 + 0.01 * RNG.standard_normal(20))])
    fails = kinds(compare_runs("s", old, lower, Settings()), "fail")
    assert len(fails) == 1 and fails[0].solver == "x" and "utility dropped" in fails[0].message
    higher = pd.concat([REF, runs("x", BASE - 0.5)])
    found = compare_runs("s", old, higher, Settings())
    assert kinds(found, "fail") == [] and "utility rose" in kinds(found, "improved")[0].message
    # one channel worse by a lot among 20 is within the paired interval: noise, not a regression
    one = BASE - 1
    one_off = one.copy()
    one_off[3] -= 0.5
    one_off[7] += 0.5
    assert kinds(compare_runs("s", pd.concat([REF, runs("x", one)]), pd.concat([REF, runs("x", one_off)]),
                              Settings()), "fail") == []


def test_changed_channels_fail_explicitly():
    old = pd.concat([REF, runs("x", BASE)])
    new = pd.concat([runs("adam", BASE, fp="g"), runs("x", BASE, fp="g")])
    fails = kinds(compare_runs("s", old, new, Settings()), "fail")
    assert len(fails) == 1 and "channels changed" in fails[0].message and "regenerate" in fails[0].message


def test_new_statuses_and_feasibility_drops_fail_with_the_error():
    old = pd.concat([REF, runs("x", BASE)])
    status = ["ok"] * 18 + ["error", "infeasible"]
    new = pd.concat([REF, runs("x", BASE, status=status, error="ValueError: boom")])
    msgs = [f.message for f in kinds(compare_runs("s", old, new, Settings()), "fail")]
    assert any("status was ok, now" in m and "error 1" in m and "boom" in m for m in msgs)
    assert any("feasible rate dropped 100% -> 90%" in m for m in msgs)
    # a status that was already there is not new
    assert kinds(compare_runs("s", new, new.copy(), Settings()), "fail") == []


def test_runtime_is_judged_as_a_ratio_to_the_reference_of_the_same_run():
    old = pd.concat([REF, runs("x", BASE, wall=0.1)])
    machine_twice_as_slow = pd.concat([runs("adam", BASE, wall=0.02), runs("x", BASE, wall=0.2)])
    assert compare_runs("s", old, machine_twice_as_slow, Settings()) == []
    slower = pd.concat([REF, runs("x", BASE, wall=0.35)])
    fails = kinds(compare_runs("s", old, slower, Settings()), "fail")
    assert len(fails) == 1 and "slower" in fails[0].message and "factor 3" in fails[0].message
    assert kinds(compare_runs("s", old, slower, Settings(time_factor=4.0)), "fail") == []
    faster = pd.concat([REF, runs("x", BASE, wall=0.01)])
    assert "faster" in kinds(compare_runs("s", old, faster, Settings()), "improved")[0].message
    # too fast to time reliably: not checked
    tiny = pd.concat([REF, runs("x", BASE, wall=0.001)])
    assert compare_runs("s", tiny, pd.concat([REF, runs("x", BASE, wall=0.009)]), Settings()) == []


def test_runtime_is_cpu_time_so_waiting_for_a_busy_core_is_not_a_slowdown():
    """The solver's wall time grew 10x (another process held the core) but its CPU time did not: no finding.
    The CPU time grown 5x fails, whatever the wall time says."""
    old = pd.concat([REF, runs("x", BASE, wall=0.1)])
    waited = pd.concat([REF, runs("x", BASE, wall=1.0, cpu=0.1)])
    assert compare_runs("s", old, waited, Settings()) == []
    burnt = pd.concat([REF, runs("x", BASE, wall=0.1, cpu=0.5)])
    fails = kinds(compare_runs("s", old, burnt, Settings()), "fail")
    assert len(fails) == 1 and fails[0].rule == "runtime" and "slower: CPU time" in fails[0].message
    assert "10x -> 50x" in fails[0].message


def test_committed_runs_without_cpu_times_are_compared_on_wall_time_with_a_note():
    old = pd.concat([REF, runs("x", BASE, wall=0.1)]).drop(columns=["cpu_s"])  # a file made before cpu_s
    found = compare_runs("s", old, pd.concat([REF, runs("x", BASE, wall=0.5, cpu=0.1)]), Settings())
    note = next(f for f in kinds(found, "note") if "no CPU times" in f.message)
    assert note.line() == f"NOTE     s: {note.message}"  # a suite-wide note names no configuration
    assert [f.rule for f in kinds(found, "fail")] == ["runtime"] and "wall time" in kinds(found, "fail")[0].message


@pytest.mark.parametrize("arguments,expected", [
    (("--scenario", "miso", "--solvers", "conventional,bound", "--instances", "5"),
     ("--scenario", "miso", "--solvers", "x,wmmse[init=mrt],adam", "--instances", "5")),
    (("--scenario", "miso", "--solvers=baseline"), ("--scenario", "miso", "--solvers=x,wmmse[init=mrt],adam")),
])
def test_the_confirming_rerun_narrows_the_solvers_to_the_slow_ones_and_the_reference(arguments, expected):
    suite = regression.Suite("s", arguments)
    assert regression.rerun_arguments(suite, ["x", "wmmse[init=mrt]", "adam"], Settings()) == expected


def test_a_runtime_failure_is_kept_only_when_the_rerun_reproduces_it():
    old = pd.concat([REF, runs("x", BASE), runs("y", BASE), runs("z", BASE)])
    first = pd.concat([REF, runs("x", BASE, cpu=0.5), runs("y", BASE, cpu=0.5), runs("z", BASE - 1)])
    found = compare_runs("s", old, first, Settings())
    assert sorted((f.solver, f.rule) for f in kinds(found, "fail")) == [("x", "runtime"), ("y", "runtime"),
                                                                         ("z", "")]
    calls = []

    def runner(arguments):  # the re-run: x is still slow, y was the machine
        calls.append(tuple(arguments))
        return pd.concat([REF, runs("x", BASE, cpu=0.5), runs("y", BASE)]).to_dict("records")

    suite = regression.Suite("s", ("--scenario", "miso", "--solvers", "x,y,z,adam"))
    out = regression.confirm_runtime(suite, old, found, runner, Settings(), echo=lambda m: None)
    assert calls == [("--scenario", "miso", "--solvers", "x,y,adam")]
    fails = {f.solver: f for f in kinds(out, "fail")}
    assert set(fails) == {"x", "z"} and "confirmed by a re-run" in fails["x"].message
    assert "utility dropped" in fails["z"].message  # other rules are not re-judged
    notes = [f for f in kinds(out, "note") if f.solver == "y"]
    assert len(notes) == 1 and "not reproduced by a re-run" in notes[0].message
    # nothing slow, nothing re-run
    assert regression.confirm_runtime(suite, old, [], runner, Settings()) == [] and len(calls) == 1


def test_missing_and_new_solvers_and_configurations():
    old = pd.concat([REF, runs("x", BASE), runs("y", BASE)])
    new = pd.concat([REF, runs("x", BASE), runs("z", BASE), runs("adam", BASE, key="c2")])
    found = compare_runs("s", old, new, Settings())
    assert [f.solver for f in kinds(found, "fail")] == ["y"]
    assert {f.solver for f in kinds(found, "note")} == {"z", ""}
    gone = compare_runs("s", pd.concat([old, runs("x", BASE, key="c3")]), new, Settings())
    assert any("configuration not produced" in f.message for f in kinds(gone, "fail"))


# -- the suites file ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text,needle", [
    (None, "no suites.toml"),
    ("[suites\n", "suites.toml"),
    ("[other]\n", "expected a [suites] table"),
    ('[suites]\nx = "--scenario miso --solvers mrt --db other.db"\n', "may not set --db"),
    ('[suites]\nx = "--scenario miso --solvers mrt"\n[settings]\nspeed = 1\n', "unknown setting(s) speed"),
    ('[suites]\nx = "--scenario miso --solvers mrt"\n[settings]\ntime_factor = "fast"\n', "bad [settings]"),
    ('[suites]\nx = "--scenario miso --solvers mrt"\n[settings]\nplugins = "wbench-spg"\n', "plugins must be a list"),
])
def test_bad_suites_files_are_one_line_errors(tmp_path, text, needle, capsys):
    d = tmp_path / "lb"
    d.mkdir()
    if text is not None:
        (d / "suites.toml").write_text(text)
    with pytest.raises(ParamError, match=re.escape(needle)):
        load_suites(d)
    assert main(["check", str(d)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err


def test_suites_run_without_installed_plugins_unless_named(tmp_path, fresh_registry, monkeypatch):
    """What is installed on the checking machine does not change the committed leaderboard's solvers."""
    from wbench.cli import _suite_runner

    seen = []
    monkeypatch.setenv("WBENCH_LOAD_PLUGINS", "something-installed")
    for allowed, text in (("", SUITE), ("wbench-spg", SUITE + 'plugins = ["wbench-spg"]\n')):
        d = write_suites(tmp_path / (allowed or "none"), text)
        with _suite_runner("1") as run:
            def runner(arguments):
                seen.append(os.environ.get("WBENCH_LOAD_PLUGINS"))
                return run(arguments)

            regression.update(d, runner, echo=lambda m: None)
            assert kinds(regression.check(d, runner, echo=lambda m: None), "fail") == []
        assert seen[-2:] == [allowed, allowed]
        assert os.environ["WBENCH_LOAD_PLUGINS"] == "something-installed"  # restored


def test_unknown_suite_and_missing_committed_runs(tmp_path, fresh_registry, capsys):
    d = write_suites(tmp_path)
    assert main(["check", str(d), "--suite", "nope"]) == 2
    assert "unknown suite(s) nope; valid: quick" in capsys.readouterr().err
    assert main(["check", str(d)]) == 1
    assert "no committed quick.runs.csv" in capsys.readouterr().out


# -- the committed leaderboards --------------------------------------------------------------------------
def test_committed_leaderboards_cover_every_builtin_scenario_with_reproducible_channels(fresh_registry):
    """Every built-in scenario has a committed suite, and the channels recorded there are the ones the
    generator draws today (else `wbench check` would fail with 'channels changed')."""
    from wbench.channels.channelset import GeneratedChannels

    suites, _ = load_suites(REPO / "leaderboards")
    covered = set()
    for suite in suites:
        args = list(suite.arguments)
        covered.add(args[args.index("--scenario") + 1])
        committed = read_runs(REPO / "leaderboards" / f"{suite.name}.runs.csv")
        assert (REPO / "leaderboards" / f"{suite.name}.md").read_text().count(suite.command) == 1
        scenario = fresh_registry.scenario(committed["scenario"].iloc[0])
        per_instance = committed.groupby(["params", "seed", "instance"])["fingerprint"].agg(set)
        for (params, seed, inst), fps in per_instance.items():
            src = GeneratedChannels(scenario, scenario.resolve_params(json.loads(params)), int(seed))
            assert fps == {src.get(int(inst))[1]}
    builtin = {name for name, s in fresh_registry.scenarios.items() if s.origin == "built-in"}
    assert builtin == {"miso", "bdris"} or builtin <= covered
    assert builtin <= covered, f"no committed leaderboard for {sorted(builtin - covered)}"
