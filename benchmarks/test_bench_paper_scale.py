"""How long a paper-scale run takes: each seed's main solver at the paper's size, its per-iteration cost
measured through the harness and extrapolated to the paper's iteration count and channel count.

Run: ``python -m pytest benchmarks/test_bench_paper_scale.py -s`` (about 10 minutes on 2 cores; ``-k`` picks a
row). For each configuration (the ``[claim.paper]`` sizes of the claims files, ``claims/``) the solver runs on
one channel through ``wbench.compare`` (one job, one thread) twice, with ``n`` and ``2n`` iterations (or training
episodes); the harness's recorded CPU time (``cpu_s``; ``train_cpu_s`` for a trained solver, whose training is
the paper-scale cost) gives the cost per iteration ``(t(2n) - t(n)) / n`` and the set-up ``t(n) - n x that``.
The extrapolation ``set-up + per-iteration x paper iterations`` is per channel (per configuration for a
trained solver), multiplied by the paper's channel count (instances x sweep points x compared arms) for the
whole claim. These are extrapolations from a measured per-step cost, never a measured paper-scale run, and
nothing is asserted about time; each case checks that both runs completed (``ok``, or ``infeasible``: a QoS-constrained problem after a few
iterations).
The README's table "How long does the paper-scale run take" is this benchmark's printout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

os.environ.setdefault("WBENCH_LOAD_PLUGINS", "")

import pytest

import wbench


@dataclass(frozen=True)
class Case:
    """One paper-scale configuration: ``solver`` is a selection with ``{n}`` where the iteration count goes."""

    seed: str
    scenario: str
    params: dict = field(hash=False)
    solver: str
    n: int
    paper_iters: int
    paper_channels: int
    what: str
    trained: bool = False


CASES = {
    "seed000-bdris": Case(
        "000 sec. VI (BD-RIS)", "bdris", {"Nt": 15, "K": 10, "B": 200, "architecture": "fully", "pt_dbm": 30},
        "metaopt-alg3[iters={n},warm=none]", 3, 26_000, 100,
        "metaopt-alg3, 25,000 + 1,000 iterations (the diagonal stage counted at the BD-RIS stage's cost), "
        "50 channels x {RIS, BD-RIS}"),
    "seed000-hrsma": Case(
        "000 sec. IV (H-RSMA)", "hrsma",
        {"Nt": 100, "K": 90, "G": 9, "azimuths": "paper", "M": 1000, "M_eval": 1000, "Delta": "pi/36",
         "snr_db": 30, "se2": 0.8},
        "metaopt-alg1[iters={n}]", 2, 7_500, 60,
        "metaopt-alg1, 7,500 iterations, 15 channels x 2 se2 x {H-RSMA, SDMA}"),
    "seed000-isac": Case(
        "000 sec. V (ISAC)", "isac",
        {"Nt": 100, "K": 40, "G": 4, "M": 1000, "M_eval": 1000, "Delta": "pi/8", "lambda_r": 0.1, "se2": 0.8},
        "metaopt-alg1[iters={n}]", 2, 7_500, 60,
        "metaopt-alg1, 7,500 iterations, 15 channels x {H-RSMA, SDMA} x {disjoint, overlapping}"),
    "seed001-mlbf": Case(
        "001 (MLBF)", "miso", {"Nt": 4, "K": 4, "snr_db": 30},
        "mlbf[outer={n},starts=1]", 20, 5_000, 5_000,
        "mlbf, 500 outer steps x 10 starts, 1000 channels x 5 SNR points"),
    "seed002-ggml": Case(
        "002 (GGML)", "hybrid", {"Nt": 64, "N_RF": 4, "K": 4, "snr_db": 10},
        "ggml[epochs={n}]", 50, 500, 50, "ggml, 500 epochs, 50 channels"),
    "seed003-ddpg": Case(
        "003 (Meta-DDPG)", "star-ris-noma", {"N": 4, "K": 16, "M": 8},
        "meta-ddpg[episodes={n}]", 4, 5_000, 1,
        "meta-ddpg training, 5,000 episodes (steps, network sizes: the solver's defaults), once per "
        "configuration", trained=True),
    "seed004-gml": Case(
        "004 (GML, movable antennas)", "comp-rsma-ma", {"pt_dbm": 37},
        "gml[iters={n}]", 20, 500, 150, "gml, 500 iterations, 150 trials"),
    "seed004-fmincon": Case(
        "004 (fmincon-like multistart)", "comp-rsma-ma", {"pt_dbm": 37},
        "multistart[starts={n}]", 2, 100, 150, "multistart, 100 starts, 150 trials"),
}


def _cost(case: Case, n: int, db: str) -> float:
    df = wbench.compare(case.scenario, case.solver.format(n=n), set=case.params, instances=1, db=db, jobs=1,
                        threads=1, solutions=False, quiet=True)
    row = df.iloc[0]
    # a completed run; after a few iterations a QoS-constrained run may still be infeasible
    assert row["status"] in ("ok", "infeasible"), (row["status"], row["error"])
    if case.trained:
        metrics = row["metrics"] if isinstance(row["metrics"], dict) else __import__("json").loads(row["metrics"])
        assert metrics["train_episodes"] == n
        return float(metrics["train_cpu_s"])
    return float(row["cpu_s"])


def _hours(s: float) -> str:
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 else f"{s:.1f} s"


@pytest.mark.parametrize("name", list(CASES))
def test_paper_scale_extrapolation(benchmark, name, tmp_path):
    case = CASES[name]
    t1 = _cost(case, case.n, str(tmp_path / "a.db"))
    t2 = benchmark.pedantic(lambda: _cost(case, 2 * case.n, str(tmp_path / "b.db")), rounds=1, iterations=1)
    per_iter = max(t2 - t1, 0.0) / case.n
    setup = max(t1 - case.n * per_iter, 0.0)
    per_channel = setup + per_iter * case.paper_iters
    total = per_channel * case.paper_channels
    benchmark.extra_info.update(per_iteration_s=per_iter, setup_s=setup, per_channel_s=per_channel,
                                paper_total_s=total)
    print(f"\n| {case.seed} | `{case.scenario}` {', '.join(f'{k}={v}' for k, v in case.params.items())} | "
          f"{case.what} | {per_iter * 1e3:.1f} ms | {_hours(per_channel)} | {_hours(total)} |")
