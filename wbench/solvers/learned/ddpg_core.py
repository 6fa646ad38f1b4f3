"""A deep deterministic policy gradient (DDPG) agent for one-shot resource allocation (Lillicrap et al.,
"Continuous control with deep reinforcement learning", 2016), in the form of seed 003 (Javadi et al.,
"Meta-learning for resource allocation in uplink multi-active STAR-RIS-aided NOMA system", eqs. (25)-(29);
SCENARIOS.md section 7): an episode holds one channel for ``steps`` steps; the state is the previous reward
followed by the channel features; the actor ``rho(s)`` proposes an action, the environment returns its reward;
transitions go to a replay buffer; the critic regresses ``r + eta Q~(s', rho~(s'))`` (no terminal flag: an
episode is cut, not ended), the actor maximises ``Q(s, rho(s))``, and the target networks follow by soft
updates ``w~ <- tau w + (1 - tau) w~``.

This module is environment-agnostic: an environment is ``features(problem) -> vector`` and
``reward(problem, action) -> float``; :mod:`wbench.solvers.learned.ddpg` binds it to ``star-ris-noma``.

Choices where the paper is silent (each an option of the solver): networks of two hidden layers of ``hidden``
ReLU units, actor output ``action_scale * tanh`` (bounded scores for the mapping's softmax / sigmoids),
Gaussian exploration noise of standard deviation ``noise`` decaying linearly to 10% over the training, Adam
for both networks, one update per step once the buffer holds a batch; rewards are divided by ``reward_scale``
before they reach the critic and the state (the scale the networks see), never before they are reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class DDPGConfig:
    episodes: int = 200
    steps: int = 10
    hidden: int = 64
    batch: int = 64
    buffer: int = 10_000
    discount: float = 0.5
    tau: float = 0.05
    lr_actor: float = 1e-3
    lr_critic: float = 2e-3
    noise: float = 0.5
    action_scale: float = 4.0
    reward_scale: float = 1.0
    #: Meta-DDPG (seed 003, Algorithm 1): the actor also takes a step on a learnt auxiliary loss (meta-critic).
    meta: bool = False
    lr_meta: float = 1e-3


def _mlp(torch: Any, n_in: int, n_out: int, hidden: int) -> Any:
    nn = torch.nn
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, n_out)).double()


def actor_forward(torch: Any, actor: Any, s: Any, scale: float) -> Any:
    return scale * torch.tanh(actor(s))


def train_ddpg(
    problem_at: Callable[[int], Any],
    features: Callable[[Any], np.ndarray],
    reward: Callable[[Any, np.ndarray], float],
    action_dim: int,
    cfg: DDPGConfig,
    rng: np.random.Generator,
    observe: Callable[[np.ndarray, float], bool] | None = None,
) -> dict[str, np.ndarray]:
    """Train an actor on the problems ``problem_at(0..episodes-1)``; its weights as arrays (see
    :func:`load_actor`) and ``reward_curve``, the mean reward (unscaled, exploration noise included) of each
    episode's steps (NaN for episodes not run when ``observe`` stopped the training). All randomness (network initialisation, exploration, minibatches) comes from ``rng``.
    ``observe(action, reward)``, if given, sees every step's action and unscaled reward; training stops early
    when it returns ``True`` (a per-instance run out of time)."""
    import torch

    state_dim = 1 + features(problem_at(0)).size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**62)))
        actor = _mlp(torch, state_dim, action_dim, cfg.hidden)
        critic = _mlp(torch, state_dim + action_dim, 1, cfg.hidden)
        actor_t = _mlp(torch, state_dim, action_dim, cfg.hidden)
        critic_t = _mlp(torch, state_dim + action_dim, 1, cfg.hidden)
    actor_t.load_state_dict(actor.state_dict())
    critic_t.load_state_dict(critic.state_dict())
    opt_a = torch.optim.Adam(actor.parameters(), lr=cfg.lr_actor)
    opt_c = torch.optim.Adam(critic.parameters(), lr=cfg.lr_critic)
    meta = opt_m = None
    if cfg.meta:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.integers(2**62)))
            meta = _mlp(torch, state_dim, 1, cfg.hidden)
        opt_m = torch.optim.Adam(meta.parameters(), lr=cfg.lr_meta)
    cap = int(cfg.buffer)
    S = np.zeros((cap, state_dim))
    A = np.zeros((cap, action_dim))
    R = np.zeros(cap)
    S2 = np.zeros((cap, state_dim))
    n = 0
    total = cfg.episodes * cfg.steps
    curve = np.full(cfg.episodes, np.nan)  # mean unscaled reward of each episode's steps (the training curve)
    for ep in range(cfg.episodes):
        prob = problem_at(ep)
        feat = features(prob)
        prev = 0.0
        rewards: list[float] = []
        for t in range(cfg.steps):
            s = np.concatenate(([prev], feat))
            with torch.no_grad():
                a = actor_forward(torch, actor, torch.from_numpy(s), cfg.action_scale).numpy()
            sigma = cfg.noise * (1.0 - 0.9 * (ep * cfg.steps + t) / max(total - 1, 1))
            a = np.clip(a + sigma * cfg.action_scale * rng.standard_normal(action_dim), -cfg.action_scale,
                        cfg.action_scale)
            r_raw = float(reward(prob, a))
            rewards.append(r_raw)
            curve[ep] = float(np.mean(rewards))
            if observe is not None and observe(a, r_raw):
                break
            r = r_raw / cfg.reward_scale
            i = n % cap
            S[i], A[i], R[i], S2[i] = s, a, r, np.concatenate(([r], feat))
            n += 1
            prev = r
            if n >= cfg.batch:
                idx = rng.integers(min(n, cap), size=cfg.batch)
                s_b, a_b, r_b, s2_b = (torch.from_numpy(v[idx]) for v in (S, A, R, S2))
                with torch.no_grad():
                    a2 = actor_forward(torch, actor_t, s2_b, cfg.action_scale)
                    y = r_b[:, None] + cfg.discount * critic_t(torch.cat([s2_b, a2], 1))
                loss_c = torch.mean((critic(torch.cat([s_b, a_b], 1)) - y) ** 2)
                opt_c.zero_grad()
                loss_c.backward()
                opt_c.step()
                loss_a = -critic(torch.cat([s_b, actor_forward(torch, actor, s_b, cfg.action_scale)], 1)).mean()
                opt_a.zero_grad()
                loss_a.backward()
                opt_a.step()
                if meta is not None:
                    idx_v = rng.integers(min(n, cap), size=cfg.batch)
                    _meta_step(torch, actor, critic, meta, opt_m, s_b, torch.from_numpy(S[idx_v]), cfg)
                with torch.no_grad():
                    for net, tgt in ((actor, actor_t), (critic, critic_t)):
                        for p, q in zip(net.parameters(), tgt.parameters()):
                            q.mul_(1.0 - cfg.tau).add_(cfg.tau * p)
        else:
            continue
        break  # observe asked to stop
    out = {f"actor.{k}": v.detach().numpy().copy() for k, v in actor.state_dict().items()}
    out["dims"] = np.array([state_dim, action_dim, cfg.hidden])
    out["reward_curve"] = curve
    return out


def _meta_step(torch: Any, actor: Any, critic: Any, meta: Any, opt_m: Any, s_b: Any, s_v: Any,
               cfg: DDPGConfig) -> None:
    """Steps (2)-(4) of seed 003's Algorithm 1 (after Zhou et al. 2020's online meta-critic), step (1) being the
    actor's ordinary DDPG step just taken (``w_old``, with Adam, as plain DDPG): (2) ``w_new = w_old - lr
    grad_w Omega(w_old, psi)`` with ``Omega = E[psi(s) sum softplus(rho_w(s))]``, ``psi(s) = sigmoid(MLP(s))``;
    (3) ``psi <- psi - lr_meta grad_psi tanh(J(w_new) - J(w_old))`` with ``J = -E Q(s, rho(s))`` on the separate
    validation minibatch ``s_v``, second order through step (2); (4) ``w <- w_new``. Step (2) is plain gradient
    descent at ``lr_actor`` (the paper's form); wbench's choice: ``Omega`` sums the softplus over the action."""
    from torch.func import functional_call

    w_old = {k: v.detach().requires_grad_(True) for k, v in actor.named_parameters()}

    def rho(w: dict[str, Any], s: Any) -> Any:
        return cfg.action_scale * torch.tanh(functional_call(actor, w, (s,)))

    def J(w: dict[str, Any], s: Any) -> Any:
        return -critic(torch.cat([s, rho(w, s)], 1)).mean()

    psi = torch.sigmoid(meta(s_b))
    omega = (psi * torch.nn.functional.softplus(rho(w_old, s_b))).sum(1).mean()
    grads = torch.autograd.grad(omega, list(w_old.values()), create_graph=True)
    w_new = {k: w - cfg.lr_actor * g for (k, w), g in zip(w_old.items(), grads)}
    meta_loss = torch.tanh(J(w_new, s_v) - J(w_old, s_v).detach())
    opt_m.zero_grad()
    meta_loss.backward(inputs=list(meta.parameters()))
    opt_m.step()
    with torch.no_grad():
        for k, p in actor.named_parameters():
            p.copy_(w_new[k])


def load_actor(policy: dict[str, np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """The trained actor as a function ``state -> tanh scores`` (times ``action_scale`` gives the action, as
    :func:`rollout` does)."""
    import torch

    state_dim, action_dim, hidden = (int(v) for v in policy["dims"])
    actor = _mlp(torch, state_dim, action_dim, hidden)
    actor.load_state_dict({k[len("actor."):]: torch.from_numpy(np.array(v)) for k, v in policy.items()
                           if k.startswith("actor.")})

    def run(s: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.tanh(actor(torch.from_numpy(np.asarray(s, dtype=np.float64)))).numpy()

    return run


def rollout(actor: Callable[[np.ndarray], np.ndarray], problem: Any, features: Callable[[Any], np.ndarray],
            reward: Callable[[Any, np.ndarray], float], steps: int, action_scale: float,
            reward_scale: float) -> tuple[np.ndarray, float, int]:
    """Inference: the deterministic policy run for ``steps`` steps on one channel (the state carries the
    previous reward, as in training); the best action by reward, its reward and the steps taken."""
    feat = features(problem)
    prev, best_a, best_r = 0.0, None, -np.inf
    for _ in range(max(1, steps)):
        a = action_scale * actor(np.concatenate(([prev], feat)))
        r = float(reward(problem, a))
        if r > best_r:
            best_a, best_r = a, r
        prev = r / reward_scale
    return best_a, best_r, max(1, steps)
