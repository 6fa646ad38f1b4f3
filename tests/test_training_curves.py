"""``wbench plot training`` (:mod:`wbench.solvers.learned.training_curves`): the mean and band over training seeds
equal NumPy's over curves trained independently of the harness, each curve is as long as the training's episodes,
and the command draws it."""

from __future__ import annotations

import numpy as np
import pytest

from wbench.api import compare_rows
from wbench.cli import main
from wbench.engine import training
from wbench.params import ParamError
from wbench.scenarios.star_ris_noma import StarRisNoma
from wbench.solvers.learned.ddpg import Ddpg
from wbench.solvers.learned.training_curves import training_data

SET = {"N": 1, "M": 2, "K": 2, "N_BS": 2}
OPTS = {"episodes": 4, "steps": 2, "batch": 4}
SEEDS = (0, 1, 2)


@pytest.fixture
def trained_db(fresh_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("WBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(training, "_MEMORY", {})
    db = tmp_path / "t.db"
    rows = []
    for seed in SEEDS:
        rows += compare_rows("star-ris-noma", "ddpg[episodes=4,steps=2,batch=4]", set=SET, instances=1, seed=seed,
                             db=db, jobs=1, echo=lambda s: None)
    return db, rows


def test_mean_and_band_are_numpys_over_independently_trained_curves(trained_db, one_torch_thread, tmp_path):
    db, rows = trained_db
    df = training_data(rows, db)
    assert set(df["solver"]) == {"ddpg[batch=4,episodes=4,steps=2]"}
    sc = StarRisNoma()
    params = sc.resolve_params(SET)
    opts = Ddpg().resolve_options(OPTS)
    curves = np.vstack([Ddpg().train(sc, params, opts, training.TrainingSet(sc, params, s))[0]["reward_curve"]
                        for s in SEEDS])
    assert curves.shape == (3, OPTS["episodes"])  # one value per training episode
    assert len(df) == OPTS["episodes"] and list(df["episode"]) == [1, 2, 3, 4] and set(df["seeds"]) == {3}
    assert np.allclose(df["mean"], curves.mean(0), rtol=1e-9)
    assert np.allclose(df["std"], curves.std(0, ddof=1), rtol=1e-9)
    assert np.allclose(df["lo"], curves.min(0)) and np.allclose(df["hi"], curves.max(0))
    assert not np.allclose(curves[0], curves[1])  # different seeds: different training channels, a real band
    # the command draws it (from the cache: the same database), and refuses what it cannot draw
    out = tmp_path / "t.png"
    assert main(["plot", "training", "--db", str(db), "--out", str(out)]) == 0 and out.stat().st_size > 0
    with pytest.raises(ParamError, match="no runs of a trained solver"):
        training_data([dict(r, solver="adam", label="adam") for r in rows], db)  # adam does not train
    with pytest.raises(ParamError, match="no runs of a trained solver of solver 'meta-ddpg'"):
        training_data(rows, db, solver="meta-ddpg")
    with pytest.raises(ParamError, match="cannot get its training curve"):  # a training that fails: one line
        training_data([dict(r, options='{"episodes": 0}') for r in rows], db)
