"""Scoring apart from what solvers see (imperfect CSI): the hidden part of a realisation never reaches a solver,
the harness scores on it, and the in-sample value the solver optimised is reported beside the score.

Oracles: the hidden arrays' bytes are absent from everything a solver could reach from its problem (searched by
a probe solver in this process, in worker processes and on dask), while the seen arrays' bytes are found there
(so the search can find what is there); the closed forms of MRT on an estimate (in-sample
``log2(1 + P ||h_hat||^2)``, scored ``log2(1 + P |h^H h_hat|^2 / ||h_hat||^2)``, ``tests/csi_plugin.py``); the
stochastic order that makes the mean optimism positive; perfect CSI (``se2 = 0``), where both are one number.
"""

from __future__ import annotations

import io
import os
import sqlite3

import numpy as np
import pandas as pd
import pytest

from tests import csi_plugin
from tests.helpers import compare, stored
from wbench import registry
from wbench.channels.channelset import realisation_rng
from wbench.engine import score
from wbench.ranking import leaderboard
from wbench.render import to_csv, to_markdown
from wbench.solver import RunContext, Solution
from wbench.store import COLUMNS, Store

MODULE = "tests.csi_plugin"


@pytest.fixture
def csi_env(monkeypatch, fresh_registry):
    """The toy imperfect-CSI scenario and probe solvers, loaded through ``WBENCH_PLUGIN_MODULES`` so that
    worker processes (local pool, dask) have them too."""
    monkeypatch.setenv("WBENCH_PLUGIN_MODULES", MODULE)
    reg = registry.get_registry(refresh=True)
    yield reg
    monkeypatch.delenv("WBENCH_PLUGIN_MODULES")
    registry.get_registry(refresh=True)


def channels(n: int, seed: int = 0, **given) -> list[dict[str, np.ndarray]]:
    sc = csi_plugin.ToyCsi()
    params = sc.resolve_params(given)
    return [sc.draw(params, realisation_rng(seed, "toy-csi", i)) for i in range(n)]


def contains(blobs: list[bytes], arr: np.ndarray) -> bool:
    needle = np.ascontiguousarray(arr).tobytes()
    return any(needle in b for b in blobs)


# -- the hidden part never reaches a solver ------------------------------------------------------------
@pytest.mark.parametrize("how", ["in-process", "local-pool", "dask"])
def test_the_problem_a_solver_receives_holds_no_hidden_data(tmp_path, csi_env, how):
    extra = {"in-process": [], "local-pool": ["--jobs", "2"], "dask": ["--executor", "dask", "--jobs", "2"]}[how]
    if how == "dask":
        pytest.importorskip("dask.distributed")
    out = tmp_path / "dumps"
    out.mkdir()
    n = 8
    assert compare(tmp_path / "r.db", "--solvers", f"leak-probe[dump={out}],leak-probe-batch[dump={out}]",
                   "--set", "K=2", "--set", "se2=0.3", "--instances", str(n), *extra, scenario="toy-csi") == 0
    dumps = csi_plugin.read_dumps(str(out))
    where = {d["where"] for d in dumps}
    # planning (declines, memory estimate), warm-up and single runs ("solve"), and a batch were all searched
    assert {"declines", "memory", "solve", "batch"} <= where
    if how != "in-process":
        assert any(d["pid"] != os.getpid() for d in dumps if d["where"] in ("solve", "batch"))
    chans = channels(n, K=2, se2=0.3)
    for d in dumps:
        blobs = d["buffers"] + [d["pickle"]]
        assert not any(contains(blobs, ch["H"]) for ch in chans), f"hidden H reached a solver ({d['where']})"
    for i, ch in enumerate(chans):  # the search finds what is there: every estimate reached some solver
        assert any(contains(d["buffers"], ch["H_hat"]) for d in dumps), i
        assert any(contains([d["pickle"]], ch["H_hat"]) for d in dumps), i
    rows = stored(tmp_path / "r.db")
    assert len(rows) == 2 * n and all(r["status"] == "ok" and r["in_sample"] is not None for r in rows)


def test_the_search_finds_hidden_data_that_is_there():
    """Negative controls for the probe: a problem holding the hidden array, or a view whose base holds it
    (the draw's shared buffer, were the seen arrays not copied), is caught."""
    sc = csi_plugin.ToyCsi()
    params = sc.resolve_params({"K": 2})
    ch = channels(1, K=2)[0]
    leaky = sc.problem(params, ch)
    leaky.extra = {"kept": [ch["H"]]}  # type: ignore[attr-defined]
    assert contains(csi_plugin.reachable_buffers(leaky), ch["H"])
    assert ch["H_hat"].base is ch["H"].base is not None  # the draw's one buffer
    through_base = sc.problem(params, {"H_hat": ch["H_hat"]})
    through_base.H = ch["H_hat"]  # an uncopied view, as a scenario keeping its input array would hold
    assert contains(csi_plugin.reachable_buffers(through_base), ch["H"])
    assert not contains([__import__("pickle").dumps(through_base)], ch["H"])  # why the walk is needed too


def test_seen_leaves_out_hidden_arrays_and_shares_no_memory_with_them():
    sc = csi_plugin.ToyCsi()
    ch = channels(1, K=2)[0]
    seen = sc.seen(ch)
    assert set(seen) == {"H_hat"}
    assert np.array_equal(seen["H_hat"], ch["H_hat"])
    assert ch["H_hat"].base is not None and seen["H_hat"].base is None  # a copy owning its data
    with pytest.raises(ValueError, match="hidden arrays"):
        sc.seen({"H_hat": ch["H_hat"]})
    # a scenario without hidden arrays passes its realisation through
    from wbench.scenarios.miso import Miso

    h = {"H": np.ones((2, 2), complex)}
    assert Miso().seen(h)["H"] is h["H"]


# -- scored on the truth, in-sample beside it -----------------------------------------------------------
def test_mrt_on_the_estimate_is_optimistic_in_sample(tmp_path, csi_env, capsys):
    n, snr, se2 = 200, 10.0, 0.2
    db = tmp_path / "r.db"
    assert compare(db, "--solvers", "mrt", "--set", f"snr_db={snr}", "--set", f"se2={se2}", "--set", "Nt=3",
                   "--instances", str(n), scenario="toy-csi") == 0
    lb_csv = pd.read_csv(io.StringIO(capsys.readouterr().out))
    rows = sorted(stored(db), key=lambda r: r["instance"])
    assert len(rows) == n and all(r["status"] == "ok" for r in rows)
    P = 10 ** (snr / 10)
    for r, ch in zip(rows, channels(n, Nt=3, se2=se2)):
        h, hh = ch["H"][0], ch["H_hat"][0]
        assert r["in_sample"] == pytest.approx(np.log2(1 + P * np.vdot(hh, hh).real), rel=1e-12)
        assert r["utility"] == pytest.approx(np.log2(1 + P * abs(np.vdot(h, hh)) ** 2 / np.vdot(hh, hh).real),
                                             rel=1e-12)
    gap = np.array([r["in_sample"] - r["utility"] for r in rows])
    assert gap.mean() > 0
    lb = leaderboard(stored(db)).iloc[0]
    assert lb["in_sample"] == pytest.approx(np.mean([r["in_sample"] for r in rows]), rel=1e-12)
    assert lb["optimism"] == pytest.approx(gap.mean(), rel=1e-9)
    assert lb["optimism"] == pytest.approx(lb["in_sample"] - lb["mean"], rel=1e-9)
    assert lb["optimism_ci_low"] > 0  # significantly optimistic over 200 channels
    assert lb_csv.loc[0, "optimism"] == pytest.approx(gap.mean(), rel=1e-8)
    md = to_markdown(leaderboard(stored(db)))
    assert "in-sample" in md and "optimism [95% CI]" in md and f"+{gap.mean():.3f}" in md


def test_a_bound_on_what_solvers_see_is_an_in_sample_value(tmp_path, csi_env):
    """One user: the closed form ``log2(1 + P ||h_hat||^2)`` is the in-sample optimum, which MRT on the estimate
    reaches; it bounds nothing scored on the truth, so it is stored as ``in_sample`` with no utility."""
    db = tmp_path / "r.db"
    assert compare(db, "--solvers", "mrt,closed-form", "--instances", "5", scenario="toy-csi") == 0
    rows = stored(db)
    bound = {r["instance"]: r for r in rows if r["solver"] == "closed-form"}
    mrt = {r["instance"]: r for r in rows if r["solver"] == "mrt"}
    assert len(bound) == len(mrt) == 5
    for i, b in bound.items():
        assert b["status"] == "ok" and b["utility"] is None
        assert b["in_sample"] == pytest.approx(mrt[i]["in_sample"], rel=1e-12)
    lb = leaderboard(rows).set_index("solver")
    assert np.isnan(lb.loc["closed-form", "mean"]) and pd.isna(lb.loc["closed-form", "rank"])
    assert lb.loc["closed-form", "in_sample"] == pytest.approx(lb.loc["mrt", "in_sample"], rel=1e-12)
    assert lb.loc["mrt", "rank"] == 1 and "bound" in to_markdown(leaderboard(rows))


def test_perfect_csi_makes_in_sample_and_scored_equal(tmp_path, csi_env):
    db = tmp_path / "r.db"
    assert compare(db, "--solvers", "mrt,rzf,wmmse,leak-probe-batch[dump=" + str(tmp_path) + "]",
                   "--set", "se2=0", "--set", "K=2", "--instances", "6", scenario="toy-csi") == 0
    rows = stored(db)
    assert len(rows) == 4 * 6 and all(r["status"] == "ok" for r in rows)
    for r in rows:
        assert r["in_sample"] is not None and abs(r["in_sample"] - r["utility"]) <= 1e-12
    lb = leaderboard(rows)
    assert (lb["optimism"].abs() <= 1e-12).all()


def test_scenarios_without_hidden_data_have_no_in_sample(tmp_path, fresh_registry):
    db = tmp_path / "r.db"
    assert compare(db, "--solvers", "mrt,wmmse", "--set", "snr_db=10", "--instances", "3") == 0
    rows = stored(db)
    assert rows and all(r["in_sample"] is None for r in rows)
    lb = leaderboard(rows)
    assert "in_sample" not in lb.columns and "optimism" not in to_csv(lb).splitlines()[0]
    assert "optimism" not in to_markdown(lb)


def test_score_judges_utility_feasibility_and_trace_on_the_scoring_problem():
    """The point is feasible for the solver's problem but not the scoring one (a smaller budget): the verdict
    is the scoring problem's; the trace is evaluated there too; the in-sample value on the solver's."""
    sc = csi_plugin.ToyCsi()
    ch = channels(1, K=2)[0]
    seen = sc.problem(sc.resolve_params({"K": 2, "snr_db": 10.0}), sc.seen(ch))
    strict = sc.problem(sc.resolve_params({"K": 2, "snr_db": 9.0}), {"H_hat": ch["H"]})
    x = seen.initial("mrt")
    ctx = RunContext(np.random.default_rng(0))
    ctx.checkpoint(x, 0)
    solver = registry.get_registry().solver("mrt")
    out = score(seen, solver, Solution(x), None, 0.01, 0.01, None, ctx, scorer=strict)
    assert out["status"] == "infeasible" and out["feasible"] is False
    assert out["utility"] == pytest.approx(strict.utility(x), rel=1e-15)
    assert out["in_sample"] == pytest.approx(seen.utility(x), rel=1e-15)
    assert out["trace"][0][2] == pytest.approx(strict.utility(x), rel=1e-15) and out["trace"][0][3] is False
    plain = score(seen, solver, Solution(x), None, 0.01, 0.01, None, ctx)
    assert plain["status"] == "ok" and plain["in_sample"] is None
    assert plain["utility"] == pytest.approx(seen.utility(x), rel=1e-15)


def test_failed_task_rows_have_no_in_sample(csi_env):
    from wbench.engine import build_configs, failed_task_rows
    from wbench.engine.tasks import Task

    cfg = build_configs("toy-csi", {}, {}, 0)[0]
    rows = failed_task_rows(Task(cfg, "mrt", (), "mrt", "", (0, 1)), "error", "worker died")
    assert [r["status"] for r in rows] == ["error", "error"] and all(r["in_sample"] is None for r in rows)


# -- the store grows the column on open ----------------------------------------------------------------
def test_a_database_of_the_previous_schema_opens_keeps_its_rows_and_gets_the_new_column(tmp_path):
    db = tmp_path / "old.db"
    old = [(n, t) for n, t in COLUMNS if n != "in_sample"]
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [("app", "wbench"), ("schema_version", "1")])
    conn.execute(f"CREATE TABLE runs ({', '.join(f'{n} {t}' for n, t in old)})")
    row = {n: None for n, _ in old}
    row.update(run_key="k1", config_key="c", scenario="miso", params="{}", channels="gen:0", instance=0,
               fingerprint="f", solver="mrt", solver_version="1", options="{}", label="mrt", tags="baseline",
               status="ok", utility=1.5)
    conn.execute(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
    conn.commit()
    conn.close()
    with Store(db) as s:
        (kept,) = s.rows()
        assert kept["run_key"] == "k1" and kept["utility"] == 1.5 and kept["in_sample"] is None
        new = dict(row, run_key="k2", instance=1, in_sample=2.5)
        assert s.write([new]) == 1
    with Store(db) as s:  # opening again changes nothing
        got = {r["run_key"]: r["in_sample"] for r in s.rows()}
        cols = [r[1] for r in s.conn.execute("PRAGMA table_info(runs)")]
    assert got == {"k1": None, "k2": 2.5}
    assert cols == [n for n, _ in old] + ["in_sample"]
