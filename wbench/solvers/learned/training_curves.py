"""The ``training`` figure kind (hook ``wbench_register_figures``): the training reward of the trained solvers
(``ddpg``, ``meta-ddpg``) against the episode, the mean and the min-max band over training seeds (seed 003,
Javadi et al., "Meta-learning for resource allocation in uplink multi-active STAR-RIS-aided NOMA system", Fig. 2:
"the reward in different episodes").

Where the curves come from: a trained solver keeps its training curve in its policy (``reward_curve``: the mean
eq. (29) reward of each episode's steps, exploration noise included; :func:`wbench.solvers.learned.ddpg_core.
train_ddpg`), and policies live in the training cache, not in the results database (a curve of 5000 numbers per
configuration does not belong in every run's row). :func:`training_data` takes the (solver, options,
parameters, seed) of the stored runs and asks :func:`wbench.engine.training.trained_policy` for each policy: from
the cache when it is there, else trained again (the same training channels and seeds: the same policy, at its
training cost, on one thread as the harness trains). A training seed is the run's channel seed (``--seed``):
run ``wbench compare`` at several seeds into one database for a band. Solvers without a curve (the per-instance
variant, ``episodes_per_instance > 0``, learns in its runs) are left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ...params import ParamError

SCENARIOS = ("star-ris-noma",)


def _curve(reg: Any, scenario: str, solver: str, options: Mapping[str, Any], params_json: str,
           seed: int) -> np.ndarray | None:
    from ...engine.limits import ThreadLimit
    from ...engine.training import trained_policy

    sc = reg.scenario(scenario)
    sv = reg.solver(solver)
    params = sc.resolve_params(json.loads(params_json))
    with ThreadLimit(1, sv.uses_torch):
        policy, _ = trained_policy(sv, sc, params, params_json, seed, options)
    curve = policy.get("reward_curve")
    return None if curve is None else np.asarray(curve, dtype=np.float64)


def training_data(rows: Sequence[Mapping[str, Any]], db: str | Path | None = None,
                  solver: str | None = None) -> pd.DataFrame:
    """Columns ``solver, config, episode, seeds, mean, std, lo, hi``: per trained solver (its label) and
    configuration (the parameters that differ between the stored configurations, ``""`` if one), per episode
    (1-based), over the ``seeds`` training seeds: the mean of the curves, their standard deviation (0 for one
    seed) and their minimum and maximum (the band). ``solver`` keeps one solver (label or name)."""
    from ...registry import get_registry

    reg = get_registry()
    trained = [r for r in rows if r.get("scenario") in SCENARIOS and r.get("solver") in reg.solvers
               and reg.solver(str(r["solver"])).trains]
    if solver is not None:
        trained = [r for r in trained if solver in (r["label"], r["solver"])]
    if not trained:
        what = f"of solver {solver!r} " if solver else ""
        raise ParamError(f"no runs of a trained solver {what}to plot the training of (e.g. --solvers ddpg,meta-ddpg)")
    jobs = sorted({(str(r["scenario"]), str(r["label"]), str(r["solver"]), str(r["options"]), str(r["params"]),
                    int(r["seed"])) for r in trained})
    params = {p: json.loads(p) for p in {j[4] for j in jobs}}
    varying = sorted(k for k in set().union(*params.values())
                     if len({json.dumps(v.get(k), sort_keys=True) for v in params.values()}) > 1)
    curves: dict[tuple[str, str], dict[int, np.ndarray]] = {}
    for scenario, label, name, options, pj, seed in jobs:
        try:
            c = _curve(reg, scenario, name, json.loads(options), pj, seed)
        except Exception as exc:  # a training that fails here failed in the runs too: one line, not a traceback
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ParamError(f"{label} (seed {seed}): cannot get its training curve: {msg}") from None
        if c is None or c.size == 0:
            continue
        config = " ".join(f"{k}={params[pj].get(k)}" for k in varying)
        curves.setdefault((label, config), {})[seed] = c
    if not curves:
        raise ParamError("the trained solvers' policies hold no training curve (the per-instance variant "
                         "learns in its runs)")
    out = []
    for (label, config), by_seed in sorted(curves.items()):
        lengths = {c.size for c in by_seed.values()}
        if len(lengths) > 1:  # cannot happen for one label and configuration: same options, same episodes
            raise ParamError(f"{label} {config}: training curves of different lengths {sorted(lengths)}")
        C = np.vstack([by_seed[s] for s in sorted(by_seed)])
        for e in range(C.shape[1]):
            col = C[:, e]
            out.append({"solver": label, "config": config, "episode": e + 1, "seeds": C.shape[0],
                        "mean": float(col.mean()), "std": float(col.std(ddof=1)) if C.shape[0] > 1 else 0.0,
                        "lo": float(col.min()), "hi": float(col.max())})
    return pd.DataFrame(out)


def draw_training(df: pd.DataFrame) -> Any:
    """The mean training reward per episode, one line per solver (and configuration), the min-max band over
    the training seeds shaded."""
    from ...figures import data as D

    plt = D.pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    keys = list(dict.fromkeys(zip(df["solver"], df["config"])))
    colours = D.palette([f"{s} {c}".strip() for s, c in keys])
    for s, c in keys:
        g = df[(df["solver"] == s) & (df["config"] == c)].sort_values("episode")
        name = f"{s} {c}".strip()
        n = int(g["seeds"].iloc[0])
        ax.plot(g["episode"], g["mean"], color=colours[name], lw=1.2, label=f"{name} ({n} seed{'s' * (n > 1)})")
        if n > 1:
            ax.fill_between(g["episode"], g["lo"], g["hi"], color=colours[name], alpha=0.2, lw=0)
    ax.set_xlabel("training episode")
    ax.set_ylabel("mean reward of the episode (eq. (29))")
    D.legend_outside(fig, ax)
    D.finish(fig, "Training reward per episode: mean over training seeds, min-max band",
             "Each episode: one training channel held for its steps, exploration noise included; the seeds are "
             "the runs' channel seeds (training channels disjoint from the evaluation channels).")
    return fig


def register_figures(register: Any) -> None:
    from ...figures.plugin import FigureKind

    register(FigureKind("training", SCENARIOS, training_data, draw_training,
                        "training reward against the episode, mean and min-max band over training seeds "
                        "(seed 003 Fig. 2)", options=("solver",)))
