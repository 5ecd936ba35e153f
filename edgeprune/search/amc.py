"""AMC: AutoML for model compression (He, Lin, Liu, Wang, Li, Han, ECCV 2018, arXiv 1802.03494).

A DDPG agent walks the prunable channel groups in order; one episode is one compression
policy. At group t it sees a 10-feature state (index, conv or linear, input and output width,
stride, kernel size, weights of the producing layer, cost already removed, cost of the groups
still to come, previous action; each min-max normalised over the groups) and answers with the
fraction of the group's channels to keep, in [lbound, rbound]. The *action wall* clips that
answer so that the budget stays reachable with every later group at its lower bound. The
episode's pruned network (kept channels by magnitude, then, as in the paper, each layer
re-fitted by least squares on calibration data) is scored without fine-tuning on held-out
data: reward = accuracy under the budget (resource-constrained search, the official code's
`acc_reward`), or -error * log(FLOPs) / -error * log(#params) (accuracy-guaranteed search,
the survey's Eqs. 3-4). Every transition of the episode gets the episode's reward.

Defaults from the official code (mit-han-lab/amc): actor and critic MLPs 300-300, lr 1e-4
(actor) / 1e-3 (critic), tau 0.01, batch 64, replay 100 transitions per group, 100 warm-up
episodes of random actions, truncated-normal exploration noise 0.5 decaying x0.95 per
episode, a moving-average reward baseline (alpha 0.5), discount 1, bounds [0.2, 1].
Differences: the paper runs 800 episodes (we default to 300 for small IoT models; set
`episodes`); the agent acts on coupled channel groups of the dependency graph rather than on
single layers; the least-squares refit is edgeprune.recovery.reconstruct (ridge, all layers
whose inputs shrank, then batch norms re-estimated)."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from edgeprune.config import option
from edgeprune.errors import ConfigError
from edgeprune.registry import register_method
from edgeprune.rules import layer_kind
from edgeprune.search.job import WidthSearchConfig
from edgeprune.search.space import ChannelSpace, check_reachable

REWARDS = ("accuracy", "error_log_flops", "error_log_params")


@dataclass(frozen=True)
class AMCConfig:
    target: float = 0.5  # kept fraction of `key` (the action wall enforces it)
    key: str = "macs"  # "macs" or "params"
    reward: str = "accuracy"
    episodes: int = 300
    warmup: int = 100
    lbound: float = 0.2
    rbound: float = 1.0
    hidden: int = 300
    lr_actor: float = 1e-4
    lr_critic: float = 1e-3
    tau: float = 0.01
    batch: int = 64
    replay_per_group: int = 100
    noise: float = 0.5
    noise_decay: float = 0.95
    baseline_alpha: float = 0.5
    discount: float = 1.0
    seed: int = 0
    progress: bool = True

    def __post_init__(self):
        if self.reward not in REWARDS:
            raise ConfigError(f"reward must be one of {REWARDS}, got {self.reward!r}")
        if not 0 < self.lbound <= self.rbound <= 1:
            raise ConfigError("need 0 < lbound <= rbound <= 1")
        if not 0 < self.target <= 1:
            raise ConfigError(f"target is a kept fraction in (0, 1], got {self.target}")
        if self.warmup >= self.episodes:
            raise ConfigError("warmup must be smaller than episodes")


@dataclass
class AMCResult:
    keep: list[float]  # best policy: kept fraction per group
    reward: float
    accuracy: float
    cost: float  # kept fraction of the key
    history: list[dict] = field(default_factory=list)  # per episode: reward, accuracy, cost, keep


def _mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, o))


class _Critic(nn.Module):
    def __init__(self, state: int, hidden: int):
        super().__init__()
        self.s, self.a = nn.Linear(state, hidden), nn.Linear(1, hidden)
        self.out = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.out(self.s(s) + self.a(a))


class DDPG:
    """The agent: deterministic actor in [lbound, rbound], Q critic, target nets, replay."""

    def __init__(self, state_dim: int, cfg: AMCConfig, capacity: int):
        self.cfg = cfg
        self.actor = nn.Sequential(_mlp(state_dim, cfg.hidden, 1), nn.Sigmoid())
        self.critic = _Critic(state_dim, cfg.hidden)
        self.actor_t, self.critic_t = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        self.opt_a = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr_actor)
        self.opt_c = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr_critic)
        self.memory: list[tuple] = []
        self.capacity = capacity
        self.baseline: float | None = None

    def act(self, state: np.ndarray) -> float:
        with torch.no_grad():
            a = float(self.actor(torch.as_tensor(state, dtype=torch.float32)[None])[0, 0])
        return self.cfg.lbound + (self.cfg.rbound - self.cfg.lbound) * a

    def remember(self, s, a, r, s1, done) -> None:
        self.memory.append((s, a, r, s1, done))
        if len(self.memory) > self.capacity:
            self.memory.pop(0)

    def update(self, rng: np.random.Generator) -> None:
        if len(self.memory) < self.cfg.batch:
            return
        batch = [self.memory[i] for i in rng.choice(len(self.memory), self.cfg.batch, replace=False)]
        s, a, r, s1, done = (torch.as_tensor(np.array(x), dtype=torch.float32) for x in zip(*batch))
        a, r, done = a[:, None], r[:, None], done[:, None]
        mean_r = float(r.mean())
        self.baseline = mean_r if self.baseline is None else \
            self.baseline + self.cfg.baseline_alpha * (mean_r - self.baseline)
        lo, span = self.cfg.lbound, self.cfg.rbound - self.cfg.lbound
        with torch.no_grad():
            a1 = self.actor_t(s1)  # in (0, 1): the critic sees normalised actions
            target = (r - self.baseline) + self.cfg.discount * (1 - done) * self.critic_t(s1, a1)
        q = self.critic(s, (a - lo) / span)
        loss_c = nn.functional.mse_loss(q, target)
        self.opt_c.zero_grad()
        loss_c.backward()
        self.opt_c.step()
        loss_a = -self.critic(s, self.actor(s)).mean()
        self.opt_a.zero_grad()
        loss_a.backward()
        self.opt_a.step()
        for net, tgt in ((self.actor, self.actor_t), (self.critic, self.critic_t)):
            for p, pt in zip(net.parameters(), tgt.parameters()):
                pt.data.mul_(1 - self.cfg.tau).add_(p.data, alpha=self.cfg.tau)


def _layer_features(space: ChannelSpace) -> np.ndarray:
    """The static part of the state: index, conv?, c_in, c_out, stride, kernel, #weights."""
    modules = dict(space.model.named_modules())
    rows = []
    for t, g in enumerate(space.groups):
        layer = None
        for slot in g.producer_slots:
            m = modules.get(slot.key.rsplit(".", 1)[0])
            if layer_kind(m) in ("conv", "conv_transpose", "linear"):
                layer = m
                break
        if layer_kind(layer) in ("conv", "conv_transpose"):
            row = [t, 1, layer.in_channels, layer.out_channels, math.prod(layer.stride),
                   math.prod(layer.kernel_size), layer.weight.numel()]
        elif layer_kind(layer) == "linear":
            row = [t, 0, layer.in_features, layer.out_features, 1, 1, layer.weight.numel()]
        else:
            row = [t, 0, len(g), len(g), 1, 1, len(g)]
        rows.append(row)
    return np.asarray(rows, dtype=float)


def _normalise(x: np.ndarray) -> np.ndarray:
    lo, hi = x.min(0), x.max(0)
    return (x - lo) / np.where(hi > lo, hi - lo, 1.0)


class AMC:
    """`AMC(space, evaluate, AMCConfig(target=0.5)).search()` -> AMCResult.

    `evaluate(model) -> accuracy in [0, 1]` scores a pruned candidate (held-out data, no
    fine-tuning); `refit(model, plan)` (optional) repairs it first, e.g. least squares."""

    def __init__(self, space: ChannelSpace, evaluate: Callable[[nn.Module], float], config: AMCConfig | None = None,
                 refit: Callable[[nn.Module, object], None] | None = None):
        self.space, self.evaluate, self.cfg, self.refit = space, evaluate, config or AMCConfig(), refit
        check_reachable(space, self.cfg.key, self.cfg.target, self.cfg.lbound)
        self.cost = space.cost(self.cfg.key)
        self.static = _layer_features(space)
        self.rng = np.random.default_rng(self.cfg.seed)
        torch.manual_seed(self.cfg.seed)
        n = len(space)
        self.agent = DDPG(self.static.shape[1] + 3, self.cfg, self.cfg.replay_per_group * n)
        # cost the group is responsible for, to describe "reduced" and "rest" in the state
        self.share = np.abs(self.cost.grad(np.ones(n)))
        self.share = self.share / max(self.share.sum(), 1e-12)

    def _state(self, t: int, keep: Sequence[float], prev: float) -> np.ndarray:
        n = len(self.space)
        full = np.ones(n)
        full[:t] = keep[:t]
        reduced = 1 - self.cost(full) / self.cost.c0
        rest = float(self.share[t + 1:].sum())
        dyn = np.array([reduced, rest, prev])
        return np.concatenate([_normalise(self.static)[t], dyn]).astype(np.float32)

    def _wall(self, t: int, keep: list[float], action: float) -> float:
        """Largest kept fraction for group t that leaves the budget reachable."""
        lb = self.cfg.lbound
        x = np.array(keep[:t] + [1.0] + [max(lb, 1 / s) for s in self.space.sizes[t + 1:]])
        hi = self.cost(x)
        x[t] = 0.0
        lo = self.cost(x)
        budget = self.cfg.target * self.cost.c0
        limit = 1.0 if hi <= budget else max(0.0, (budget - lo) / max(hi - lo, 1e-12))
        action = float(np.clip(min(action, limit), lb, self.cfg.rbound))
        size = self.space.sizes[t]
        return max(1, math.floor(action * size + 1e-9)) / size  # round down: never over budget

    def _reward(self, acc: float, cost_frac: float) -> float:
        if self.cfg.reward == "accuracy":
            return acc
        base = self.space.base_macs if self.cfg.reward == "error_log_flops" else self.space.base_params
        return -(1 - acc) * math.log(max(cost_frac * base, 2.0))

    def episode(self, k: int) -> dict:
        cfg, n = self.cfg, len(self.space)
        keep: list[float] = []
        states, prev = [], 1.0
        sigma = cfg.noise * cfg.noise_decay ** max(0, k - cfg.warmup)
        for t in range(n):
            s = self._state(t, keep + [1.0] * (n - t), prev)
            if k < cfg.warmup:
                a = float(self.rng.uniform(cfg.lbound, cfg.rbound))
            else:
                mu = self.agent.act(s)
                for _ in range(100):  # truncated normal around the actor's answer
                    a = float(self.rng.normal(mu, sigma))
                    if cfg.lbound <= a <= cfg.rbound:
                        break
                else:
                    a = float(np.clip(mu, cfg.lbound, cfg.rbound))
            a = self._wall(t, keep, a)
            keep.append(a)
            states.append((s, a))
            prev = a
        model = self.space.prune(keep)
        if self.refit is not None:
            self.refit(model, self.space.plan(keep))
        acc = float(self.evaluate(model))
        cost = self.cost(self.space.fractions(keep)) / self.cost.c0
        r = self._reward(acc, cost)
        for t, (s, a) in enumerate(states):
            s1 = states[t + 1][0] if t + 1 < n else s
            self.agent.remember(s, a, r, s1, float(t == n - 1))
        if k >= cfg.warmup:
            for _ in range(n):
                self.agent.update(self.rng)
        return {"episode": k, "reward": r, "accuracy": acc, "cost": cost, "keep": keep}

    def search(self) -> AMCResult:
        history, best = [], None
        bar = tqdm(range(self.cfg.episodes), desc="AMC episodes", disable=not self.cfg.progress, leave=False)
        for k in bar:
            h = self.episode(k)
            history.append(h)
            if best is None or h["reward"] > best["reward"]:
                best = h
            bar.set_postfix(best_acc=f"{best['accuracy']:.3f}", cost=f"{best['cost']:.3f}")
        return AMCResult(best["keep"], best["reward"], best["accuracy"], best["cost"], history)


@register_method("amc")
@dataclass(frozen=True)
class AMCSearchConfig(WidthSearchConfig):
    """AMC: a DDPG agent picks each layer's width, rewarded by accuracy after a least-squares refit (He et al., ECCV 2018)."""

    episodes: int = option(300, "episodes of the agent", low=1)
    warmup: int | None = option(None, "random episodes first (default: a third of the episodes, at most 100)", low=0)
    calibration: int = option(500, "training samples for the least-squares refit of each candidate", low=1)

    def search(self, model: nn.Module, task, finetune=None):
        from edgeprune.data import calibration_batches, take_samples
        from edgeprune.recovery import reconstruct
        from edgeprune.training import evaluate
        key, target = self.budget()
        val = take_samples(task.val, self.val_samples)
        space = ChannelSpace(model, torch.randn(1, *task.input_shape), "l1")
        calib = calibration_batches(task, self.calibration)
        warmup = self.warmup if self.warmup is not None else min(self.episodes // 3, 100)
        cfg = AMCConfig(target=target, key=key, episodes=self.episodes, warmup=warmup, seed=self.seed,
                        progress=self.progress)
        refit = lambda m, plan: reconstruct(model, m, plan, calib, samples=self.calibration)  # noqa: E731
        found = AMC(space, lambda m: evaluate(m, val), cfg, refit=refit).search()
        result = space.finalize(found.keep)
        reconstruct(model, result.model, result.plan, calib, samples=self.calibration)
        result.details = {"keep": found.keep, "episodes": len(found.history),
                          "best_episode_accuracy": found.accuracy}
        return result
