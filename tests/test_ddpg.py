"""``ddpg`` (seed 003, Javadi et al.; SCENARIOS.md section 7): the agent learns on a toy with a known optimum,
its reward is eq. (29), its outputs lie in the variables' sets, and the harness trains it once per configuration."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wbench.api import compare_rows
from wbench.engine import training
from wbench.scenarios.star_ris_noma import StarRisNoma, action_size
from wbench.solvers.learned.ddpg import Ddpg, features, reward, to_vars
from wbench.solvers.learned.ddpg_core import DDPGConfig, load_actor, train_ddpg


def _toy(rng):
    return np.exp(2j * np.pi * rng.uniform(size=2))  # unit direct and reflected paths, random phases


def _toy_features(h):
    return np.concatenate([h.real, h.imag])


def _toy_reward(h, a):
    """One element aligning a reflected path with the direct one: ``|h0 + h1 e^{j 2 pi sigmoid(a)}|^2``; the
    optimum is 4 (aligned), a uniformly random phase gives 2 on average."""
    theta = 2 * np.pi / (1 + np.exp(-a[0]))
    return abs(h[0] + h[1] * np.exp(1j * theta)) ** 2


def test_trained_policy_beats_random_actions_on_phase_alignment(one_torch_thread):
    train = [_toy(np.random.default_rng([9, j])) for j in range(150)]
    test = [_toy(np.random.default_rng([7, j])) for j in range(200)]
    cfg = DDPGConfig(episodes=150, steps=4, hidden=32, batch=16, lr_actor=5e-3, lr_critic=1e-2, discount=0.0)
    actor = load_actor(train_ddpg(lambda j: train[j], _toy_features, _toy_reward, 1, cfg, np.random.default_rng(0)))
    learned = np.mean([_toy_reward(h, cfg.action_scale * actor(np.concatenate(([0.0], _toy_features(h)))))
                       for h in test])
    rng = np.random.default_rng(1)
    random = np.mean([_toy_reward(h, rng.uniform(-cfg.action_scale, cfg.action_scale, 1)) for h in test])
    assert learned <= 4.0 + 1e-12
    assert learned > random + 0.5 and learned > 2.5  # halfway or more from random phases to the optimum


def _problem(seed=0, **given):
    sc = StarRisNoma()
    params = sc.resolve_params({"N": 1, "M": 2, "K": 2, "N_BS": 2, **given})
    return sc.problem(params, sc.draw(params, np.random.default_rng(seed)))


def test_reward_is_eq29():
    pr = _problem()
    rng = np.random.default_rng(3)
    for _ in range(5):
        a = 3 * rng.standard_normal(action_size(pr))
        x = to_vars(pr, a)
        rates = pr.rates(x)
        # c2 = c3 = 0: the sum rate, equal to the scenario's order-free log-det utility
        assert reward(pr, a, 2.0, 0.0, 0.0) == pytest.approx(2.0 * pr.utility(x), rel=1e-9)
        short = np.minimum(0.0, rates - pr.r_min).sum()
        assert reward(pr, a, 0.0, 1.0, 0.0) == pytest.approx(short, abs=1e-12)
    silent = np.zeros(action_size(pr))
    silent[0] = 60.0  # softmax: nearly all power to user 0, user 1 gets e^-60 of it
    rates = pr.rates(to_vars(pr, silent))
    zero = int(np.sum(rates < 1e-9))
    assert zero >= 1
    assert reward(pr, silent, 0.0, 0.0, 1.0) == pytest.approx(-zero)


def test_the_scenarios_reward_metric_is_the_agents_reward():
    """The run metric ``reward`` (recorded for every solver) is eq. (29) with c1 = c2 = c3 = 1: the agents' reward
    at the same point; with every user above R_min it is the sum rate."""
    pr = _problem(R_min=2.0)
    rng = np.random.default_rng(5)
    for _ in range(4):
        a = 3 * rng.standard_normal(action_size(pr))
        x = to_vars(pr, a)
        assert pr.extra_metrics(x)["reward"] == pytest.approx(reward(pr, a), rel=1e-12)
    pr0 = _problem(R_min=0.0)
    x = pr0.initial("uniform")
    assert np.all(pr0.rates(x) > 1e-9)
    assert pr0.extra_metrics(x)["reward"] == pytest.approx(pr0.utility(x), rel=1e-9)


def test_features_are_scale_free():
    pr = _problem()
    f = features(pr)
    pr2 = _problem()
    pr2.F = pr2.F * 1e3
    assert np.allclose(features(pr2), f)
    assert f.size == 2 * (pr.F.size + pr.G.size + pr.f.size)


@pytest.fixture
def tmp_cache(fresh_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("WBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(training, "_MEMORY", {})
    return fresh_registry


def test_ddpg_through_the_harness_is_in_the_sets_and_trained_once(tmp_cache, tmp_path, monkeypatch):
    calls = []
    real = Ddpg.train

    def counted(self, *a, **k):
        calls.append(1)
        return real(self, *a, **k)

    monkeypatch.setattr(Ddpg, "train", counted)
    kw = dict(set={"N": 1, "M": 2, "K": 2, "N_BS": 2, "R_min": 0.0}, instances=2, jobs=1, echo=lambda s: None)
    rows = compare_rows("star-ris-noma", "ddpg[episodes=3,steps=2,batch=4]", db=tmp_path / "a.db", **kw)
    assert calls == [1]
    assert len(rows) == 2 and all(r["status"] == "ok" and r["feasible"] for r in rows)  # R_min = 0: only the sets
    m = json.loads(rows[0]["metrics"]) if isinstance(rows[0]["metrics"], str) else rows[0]["metrics"]
    assert m["train_episodes"] == 3
    compare_rows("star-ris-noma", "ddpg[episodes=3,steps=2,batch=4]", db=tmp_path / "b.db", **kw)
    assert calls == [1]  # the same configuration: the cached policy
    compare_rows("star-ris-noma", "ddpg[episodes=3,steps=2,batch=4,infer_steps=5]", db=tmp_path / "i.db", **kw)
    assert calls == [1]  # an inference-only option: the cached policy
    compare_rows("star-ris-noma", "ddpg[episodes=3,steps=2,batch=4,c1=2]", db=tmp_path / "c.db", **kw)
    assert len(calls) == 2  # another reward: another policy


def test_same_training_set_gives_the_same_policy(one_torch_thread):
    sc = StarRisNoma()
    params = sc.resolve_params({"N": 1, "M": 1, "K": 1, "N_BS": 1})
    ts = training.TrainingSet(sc, params, 5)
    opts = Ddpg().resolve_options({"episodes": 3, "steps": 2, "batch": 4})
    p1, _ = Ddpg().train(sc, params, opts, ts)
    p2, _ = Ddpg().train(sc, params, opts, ts)
    assert p1.keys() == p2.keys() and all(np.array_equal(p1[k], p2[k]) for k in p1)


def test_per_instance_variant_learns_on_the_instance_in_its_timed_run(tmp_cache, tmp_path):
    kw = dict(set={"N": 1, "M": 2, "K": 2, "N_BS": 2, "R_min": 0.0}, instances=2, jobs=1, echo=lambda s: None)
    rows = compare_rows("star-ris-noma", "ddpg[episodes_per_instance=4,steps=3,batch=4]", db=tmp_path / "a.db", **kw)
    assert all(r["status"] == "ok" and r["feasible"] for r in rows)
    m = json.loads(rows[0]["metrics"]) if isinstance(rows[0]["metrics"], str) else rows[0]["metrics"]
    assert m["train_episodes"] == 0  # nothing learned off-line
    assert all(r["iterations"] == 4 * 3 + 3 for r in rows)  # every training step and the rollout, in the run


def test_per_instance_result_is_the_best_action_it_tried():
    pr = _problem(R_min=0.0)
    from wbench.solver import RunContext

    ctx = RunContext(np.random.default_rng(0))
    opts = Ddpg().resolve_options({"episodes_per_instance": 3, "steps": 2, "batch": 2})
    sol = Ddpg().solve(pr, opts, ctx)
    def eq29(x):  # the reward from the variables (R_min = 0: no shortfall)
        return pr.utility(x) - np.sum(pr.rates(x) < 1e-9)

    # the reported reward is the returned point's, and no best-so-far iterate recorded on the way beats it
    assert sol.info["reward"] == pytest.approx(eq29(sol.x), rel=1e-9)
    assert len(ctx.checkpoints) >= 3
    assert all(eq29(x) <= sol.info["reward"] + 1e-9 for _, _, x in ctx.checkpoints)


def test_the_policy_keeps_the_training_curve_mean_reward_per_episode():
    """``reward_curve[e]`` is the mean of the rewards the training saw in episode ``e`` (recorded independently
    through ``observe``, which sees every step's unscaled reward)."""
    seen: list[float] = []

    def observe(a, r):
        seen.append(r)
        return False

    cfg = DDPGConfig(episodes=5, steps=3, hidden=8, batch=4)
    train = [_toy(np.random.default_rng([3, j])) for j in range(5)]
    pol = train_ddpg(lambda j: train[j], _toy_features, _toy_reward, 1, cfg, np.random.default_rng(0), observe)
    assert pol["reward_curve"].shape == (5,)
    assert np.allclose(pol["reward_curve"], np.reshape(seen, (5, 3)).mean(1), rtol=1e-12)


def test_meta_step_is_second_order_and_moves_the_actor(one_torch_thread):
    """Algorithm 1, steps (2)-(4): the meta-critic gets a gradient (through the actor's auxiliary step), and the
    actor ends at ``w_old - lr grad Omega`` (checked against an explicit recomputation)."""
    import torch

    from wbench.solvers.learned.ddpg_core import _meta_step, _mlp

    torch.manual_seed(0)
    cfg = DDPGConfig(hidden=8, lr_actor=0.1, action_scale=2.0)
    actor, critic, meta = _mlp(torch, 3, 2, 8), _mlp(torch, 5, 1, 8), _mlp(torch, 3, 1, 8)
    s_b, s_v = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    before = {k: v.detach().clone() for k, v in actor.named_parameters()}
    psi_before = [p.detach().clone() for p in meta.parameters()]
    # the expected actor step, by plain autograd on a copy
    w = {k: v.clone().requires_grad_(True) for k, v in before.items()}
    a = cfg.action_scale * torch.tanh(torch.func.functional_call(actor, w, (s_b,)))
    omega = (torch.sigmoid(meta(s_b)) * torch.nn.functional.softplus(a)).sum(1).mean()
    g = torch.autograd.grad(omega, list(w.values()))
    expected = {k: before[k] - 0.1 * gk for k, gk in zip(before, g)}
    opt = torch.optim.SGD(meta.parameters(), lr=0.5)
    _meta_step(torch, actor, critic, meta, opt, s_b, s_v, cfg)
    for k, v in actor.named_parameters():
        assert torch.allclose(v, expected[k], atol=1e-12)
    assert any(not torch.equal(p, q) for p, q in zip(meta.parameters(), psi_before))
    assert all(p.grad is None for p in critic.parameters())  # the critic is not touched by the meta step


def test_meta_ddpg_runs_through_the_harness(tmp_cache, tmp_path):
    kw = dict(set={"N": 1, "M": 2, "K": 2, "N_BS": 2, "R_min": 0.0}, instances=2, jobs=1, echo=lambda s: None)
    rows = compare_rows("star-ris-noma", "meta-ddpg[episodes=3,steps=2,batch=4]", db=tmp_path / "a.db", **kw)
    assert all(r["status"] == "ok" and r["feasible"] for r in rows)
    from wbench.selection import select

    for tag, expected in (("meta", {"meta-ddpg"}), ("learned", {"ddpg", "meta-ddpg"})):
        names = {s.name for s in select(tmp_cache, tag, "star-ris-noma")[0]}
        assert expected <= names and ("ddpg" in names) == (tag == "learned")


def test_budget_column_names_the_variant():
    d = Ddpg()
    assert d.budget_label(d.resolve_options({})) == f"episodes={d.options['episodes'].default}"
    assert d.budget_label(d.resolve_options({"episodes_per_instance": 7})) == "episodes_per_instance=7"
