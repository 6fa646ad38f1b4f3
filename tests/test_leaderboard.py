"""Leaderboard statistics against independent computations on hand-made result rows."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from wbench.ranking import leaderboard, paired
from wbench.render import to_csv, to_markdown


def rows_for(solver, utilities, statuses=None, tags="conventional", config="c1", params=None, walls=None):
    statuses = statuses or ["ok"] * len(utilities)
    params = params or {"snr_db": 10.0}
    out = []
    for i, (u, st) in enumerate(zip(utilities, statuses)):
        out.append(dict(
            run_key=f"{config}-{solver}-{i}", config_key=config, scenario="miso", params=json.dumps(params),
            channels="gen:0", seed=0, instance=i, fingerprint=f"fp{i}", solver=solver, solver_version="1",
            options="{}", label=solver, tags=tags, budget="", budget_seconds=None, utility=u,
            feasible=int(st == "ok"), violations=None, max_violation=0.0,
            wall_s=(walls[i] if walls else 0.001 * (i + 1)), cpu_s=0.001, iterations=10, status=st, error=None,
            trace=None, batch=1, threads=1, wbench_version="0", created=0.0,
        ))
    return out


def test_mean_and_confidence_interval_are_student_t():
    u = [3.0, 5.0, 4.0, 6.5, 2.0]
    lb = leaderboard(rows_for("a", u)).iloc[0]
    lo, hi = stats.t.interval(0.95, len(u) - 1, loc=np.mean(u), scale=stats.sem(u))
    assert lb["mean"] == pytest.approx(np.mean(u))
    assert (lb["ci_low"], lb["ci_high"]) == pytest.approx((lo, hi))
    assert lb["time_median_s"] == pytest.approx(0.003)
    assert lb["time_p90_s"] == pytest.approx(np.quantile([0.001, 0.002, 0.003, 0.004, 0.005], 0.9))


def test_infeasible_never_ranks_above_feasible():
    good = rows_for("good", [1.0, 1.0, 1.0])
    cheat = rows_for("cheat", [9.0, 9.0, 9.0], ["ok", "infeasible", "ok"])
    lb = leaderboard(good + cheat).set_index("solver")
    assert lb.loc["good", "rank"] == 1 and lb.loc["cheat", "rank"] == 2
    # paired: the infeasible realisation counts as a loss for 'cheat'
    assert lb.loc["cheat", "win_rate"] == pytest.approx(2 / 3)
    assert lb.loc["cheat", "mean_gap"] == pytest.approx(8.0)
    assert lb.loc["cheat", "feasible_rate"] == pytest.approx(2 / 3)
    assert lb.loc["cheat", "n_infeasible"] == 1


def test_paired_statistics_on_shared_realisations():
    best = rows_for("best", [5.0, 5.0, 5.0, 5.0])
    other = rows_for("other", [6.0, 4.0, 5.0, 3.0])
    lb = leaderboard(best + other).set_index("solver")
    # wins on 1, loses on 2, ties on 1 -> (1 + 0.5) / 4
    assert lb.loc["other", "win_rate"] == pytest.approx(1.5 / 4)
    assert lb.loc["other", "mean_gap"] == pytest.approx(-0.5)
    assert math.isnan(lb.loc["best", "win_rate"])


def test_bound_rows_are_listed_first_and_unranked():
    lb = leaderboard(rows_for("a", [1.0, 2.0]) + rows_for("dpc", [3.0, 4.0], tags="bound"))
    assert lb.iloc[0]["solver"] == "dpc" and pd.isna(lb.iloc[0]["rank"])
    assert lb.iloc[1]["rank"] == 1


def test_configurations_are_separate_and_csv_has_contract_columns():
    rows = rows_for("a", [1.0], config="c1", params={"snr_db": 10.0}) + \
        rows_for("a", [2.0], config="c2", params={"snr_db": 20.0})
    lb = leaderboard(rows)
    assert list(lb["snr_db"]) == [10.0, 20.0] and list(lb["mean"]) == [1.0, 2.0]
    header = to_csv(lb).splitlines()[0].split(",")
    for col in ["scenario", "snr_db", "solver", "tags", "n", "mean", "ci_low", "ci_high", "time_median_s",
                "time_p90_s", "feasible_rate", "win_rate", "mean_gap", "n_ok", "n_infeasible", "n_error",
                "n_timeout", "n_nan"]:
        assert col in header
    md = to_markdown(lb)
    assert md.count("\n| ") == 3  # header + two rows


def test_paired_aligns_on_instances():
    import pandas as pd

    a = pd.Series([1.0, 2.0, 3.0], index=[0, 1, 2])
    b = pd.Series([0.0, 2.0], index=[1, 2])
    win, gap = paired(a, b)
    assert win == pytest.approx(1.0) and gap == pytest.approx(1.5)  # instances 1 and 2 only


def test_gaps_to_the_optimum_and_to_the_bound_are_paired_per_channel():
    # hand numbers: optimum 10, 8, 6, 4 on channels 0-3; bounds 12, 9, 7, 5 (dpc) and 11, 10, 7, 5 (another):
    # the tightest bound per channel is 11, 9, 7, 5.
    opt = rows_for("brb", [10.0, 8.0, 6.0, 4.0], tags="optimum")
    dpc = rows_for("dpc", [12.0, 9.0, 7.0, 5.0], tags="bound")
    other_bound = rows_for("cf", [11.0, 10.0, 7.0, 5.0], tags="bound")
    # 'a' fails on channel 2: its gaps are over channels 0, 1, 3 only
    a = rows_for("a", [9.0, 8.0, 1.0, 3.0], ["ok", "ok", "infeasible", "ok"])
    b = rows_for("b", [10.0, 7.0, 6.0, 2.0])
    lb = leaderboard(opt + dpc + other_bound + a + b).set_index("solver")
    assert lb.loc["a", "gap_opt"] == pytest.approx((1 + 0 + 1) / 3)
    assert lb.loc["a", "gap_opt_rel"] == pytest.approx((1 / 10 + 0 / 8 + 1 / 4) / 3)
    assert lb.loc["b", "gap_opt"] == pytest.approx((0 + 1 + 0 + 2) / 4)
    assert lb.loc["b", "gap_opt_rel"] == pytest.approx((0 + 1 / 8 + 0 + 2 / 4) / 4)
    assert lb.loc["a", "gap_bound"] == pytest.approx((2 + 1 + 2) / 3)
    assert lb.loc["b", "gap_bound_rel"] == pytest.approx((1 / 11 + 2 / 9 + 1 / 7 + 3 / 5) / 4)
    assert lb.loc["brb", "gap_bound"] == pytest.approx((1 + 1 + 1 + 1) / 4)
    assert math.isnan(lb.loc["brb", "gap_opt"]) and math.isnan(lb.loc["dpc", "gap_bound"])
    # order: bounds, then the optimum (unranked), then the ranked solvers; no heuristic ranked above it
    order = list(lb.index)
    assert order[:2] == ["dpc", "cf"] and order[2] == "brb" and order[3:] == ["b", "a"]
    assert pd.isna(lb.loc["brb", "rank"]) and lb.loc["b", "rank"] == 1
    assert lb.loc["brb", "feasible_rate"] == 1.0
    assert {"gap_opt", "gap_opt_rel", "gap_bound", "gap_bound_rel"} <= set(to_csv(lb.reset_index()).splitlines()[0]
                                                                           .split(","))


def test_no_reference_no_gap_columns_and_one_reference_alone():
    plain = leaderboard(rows_for("a", [1.0, 2.0]) + rows_for("b", [2.0, 2.0]))
    assert not any(c.startswith("gap_") for c in plain.columns)
    with_bound = leaderboard(rows_for("a", [1.0, 2.0]) + rows_for("dpc", [3.0, 3.0], tags="bound"))
    assert "gap_bound" in with_bound.columns and "gap_opt" not in with_bound.columns
    assert with_bound.set_index("solver").loc["a", "gap_bound"] == pytest.approx(1.5)
