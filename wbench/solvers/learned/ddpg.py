"""``ddpg``: the deep deterministic policy gradient agent of seed 003 (Javadi, Farhadi, Robat Mili, Jorswieck,
Al-Dhahir, "Meta-learning for resource allocation in uplink multi-active STAR-RIS-aided NOMA system",
eqs. (16)-(17), (21), (25)-(29); SCENARIOS.md section 7) for ``star-ris-noma``, as a *trained* solver.

The agent (:mod:`wbench.solvers.learned.ddpg_core`) trains once per configuration on ``episodes`` channels of
the training set (disjoint from the evaluation channels; :mod:`wbench.engine.training`), each held for
``steps`` steps; its cost is recorded apart (``train_wall_s``, ``train_cpu_s``, ``train_episodes``). A run is
the policy's inference only: the deterministic actor rolled out for ``infer_steps`` steps on the channel, the
best action by reward returned.

* State (eq. (21)): the previous reward followed by the real and imaginary parts of the channels the solver
  sees (``F``, ``G``, ``f``, path loss folded in), each of the three blocks divided by its root-mean-square
  entry (wbench's choice: the path losses span orders of magnitude a network cannot take raw; the paper is
  silent on normalisation).
* Action (eqs. (16)-(17)): ``K + 5 N M`` scores mapped by
  :func:`wbench.scenarios.star_ris_noma.action_to_vars` (``P = P_max softmax``, ``delta = delta_max sigmoid``,
  ``alpha^r = sigmoid``, ``theta = 2 pi sigmoid``): every action lies in the variables' sets; with a RIS power
  budget the amplification is then scaled onto it (``fit_budget``). The association and the receivers are not
  actions (fixed by geometry, MMSE-SIC; the scenario's docstring).
* Reward (eq. (29), as corrected in SCENARIOS.md): ``c1 sum_k R_k + c2 sum_k min(0, R_k - R_min)`` minus ``c3``
  for every user with a zero rate (``R_k < 1e-9``). ``c1 = c2 = c3 = 1`` by default (the paper gives none).
* Not given by the paper, options here: ``episodes`` (paper 5000), ``steps`` (``T_max``), network width,
  minibatch (paper 100), replay size (paper 1e4), ``discount`` (paper 0.99; 0.5 by default here, since the
  reward depends on the action and channel only and a short training learns a lower-variance critic),
  ``tau``, learning rates, exploration noise, ``action_scale``, ``reward_scale``. The defaults are small so that
  training on the default configuration takes seconds, not the paper's 5000 episodes.

Training options: every option but ``infer_steps`` (:attr:`Ddpg.training_options`): the policy cache is keyed on
them only, so changing ``infer_steps`` reuses a trained policy. The policy keeps the training curve
(``reward_curve``, the mean reward of each episode) for ``wbench plot training``
(:mod:`wbench.solvers.learned.training_curves`, registered here).

Per-instance variant (``episodes_per_instance=N > 0``, SCENARIOS.md section 7 "a second, clearly named option"):
no training on other channels (``train`` returns an empty policy, 0 episodes); each run trains a fresh agent on
the instance itself for ``N`` episodes (within the run's time budget), so the whole cost is per-instance time,
and returns the best of the actions it tried and the final policy's rollout.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

import numpy as np

from ...hookspecs import hookimpl
from ...params import Param
from ...problem import Problem
from ...scenarios.star_ris_noma import action_size, action_to_vars, reward_of_rates
from ...solver import RunContext, Solution, Solver
from .ddpg_core import DDPGConfig, load_actor, rollout, train_ddpg

_CFG = DDPGConfig()


def features(problem: Any) -> np.ndarray:
    """The channel part of the state: real and imaginary parts of ``F``, ``G``, ``f``, each block divided by
    its root-mean-square entry."""
    parts = []
    for arr in (problem.F, problem.G, problem.f):
        a = np.asarray(arr, dtype=np.complex128).ravel()
        rms = np.sqrt(np.mean(np.abs(a) ** 2))
        a = a / rms if rms > 0 else a
        parts += [a.real, a.imag]
    return np.concatenate(parts)


def reward(problem: Any, a: np.ndarray, c1: float = 1.0, c2: float = 1.0, c3: float = 1.0) -> float:
    """Eq. (29): ``c1 sum R + c2 sum min(0, R - R_min) - c3 #{k: R_k = 0}`` at the action's variables."""
    return reward_of_rates(problem.rates(to_vars(problem, a)), problem.r_min, c1, c2, c3)


def to_vars(problem: Any, a: np.ndarray) -> dict[str, np.ndarray]:
    return problem.fit_budget(action_to_vars(problem, a))


class Ddpg(Solver):
    name = "ddpg"
    version = "2"
    description = "DDPG actor-critic trained on other channels, policy inference per instance (seed 003)"
    tags = frozenset({"learned"})
    scenarios = ("star-ris-noma",)
    uses_torch = True
    cpu_only = "its environment and replay buffer are NumPy"
    trains = True
    options = {
        "episodes": Param(_CFG.episodes, "training episodes (one training channel each; paper 5000)", min=1),
        "steps": Param(_CFG.steps, "steps per episode T_max (the channel is held)", min=1),
        "infer_steps": Param(0, "policy steps per instance at inference (0: steps)", min=0),
        "hidden": Param(_CFG.hidden, "hidden units per layer (two layers, actor and critic)", min=1),
        "batch": Param(_CFG.batch, "minibatch size (paper 100)", min=1),
        "buffer": Param(_CFG.buffer, "replay buffer size (paper 1e4)", min=1),
        "discount": Param(_CFG.discount, "discount eta (paper 0.99)", min=0, max=1),
        "tau": Param(_CFG.tau, "soft target update rate", min=0, max=1),
        "lr_actor": Param(_CFG.lr_actor, "actor Adam learning rate", min=0),
        "lr_critic": Param(_CFG.lr_critic, "critic Adam learning rate", min=0),
        "noise": Param(_CFG.noise, "exploration noise std (fraction of action_scale), decays to 10%", min=0),
        "action_scale": Param(_CFG.action_scale, "bound of the actor's scores (tanh times this)", min=1e-6),
        "reward_scale": Param(10.0, "rewards are divided by this in the state and the critic", min=1e-9),
        "episodes_per_instance": Param(0, "per-instance variant: train a fresh agent on the instance itself for "
                                          "this many episodes, timed (0: the trained policy)", min=0),
        "c1": Param(1.0, "reward weight of the sum rate", min=0),
        "c2": Param(1.0, "reward weight of the QoS shortfall", min=0),
        "c3": Param(1.0, "reward penalty per zero-rate user", min=0),
    }
    budget_options = ("episodes",)
    #: Every option but ``infer_steps`` shapes the policy: changing ``infer_steps`` reuses a cached one.
    training_options = tuple(k for k in options if k != "infer_steps")

    def budget_label(self, options: Mapping[str, Any]) -> str:
        n = options.get("episodes_per_instance")
        return f"episodes_per_instance={n}" if n else super().budget_label(options)

    def _config(self, o: Mapping[str, Any]) -> DDPGConfig:
        return DDPGConfig(**{k: o[k] for k in DDPGConfig.__dataclass_fields__
                             if k not in ("reward_scale", "meta", "lr_meta")},
                          reward_scale=float(o["reward_scale"]))

    def train(self, scenario, params, options, train_seeds) -> tuple[dict[str, np.ndarray], int]:
        o = self.resolve_options(options)
        if o["episodes_per_instance"]:
            return {}, 0  # the per-instance variant learns in its timed runs
        first = train_seeds.problem(0)
        rng = np.random.default_rng(np.random.SeedSequence(train_seeds.seed, spawn_key=(0x646470,)))
        policy = train_ddpg(train_seeds.problem, features, lambda p, a: reward(p, a, o["c1"], o["c2"], o["c3"]),
                            action_size(first), self._config(o), rng)
        return policy, int(o["episodes"])

    def solve(self, problem: Problem, options: Mapping[str, Any], ctx: RunContext) -> Solution:
        o = self.resolve_options(options)
        rew = lambda p, a: reward(p, a, o["c1"], o["c2"], o["c3"])  # noqa: E731
        steps = o["infer_steps"] or o["steps"]
        if o["episodes_per_instance"]:
            return self._solve_on_instance(problem, o, ctx, rew, steps)
        if ctx.policy is None:
            raise ValueError("ddpg: no trained policy (the harness trains it before the runs)")
        a, r, it = rollout(load_actor(ctx.policy), problem, features, rew, steps, o["action_scale"],
                           o["reward_scale"])
        x = to_vars(problem, a)
        ctx.checkpoint(x, it, force=True)
        return Solution(x, iterations=it, info={"reward": r})

    def _solve_on_instance(self, problem: Problem, o: Mapping[str, Any], ctx: RunContext, rew: Any,
                           steps: int) -> Solution:
        best: list[Any] = [None, -np.inf, 0]  # action, reward, steps taken

        def observe(a: np.ndarray, r: float) -> bool:
            best[2] += 1
            if r > best[1]:
                best[0], best[1] = a.copy(), r
            if ctx.wants(best[2]):
                ctx.checkpoint(to_vars(problem, best[0]), best[2])
            return ctx.expired()

        cfg = replace(self._config(o), episodes=int(o["episodes_per_instance"]))
        policy = train_ddpg(lambda j: problem, features, rew, action_size(problem), cfg, ctx.rng, observe)
        if not ctx.expired():
            a, r, it = rollout(load_actor(policy), problem, features, rew, steps, o["action_scale"],
                               o["reward_scale"])
            best[2] += it
            if r > best[1]:
                best[0], best[1] = a, r
        x = to_vars(problem, best[0])
        ctx.checkpoint(x, best[2], force=True)
        return Solution(x, iterations=best[2], info={"reward": best[1]})


class MetaDdpg(Ddpg):
    """``meta-ddpg``: seed 003's Meta-DDPG (Algorithm 1): ``ddpg`` whose actor also descends an auxiliary loss
    weighted by a meta-critic ``psi(s)``, itself trained so that this step lowers the actor loss on a separate
    validation minibatch (:func:`wbench.solvers.learned.ddpg_core._meta_step`). Same options as ``ddpg`` plus
    ``lr_meta`` (the paper gives none)."""

    name = "meta-ddpg"
    description = "Meta-DDPG: DDPG with an online meta-critic auxiliary actor loss (seed 003, Algorithm 1)"
    tags = frozenset({"learned", "meta"})
    options = {**Ddpg.options, "lr_meta": Param(1e-3, "meta-critic psi Adam learning rate", min=0)}
    training_options = tuple(k for k in options if k != "infer_steps")

    def _config(self, o: Mapping[str, Any]) -> DDPGConfig:
        return replace(super()._config(o), meta=True, lr_meta=float(o["lr_meta"]))


@hookimpl
def wbench_register_solvers(register) -> None:
    register(Ddpg())
    register(MetaDdpg())


@hookimpl
def wbench_register_figures(register) -> None:
    """The ``training`` figure kind (:mod:`wbench.solvers.learned.training_curves`)."""
    from .training_curves import register_figures

    register_figures(register)
