"""DSA: differentiable sparsity allocation (Ning, Zhao, Li, Lei, Wang, Yang, ECCV 2020,
arXiv 2004.02164).

Every channel group has a keep ratio alpha (starting at 1). Channel
importances w (L1 norm of the unit's weights, recomputed at each step) become keep
probabilities through an S-shaped function p = 1 / (1 + (w / beta1) ** -beta2), with beta1
found by root-finding so that mean(p) = alpha: the expected number of kept channels is exactly
alpha x width. Masks are drawn m ~ Bernoulli(p); the task-loss gradient reaches alpha through
beta1 by the implicit-function theorem (d beta1 / d alpha from mean(p) = alpha). The budget
(MACs or parameters, a function of every group's alpha through ChannelSpace's cost model) is
enforced during the optimisation; training the weights goes on at the same time.

Simplifications, said plainly: the loss gradient w.r.t. a sampled mask is taken straight
through (m treated as p in the backward pass); the paper's ADMM-inspired constrained update
is here an alternation of a normalised gradient step on alpha (task loss) and a projection
onto the budget along the cost gradient (groups that cost more give up more), the budget
tightening linearly from the full model to the target over the first `ramp` of the steps;
the logit parametrisation is dropped; beta2 (the S-curve's steepness on mean-normalised
importances) is ours, 5."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgeprune.api import PruneResult
from edgeprune.config import option
from edgeprune.criteria import get_criterion
from edgeprune.criteria.base import ScoringContext
from edgeprune.errors import ConfigError
from edgeprune.registry import register_method
from edgeprune.search.gates import ChannelGates
from edgeprune.search.job import WidthSearchConfig
from edgeprune.search.space import ChannelSpace, check_reachable


@dataclass(frozen=True)
class DSAConfig:
    target: float = 0.5  # kept fraction of `key`
    key: str = "macs"
    beta2: float = 5.0
    lr: float = 0.01  # step on alpha, relative to the mean gradient magnitude
    ramp: float = 0.5  # fraction of the steps over which the budget tightens to the target
    min_keep: float = 0.05
    seed: int = 0

    def __post_init__(self):
        if not 0 < self.target <= 1:
            raise ConfigError(f"target is a kept fraction in (0, 1], got {self.target}")
        if not 0 < self.ramp <= 1:
            raise ConfigError("ramp is a fraction of the training steps in (0, 1]")


def _solve_log_beta1(logw: torch.Tensor, alpha: float, beta2: float) -> float:
    """u = log beta1 with mean(sigmoid(beta2 (log w - u))) = alpha (mean decreases in u)."""
    lo, hi = float(logw.min()) - 30 / beta2, float(logw.max()) + 30 / beta2
    for _ in range(60):
        mid = (lo + hi) / 2
        if float(torch.sigmoid(beta2 * (logw - mid)).mean()) > alpha:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


class DSA:
    """Train with it: `dsa = DSA(model, space, DSAConfig(target=0.25), total_steps=...)`, then
    `train(model, ..., on_step=dsa.step)`; `dsa.finalize()` removes the channels. `space` must
    be a ChannelSpace of this very model (same parameters)."""

    def __init__(self, model: nn.Module, space: ChannelSpace, config: DSAConfig | None = None, total_steps: int = 1000):
        if space.model is not model:
            raise ConfigError("DSA needs the ChannelSpace built on the model it trains")
        self.model, self.space, self.cfg = model, space, config or DSAConfig()
        check_reachable(space, self.cfg.key, self.cfg.target, self.cfg.min_keep)
        self.alpha = torch.ones(len(space), dtype=torch.float64, requires_grad=True)
        self.total_steps = max(1, total_steps)
        self.gen = torch.Generator().manual_seed(self.cfg.seed)
        self.gates = ChannelGates(model, space)
        self.cost = space.cost(self.cfg.key)
        self._pre = model.register_forward_pre_hook(self._sample)
        self.history: list[list[float]] = []

    def importances(self) -> list[torch.Tensor]:
        crit = get_criterion("l1")
        ctx = ScoringContext(self.space.tensors)
        return [crit(g, ctx).detach() for g in self.space.groups]

    def probabilities(self) -> list[torch.Tensor]:
        """Keep probability per unit, differentiable in alpha through beta1 (implicit function)."""
        out = []
        for gi, w in enumerate(self.importances()):
            logw = torch.log(w / w.mean().clamp_min(1e-12) + 1e-12)
            a = self.alpha[gi]
            u = _solve_log_beta1(logw, a.item(), self.cfg.beta2)
            p = torch.sigmoid(self.cfg.beta2 * (logw - u))
            dmean_du = -(self.cfg.beta2 * p * (1 - p)).mean().clamp_min(1e-8)
            u_diff = u + (a - a.detach()) / dmean_du  # value u, gradient du/dalpha
            out.append(torch.sigmoid(self.cfg.beta2 * (logw - u_diff)))
        return out

    def _sample(self, module, args) -> None:
        if not module.training:
            for gi, keep in enumerate(self._deterministic()):
                self.gates.set(gi, keep)
            return
        for gi, p in enumerate(self.probabilities()):
            m = torch.bernoulli(p.detach(), generator=self.gen)
            self.gates.set(gi, m + p - p.detach())

    def _deterministic(self) -> list[torch.Tensor]:
        keep = self.space.kept_units(self.alpha.tolist())
        masks = []
        for w, k in zip(self.importances(), keep):
            m = torch.zeros(len(w))
            m[torch.argsort(w, descending=True, stable=True)[:k]] = 1.0
            masks.append(m)
        return masks

    def budget(self, step: int) -> float:
        t = min(1.0, step / (self.cfg.ramp * self.total_steps))
        return 1.0 + (self.cfg.target - 1.0) * t

    @torch.no_grad()
    def _project(self, budget: float) -> None:
        """Move alpha along minus the cost gradient until the modelled cost meets `budget`."""
        a = self.alpha.detach().numpy().astype(float)
        lo_a = self.cfg.min_keep
        fits = lambda v: self.cost(self.space.fractions(v)) <= budget * self.cost.c0  # noqa: E731
        if fits(a):
            return
        g = self.cost.grad(a)
        g = g / max(abs(g).max(), 1e-12)
        lo, hi = 0.0, 1.0
        while not fits(np.clip(a - hi * g, lo_a, 1)) and hi < 1e3:
            hi *= 2
        for _ in range(50):
            mid = (lo + hi) / 2
            if not fits(np.clip(a - mid * g, lo_a, 1)):
                lo = mid
            else:
                hi = mid
        while not fits(np.clip(a - hi * g, lo_a, 1)) and hi < 1e4:  # the feasible side of a rounding step
            hi = hi * 1.01 + 1e-6
        self.alpha.copy_(torch.as_tensor(np.clip(a - hi * g, lo_a, 1)))

    def step(self, model: nn.Module, global_step: int) -> None:
        """After each optimiser step: a normalised task-gradient step on alpha, then the budget."""
        with torch.no_grad():
            if self.alpha.grad is not None:
                g = self.alpha.grad
                self.alpha -= self.cfg.lr * g / g.abs().mean().clamp_min(1e-12)
                self.alpha.clamp_(self.cfg.min_keep, 1.0)
                self.alpha.grad = None
        self._project(self.budget(global_step))
        self.history.append(self.alpha.tolist())

    def finalize(self) -> PruneResult:
        """Remove the lowest-importance channels of every group down to alpha (verified)."""
        self._pre.remove()
        self.gates.remove()
        self._project(self.cfg.target)
        # rounding leaves part of the budget unused: give units back, highest alpha first
        keep = self.space.fill(self.space.kept_units(self.alpha.tolist()), self.cfg.key, self.cfg.target,
                               priority=self.alpha.tolist())
        removed = {g.index: torch.argsort(w, stable=True)[: len(g) - k].tolist()
                   for g, w, k in zip(self.space.groups, self.importances(), keep)}
        return self.space.finalize(removed=removed, model=self.model)


@register_method("dsa")
@dataclass(frozen=True)
class DSASearchConfig(WidthSearchConfig):
    """DSA: differentiable sparsity allocation, widths learned jointly with the weights (Ning et al., ECCV 2020)."""

    search_epochs: int = option(3, "epochs of joint training while allocating", low=1)

    def search(self, model: nn.Module, task, finetune=None):
        import copy
        from dataclasses import replace

        from edgeprune.training import TrainConfig, train
        key, target = self.budget()
        work = copy.deepcopy(model)
        space = ChannelSpace(work, torch.randn(1, *task.input_shape), "l1")
        dsa = DSA(work, space, DSAConfig(target=target, key=key, seed=self.seed),
                  total_steps=self.search_epochs * len(task.train))
        base = finetune or TrainConfig()
        train(work, task.train, None, replace(base, epochs=self.search_epochs, keep_best=False, progress=self.progress),
              on_step=dsa.step)
        result = dsa.finalize()
        result.details = {"keep": dsa.alpha.tolist()}
        return result
