"""The terminal leaderboard fits 120 columns without losing a solver name or a budget; ``--wide``, Markdown
and CSV keep every column; ``wbench list`` shows the option values solvers really use."""

from __future__ import annotations

import io
import json

from rich.console import Console

from wbench.cli import main
from wbench.ranking import leaderboard
from wbench.render import print_table, to_csv, to_markdown

SOLVERS = [  # (label, budget): the bdris headline's solvers and the longest labels wbench makes
    ("multistart", "method=slsqp,starts=10,max_iter=500,final_project=True"),
    ("metaopt", "iters=300"),
    ("ao", "max_outer=500,tol=0.0001,wmmse_iter=1,cg_iter=20,warm=none"),
    ("metaopt-alg3", "iters=300,warm_iters=300,final_project=True"),
    ("adam", "iters=300"),
    ("manifold", "method=cg,max_iter=1000,starts=1"),
    ("wmmse", "max_iter=100,tol=0.0001,starts=10,init=random"),
    ("wmmse[init=mrt,max_iter=10,starts=1]", "max_iter=10,tol=0.0001,starts=1,init=mrt"),
    ("mlbf", "variant=paper,update=lstm,outer=500,inner=10,update_every=5,hidden=200,lr=0.0001,starts=1"),
]


def headline_rows(statuses: dict[str, str] | None = None) -> list[dict]:
    rows = []
    for arch in ("diagonal", "fully"):
        params = {"B": 16, "K": 4, "Nt": 4, "architecture": arch, "pt_dbm": 30.0}
        for j, (label, budget) in enumerate(SOLVERS):
            for i in range(5):
                status = (statuses or {}).get(label, "ok") if i == 0 else "ok"
                rows.append(dict(
                    run_key=f"{arch}-{label}-{i}", config_key=arch, scenario="bdris", params=json.dumps(params),
                    channels="gen:0", seed=0, instance=i, fingerprint=f"fp{i}", solver=label.split("[")[0],
                    solver_version="1", options="{}", label=label, tags="conventional", budget=budget,
                    budget_seconds=None, utility=20.0 + j + 0.1 * i, feasible=1, violations=None,
                    max_violation=1e-15, wall_s=0.01 * (j + 1) * (i + 1), cpu_s=0.01, iterations=300,
                    status=status, error=None, trace=None, batch=1, threads=1, wbench_version="0", created=0.0))
    return rows


def render(lb, width: int = 120, wide: bool = False) -> str:
    buf = io.StringIO()
    print_table(lb, console=Console(width=width, file=buf), wide=wide)
    return buf.getvalue()


def solver_cells(lines: list[str]) -> set[str]:
    """The solver column's cells, continuation lines (empty rank) joined, spaces removed."""
    head = next(line for line in lines if "solver" in line).split("┃")[1:-1]
    rank, col = [h.strip() for h in head].index("#"), [h.strip() for h in head].index("solver")
    cells: list[str] = []
    for line in lines:
        parts = line.split("│")[1:-1]
        if len(parts) != len(head):
            continue
        if parts[rank].strip():
            cells.append(parts[col].strip())
        elif cells:
            cells[-1] += parts[col].strip()
    return {c.replace(" ", "") for c in cells}


def test_the_headline_table_fits_120_columns_with_every_name_and_budget_intact():
    lb = leaderboard(headline_rows())
    out = render(lb)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 120
    assert "…" not in out  # nothing truncated
    labels = solver_cells(lines)
    for label, budget in SOLVERS:
        assert label in labels  # a long label may wrap after a comma, never lose a character
        assert any(budget in line for line in lines), budget  # in the table, or whole in the legend
    # the narrow table keeps the comparison columns and moves the rare ones behind --wide
    header = next(line for line in lines if "solver" in line)
    for col in ("solver", "budget", "mean ± 95% CI", "time med", "feasible", "win", "gap"):
        assert col in header
    for col in ("time p90", "iters", "max viol", "failures"):
        assert col not in header
    assert "--wide" in out
    # mean ± half-width is the Student-t interval of the leaderboard
    r = lb.iloc[0]
    assert f"{r['mean']:.3f} ± {(r['ci_high'] - r['ci_low']) / 2:.3f}" in out


def test_failures_show_in_the_narrow_table_when_there_are_any():
    out = render(leaderboard(headline_rows({"ao": "timeout"})))
    assert max(len(line) for line in out.splitlines()) <= 120
    assert "failures" in out and "timeout 1" in out


def test_short_budgets_stay_inline_and_a_narrow_table_has_no_legend():
    rows = [r for r in headline_rows() if r["label"] in ("metaopt", "adam")]
    out = render(leaderboard(rows))
    assert "iters=300" in out and "[1]" not in out


def test_wide_markdown_and_csv_keep_every_column():
    lb = leaderboard(headline_rows())
    wide = render(lb, width=250, wide=True)
    md = to_markdown(lb)
    for text in (wide, md):
        for col in ("time p90", "iters", "max viol", "failures", "mean [95% CI]", "win vs best", "gap to best"):
            assert col in text
    for _, budget in SOLVERS:
        assert budget in md  # inline in Markdown
    head = to_csv(lb).splitlines()[0].split(",")
    assert {"time_p90_s", "iters_median", "max_violation", "budget", "ci_low", "ci_high"} <= set(head)


def test_list_shows_the_values_solvers_really_use(capsys, fresh_registry):
    assert main(["list", "solvers"]) == 0
    out = capsys.readouterr().out
    mlbf = fresh_registry.solver("mlbf")
    shown = mlbf.effective_options(mlbf.resolve_options({}))
    assert shown["outer"] == 500 and shown["inner"] == 10 and shown["hidden"] == 200 and shown["lr"] == 1e-4
    fast = fresh_registry.solver("mlbf-wmmse")
    assert fast.effective_options(fast.resolve_options({}))["outer"] == 25
    assert "outer=500" in out and "outer=25" in out and "outer=0," not in out and "hidden=0," not in out
    assert max(len(line) for line in out.splitlines()) <= 120


def test_optimum_row_and_gap_columns_in_the_tables():
    from tests.test_leaderboard import rows_for

    rows = (rows_for("brb", [10.0, 8.0], tags="optimum") + rows_for("dpc-bound", [12.0, 9.0], tags="bound")
            + rows_for("wmmse", [9.0, 8.0]) + rows_for("mrt", [5.0, 4.0], tags="baseline"))
    lb = leaderboard(rows)
    out = render(lb)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 120
    header = next(line for line in lines if "solver" in line)
    assert "to opt" in header and "to bound" not in header and "gap to opt %" not in header
    brb_line = next(line for line in lines if " brb " in line)
    assert "opt" in brb_line.split("│")[1]
    wm_line = next(line for line in lines if " wmmse " in line)
    assert "0.500" in wm_line  # mean of (10 - 9, 8 - 8)
    wide = render(lb, width=250, wide=True)
    md = to_markdown(lb)
    for text in (wide, md):
        for col in ("gap to opt", "gap to opt %", "gap to bound", "gap to bound %"):
            assert col in text
    row = next(line for line in md.splitlines() if line.startswith("| opt | brb"))
    assert "| - |" in row  # no gap of the optimum to itself
    assert "5.00%" in next(line for line in md.splitlines() if "| wmmse |" in line)  # (1/10 + 0/8) / 2


def test_batched_runs_are_marked_and_explained_unbatched_ones_are_not():
    """A row whose runs were solved in batches carries the mark on its time cells and the table a note saying
    the time is a share of the batch; rows solved alone do not, and a table without batched rows has no note."""
    from wbench.render import BATCH_MARK, batch_note, display_rows

    rows = headline_rows()
    for r in rows:
        if r["label"] in ("metaopt", "adam"):
            r["batch"] = 5
    lb = leaderboard(rows)
    assert set(lb.loc[lb["batch"] > 1, "solver"]) == {"metaopt", "adam"}
    header, cells = display_rows(lb)
    t_med, t_p90, solver = header.index("time med"), header.index("time p90"), header.index("solver")
    for row in cells:
        batched = row[solver] in ("metaopt", "adam")
        assert row[t_med].endswith(BATCH_MARK) == batched and row[t_p90].endswith(BATCH_MARK) == batched
    out = render(lb)
    assert max(len(line) for line in out.splitlines()) <= 120
    assert "batches of 5 realisations" in out and out.count(BATCH_MARK) == 2 * 2 + 1  # two configs, + the note
    md = to_markdown(lb)
    assert md.count(BATCH_MARK) == 2 * 2 * 2 + 1 and batch_note(lb) in md  # time med and p90 in Markdown
    assert "batch" in to_csv(lb).splitlines()[0].split(",")

    plain = leaderboard(headline_rows())
    assert (plain["batch"] == 1).all() and batch_note(plain) == ""
    assert BATCH_MARK not in render(plain) and BATCH_MARK not in to_markdown(plain)


def test_rows_stored_without_a_batch_size_count_as_unbatched():
    rows = headline_rows()
    for r in rows:
        r.pop("batch")
    lb = leaderboard(rows)
    assert (lb["batch"] == 1).all()
