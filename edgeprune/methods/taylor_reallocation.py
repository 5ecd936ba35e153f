"""End-to-end pruning to a target compression rate by Taylor importance and channel
reallocation: a RECONSTRUCTION of the method of Shen, Li, Zhao, Liu, Liang, Zhang (GLOBECOM
2020, DOI 10.1109/GLOBECOM42002.2020.9322206) and its journal version Qi, Shen, Li, et al.,
"An efficient pruning scheme of deep neural networks for Internet of Things applications",
EURASIP J. Adv. Signal Process. 2021, article 31 (DOI 10.1186/s13634-021-00744-4).

Only the papers' abstracts and the survey's description could be read: channel-level, first-
order Taylor importance, the remaining channels reallocated across layers, one end-to-end
training run that hits the requested compression rate directly, a compact network at the end.
This file follows the reconstruction of ../shared/METHODS.md section 1.3, built from
Molchanov et al. 2019 (Taylor importance on channel gates, momentum 0.9 across intervals),
Zhu & Gupta's cubic schedule and SFP/DPF's soft masks:

1. every prunable channel group carries a 0/1 mask at its output (edgeprune.search.gates);
2. importance of a unit: I = (sum over positions of activation x d loss / d activation)^2,
   i.e. the squared gradient of the loss w.r.t. its mask, summed over the mask's places,
   averaged over the minibatches of an interval and smoothed with momentum 0.9;
3. the kept budget B_t = B_full (1 - s_t) follows the cubic schedule from s = 0 to the
   requested reduction between `start` and `end` (fractions of the run's steps), with an
   update every `interval` steps;
4. at each update all units of the network are ranked together by I / cost (cost = MACs or
   parameters the unit frees, from the cost model) and the best are kept until B_t is spent
   (at least one unit per group): widths are re-decided every time, and a unit masked earlier
   comes back when its importance rises, since masked channels keep learning (gradients pass
   the mask straight through, as in DPF);
5. at `end` the masks freeze and the masked units are removed physically (checked against the
   masked model); training goes on in the same run on the compact network.

The achieved rate is exact up to one unit's cost (the cost model is exact for conv/linear
networks; `result.achieved` is counted on the compact model)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from edgeprune.api import PruneResult
from edgeprune.config import TrainingMethodConfig, option
from edgeprune.errors import ConfigError
from edgeprune.registry import register_method
from edgeprune.search.gates import ChannelGates
from edgeprune.search.space import ChannelSpace, check_reachable
from edgeprune.sparse.schedules import cubic_sparsity


@dataclass(frozen=True)
class TaylorReallocationConfig:
    target: float = 0.25  # kept fraction of `key` at the end (compression rate = 1 / target)
    key: str = "macs"  # or "params"
    start: float = 0.1  # schedule from 10 % ...
    end: float = 0.6  # ... to 60 % of the run's steps, then frozen and compacted
    interval: int = 30  # steps between reallocations (Molchanov 2019: 30 minibatches)
    momentum: float = 0.9

    def __post_init__(self):
        if not 0 < self.target < 1:
            raise ConfigError(f"target is the kept fraction in (0, 1), got {self.target}")
        if self.key not in ("macs", "params"):
            raise ConfigError(f"key must be 'macs' or 'params', got {self.key!r}")
        if not 0 <= self.start < self.end <= 1:
            raise ConfigError("need 0 <= start < end <= 1 (fractions of the training steps)")


@dataclass
class ReallocationLog:
    steps: list[int] = field(default_factory=list)
    budgets: list[float] = field(default_factory=list)
    widths: list[list[int]] = field(default_factory=list)  # kept units per group at each update
    revived: int = 0  # units masked at one update and kept at a later one


class TaylorReallocation:
    """One run: `tr = TaylorReallocation(model, x, total_steps=..., config=...)`;
    `train(model, ..., on_step=tr.step)` until `tr.compacted` (then `tr.model` is the compact
    network: keep training it; `train` helpers that hold an optimizer must be restarted, see
    `edgeprune.methods.train_to_rate`). `tr.result` holds the verified PruneResult."""

    def __init__(self, model: nn.Module, example_inputs: Any, total_steps: int,
                 config: TaylorReallocationConfig | None = None, criterion: str = "l1"):
        self.cfg = config or TaylorReallocationConfig()
        self.space = ChannelSpace(model, example_inputs, criterion=criterion)
        check_reachable(self.space, self.cfg.key, self.cfg.target, 0.0)
        self.model, self.total = model, max(1, total_steps)
        self.cost = self.space.cost(self.cfg.key)
        self.gates = ChannelGates(model, self.space, straight_through=True)
        for gi in range(len(self.space)):
            self.gates.set(gi, torch.ones(self.space.sizes[gi], requires_grad=True))
        self.acc = [torch.zeros(s) for s in self.space.sizes]
        self.importance: list[torch.Tensor] | None = None
        self.batches = 0
        self.mask = [torch.ones(s, dtype=torch.bool) for s in self.space.sizes]
        self.log = ReallocationLog()
        self.compacted = False
        self.result: PruneResult | None = None
        self.achieved: float | None = None

    def budget(self, step: int) -> float:
        """Kept fraction of the cost at `step` (cubic schedule)."""
        t0, t1 = self.cfg.start * self.total, self.cfg.end * self.total
        s = cubic_sparsity(step, 1.0 - self.cfg.target, begin=int(t0), end=max(int(t1), int(t0) + 1), initial=0.0)
        return 1.0 - s

    def _gather(self) -> None:
        for gi, gate in enumerate(self.gates.values):
            if gate.grad is not None:
                self.acc[gi] += gate.grad.detach() ** 2
                gate.grad = None
        self.batches += 1

    def _reallocate(self, step: int) -> None:
        fresh = [a / max(self.batches, 1) for a in self.acc]
        if self.importance is None:
            self.importance = fresh
        else:
            m = self.cfg.momentum
            self.importance = [m * old + (1 - m) * new for old, new in zip(self.importance, fresh)]
        self.acc, self.batches = [torch.zeros_like(a) for a in self.acc], 0
        budget = self.budget(step) * self.cost.c0
        sizes = np.asarray(self.space.sizes, dtype=float)
        per_unit = np.abs(self.cost.grad(np.ones(len(sizes)))) / sizes  # cost a unit frees
        order = []
        for gi, imp in enumerate(self.importance):
            ranked = torch.argsort(imp, descending=True, stable=True).tolist()
            order.append(ranked)
        counts = np.ones(len(sizes), dtype=int)  # at least one unit per group
        entries = sorted(((float(self.importance[gi][u]) / max(per_unit[gi], 1e-12), gi, r)
                          for gi in range(len(sizes)) for r, u in enumerate(order[gi]) if r > 0), reverse=True)
        for _, gi, r in entries:  # greedy: best importance per cost first, while the budget allows
            if r != counts[gi]:  # keep each group's units in rank order
                continue
            counts[gi] += 1
            if self.cost(counts / sizes) > budget:
                counts[gi] -= 1
        new_mask = []
        for gi, ranked in enumerate(order):
            m = torch.zeros(int(sizes[gi]), dtype=torch.bool)
            m[ranked[: counts[gi]]] = True
            self.log.revived += int((m & ~self.mask[gi]).sum())
            new_mask.append(m)
        self.mask = new_mask
        for gi, m in enumerate(new_mask):
            self.gates.set(gi, m.float().requires_grad_(True))
        self.log.steps.append(step)
        self.log.budgets.append(budget / self.cost.c0)
        self.log.widths.append(counts.tolist())

    def step(self, model: nn.Module, global_step: int) -> None:
        """Call after every optimiser step (train(..., on_step=tr.step))."""
        if self.compacted:
            return
        self._gather()
        begin = int(self.cfg.start * self.total)
        if global_step >= begin and (global_step - begin) % self.cfg.interval == 0:
            self._reallocate(global_step)
        if global_step >= int(self.cfg.end * self.total):
            if self.budget(global_step) > self.cfg.target + 1e-9:
                self._reallocate(global_step)
            self.compact()

    def compact(self) -> PruneResult:
        """Freeze the masks and remove the masked units (verified against the masked model)."""
        if self.importance is None:  # never reallocated: do it now, at the final budget
            self._reallocate(int(self.cfg.end * self.total))
        self.gates.remove()
        removed = {g.index: torch.nonzero(~m).flatten().tolist() for g, m in zip(self.space.groups, self.mask)}
        self.result = self.space.finalize(removed=removed, model=self.model)
        key = self.cfg.key
        self.achieved = (self.result.after.macs / self.result.before.macs if key == "macs"
                         else self.result.after.params / self.result.before.params)
        self.model = self.result.model
        self.compacted = True
        return self.result

    def unit_cost(self) -> float:
        """The largest cost fraction one unit frees: the tolerance on the achieved rate."""
        sizes = np.asarray(self.space.sizes, dtype=float)
        return float(np.max(np.abs(self.cost.grad(np.ones(len(sizes)))) / sizes) / self.cost.c0)


def train_to_rate(model: nn.Module, task_train, task_val, example_inputs: Any, train_config,
                  config: TaylorReallocationConfig | None = None) -> tuple[nn.Module, TaylorReallocation]:
    """The whole method in one call: train `model` (pretrained or not) for `train_config.epochs`
    epochs in all; the rate is reached and the network compacted at `config.end` of the run,
    and the compact network is trained for the remaining epochs with the same schedule's lr."""
    from dataclasses import replace

    from edgeprune.training import train

    steps_per_epoch = len(task_train)
    total = train_config.epochs * steps_per_epoch
    tr = TaylorReallocation(model, example_inputs, total, config)
    end_epoch = math.ceil((config or tr.cfg).end * train_config.epochs)
    train(model, task_train, None, replace(train_config, epochs=end_epoch, keep_best=False), on_step=tr.step)
    if not tr.compacted:
        tr.compact()
    rest = train_config.epochs - end_epoch
    if rest > 0:
        train(tr.model, task_train, task_val, replace(train_config, epochs=rest, lr=train_config.lr * 0.5))
    return tr.model, tr


@register_method("taylor_reallocation")
@dataclass(frozen=True)
class TrainToRateConfig(TrainingMethodConfig):
    """Taylor importance + channel reallocation: one training run straight to a compression rate (Qi, Shen et al. 2020-21, reconstructed)."""

    shortcuts: ClassVar[dict] = {"--target-macs": "keep_macs", "--target-params": "keep_params"}
    trains_after_prune: ClassVar[bool] = True  # the compact network trains for the rest of the run
    keep_macs: float | None = option(None, "fraction of the MACs kept at the end (default 0.25)", low=0, high=1,
                                     low_open=True, high_open=True)
    keep_params: float | None = option(None, "fraction of the parameters kept at the end", low=0, high=1,
                                       low_open=True, high_open=True)
    start: float = option(0.1, "the schedule starts at this fraction of the run's steps", low=0, high=1)
    end: float = option(0.6, "... and ends (masks frozen, network compacted) at this fraction", low=0, high=1)
    interval: int = option(30, "steps between reallocations", low=1)
    momentum: float = option(0.9, "momentum of the importance across intervals", low=0, high=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.keep_macs is not None and self.keep_params is not None:
            raise ConfigError("taylor_reallocation: give keep_macs or keep_params, not both")

    def run(self, model: nn.Module, task, train_config, example_inputs: Any) -> PruneResult:
        """The whole run (its own training loop: the network is compacted part way)."""
        from edgeprune.metrics import measure
        key, target = ("params", self.keep_params) if self.keep_params is not None else \
            ("macs", self.keep_macs if self.keep_macs is not None else 0.25)
        cfg = TaylorReallocationConfig(target=target, key=key, start=self.start, end=self.end,
                                       interval=self.interval, momentum=self.momentum)
        small, tr = train_to_rate(model, task.train, task.val, example_inputs, train_config, cfg)
        r = tr.result
        details = {"requested": target, "achieved": tr.achieved, "key": key, "widths": tr.log.widths[-1],
                   "units_revived": tr.log.revived, "unit_cost": tr.unit_cost(), "sizes": tr.space.sizes}
        return PruneResult(small, r.plan, r.before, measure(small, example_inputs), r.verification, r.tracer,
                           details=details)
