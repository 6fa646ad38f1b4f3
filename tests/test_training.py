"""Trained solvers (issue 20): trained once per configuration (cached in memory and on disk, retrained when
what determines the policy changes), on channels disjoint from the evaluation channels, training cost recorded
apart from the per-instance time."""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest

from wbench import Solution, Solver, hookimpl
from wbench.api import compare_rows
from wbench.channels.channelset import fingerprint, realisation_rng
from wbench.engine import training
from wbench.params import Param

LOG: dict[str, list] = {"train": [], "seen": [], "clock": []}


class MeanLearner(Solver):
    """'Learns' the mean of ``|H|`` over its training channels; answers MRT scaled to the full power."""

    name, tags, description = "t-mean", frozenset({"learned"}), "learns a mean of training channels"
    trains = True
    options = {"episodes": Param(5, "training channels", min=1), "scale": Param(1.0, "unused in training")}

    def train(self, scenario, params, options, train_seeds):
        chans = [train_seeds.channel(j) for j in range(options["episodes"])]
        LOG["train"].append([fingerprint(c) for c in chans])
        mean = np.mean([np.abs(c["H"]).mean() for c in chans])
        LOG["clock"].append(("trained", time.perf_counter()))
        return {"mean": np.array(mean)}, options["episodes"]

    def solve(self, problem, options, ctx):
        assert ctx.policy is not None and ctx.policy["mean"] > 0
        LOG["clock"].append(("run", ctx._start))
        return Solution(problem.initial("mrt"))


@hookimpl
def wbench_register_solvers(register):
    register(MeanLearner())
    register(InferenceOptionLearner())


@pytest.fixture
def trained_registry(fresh_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("WBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(training, "_MEMORY", {})
    for v in LOG.values():
        v.clear()
    fresh_registry.add_module(sys.modules[__name__], "tests", "0")
    return fresh_registry


def _run(tmp_path, solvers="t-mean", db="a.db", **kw):
    return compare_rows("miso", solvers, set={"Nt": 3, "K": 2}, sweep={"snr_db": ["10"]}, instances=3, db=tmp_path / db, jobs=1,
                        echo=lambda s: None, **kw)


def test_trained_once_per_configuration_cached_and_retrained_on_option_change(trained_registry, tmp_path):
    rows = _run(tmp_path)
    assert len(LOG["train"]) == 1 and all(r["status"] == "ok" for r in rows)
    m = json.loads(rows[0]["metrics"]) if isinstance(rows[0]["metrics"], str) else rows[0]["metrics"]
    assert m["train_episodes"] == 5 and m["train_wall_s"] >= 0 and m["train_cpu_s"] >= 0
    assert len(list((tmp_path / "cache" / "trained").glob("t-mean-*.npz"))) == 1
    _run(tmp_path, db="b.db")  # same configuration, new store: the in-memory policy
    assert len(LOG["train"]) == 1
    training._MEMORY.clear()  # a new process: the disk cache
    rows2 = _run(tmp_path, db="c.db")
    assert len(LOG["train"]) == 1
    m2 = json.loads(rows2[0]["metrics"]) if isinstance(rows2[0]["metrics"], str) else rows2[0]["metrics"]
    assert m2 == m  # a cached policy carries the cost of the training that made it
    _run(tmp_path, "t-mean[scale=2]", db="d.db")  # an option changes: trained again
    assert len(LOG["train"]) == 2
    _run(tmp_path, db="e.db", seed=3)  # another seed: other training channels
    assert len(LOG["train"]) == 3
    assert not set(LOG["train"][0]) & set(LOG["train"][2])


def test_a_corrupt_cache_file_is_retrained(trained_registry, tmp_path):
    _run(tmp_path)
    (path,) = (tmp_path / "cache" / "trained").glob("t-mean-*.npz")
    path.write_bytes(b"not a zip")
    training._MEMORY.clear()
    rows = _run(tmp_path, db="b.db")
    assert len(LOG["train"]) == 2 and all(r["status"] == "ok" for r in rows)


def test_training_channels_are_disjoint_from_evaluation_channels(trained_registry, tmp_path):
    rows = _run(tmp_path)
    assert not set(LOG["train"][0]) & {r["fingerprint"] for r in rows}
    # by construction: no training stream equals an evaluation stream (other seed sequences)
    for seed in (0, 1, 7):
        ev = {realisation_rng(seed, "miso", i).bit_generator.state["state"]["state"] for i in range(200)}
        tr = {training.training_rng(seed, "miso", j).bit_generator.state["state"]["state"] for j in range(200)}
        assert len(ev) == len(tr) == 200 and not ev & tr


def test_training_happens_before_the_timed_runs(trained_registry, tmp_path):
    _run(tmp_path)
    trained = [t for k, t in LOG["clock"] if k == "trained"]
    runs = [t for k, t in LOG["clock"] if k == "run"]
    assert len(trained) == 1 and len(runs) >= 3  # (the warm-up is only for torch solvers)
    assert min(runs) >= trained[0]  # every run's clock started after training ended


def test_a_failing_training_gives_error_rows(trained_registry, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("no data")

    monkeypatch.setattr(MeanLearner, "train", boom)
    rows = _run(tmp_path)
    assert len(rows) == 3 and all(r["status"] == "error" and "training failed: " in r["error"] for r in rows)


class _Slow(Solver):
    name, tags, trains = "t-slow-train", frozenset({"learned"}), True

    def train(self, scenario, params, options, train_seeds):
        import os

        with open(os.environ["T_TRAIN_LOG"], "a") as f:
            f.write("trained\n")
        time.sleep(0.5)  # long enough for the other worker to reach the lock while this one trains
        return {"w": np.ones(2)}, 1


def _train_in_worker(args):
    import os

    cache, log = args
    os.environ["WBENCH_CACHE"], os.environ["T_TRAIN_LOG"] = cache, log
    from wbench.registry import get_registry

    sc = get_registry().scenario("miso")
    policy, info = training.trained_policy(_Slow(), sc, sc.resolve_params({}), "{}", 0, {})
    return float(policy["w"].sum()), info.cached


def test_parallel_workers_train_a_configuration_once(tmp_path):
    import multiprocessing as mp

    log = tmp_path / "log.txt"
    with mp.get_context("spawn").Pool(2) as pool:
        out = pool.map(_train_in_worker, [(str(tmp_path / "cache"), str(log))] * 2)
    assert log.read_text().count("trained") == 1
    assert [w for w, _ in out] == [2.0, 2.0] and sorted(c for _, c in out) == [False, True]


class InferenceOptionLearner(MeanLearner):
    """``MeanLearner`` declaring ``scale`` inference-only: only ``episodes`` shapes its policy."""

    name = "t-mean-infer"
    training_options = ("episodes",)

    def train(self, scenario, params, options, train_seeds):
        LOG["seen"].append(dict(options))
        return super().train(scenario, params, options, train_seeds)


def test_an_inference_only_option_reuses_the_policy_a_training_option_retrains(trained_registry, tmp_path):
    _run(tmp_path, "t-mean-infer", db="a.db")
    assert len(LOG["train"]) == 1
    training._MEMORY.clear()  # from the disk cache, as a new process would
    rows = _run(tmp_path, "t-mean-infer[scale=3]", db="b.db")
    assert len(LOG["train"]) == 1 and all(r["status"] == "ok" for r in rows)
    _run(tmp_path, "t-mean-infer[episodes=4]", db="c.db")
    assert len(LOG["train"]) == 2 and len(LOG["train"][1]) == 4
    # training never sees an inference-only option: the policy cannot depend on what its key leaves out
    assert all("scale" not in o for o in LOG["seen"])
    assert training.training_options(InferenceOptionLearner(), {"episodes": 5, "scale": 2.0}) == {"episodes": 5}
    assert training.training_options(MeanLearner(), {"episodes": 5, "scale": 2.0}) == {"episodes": 5, "scale": 2.0}
