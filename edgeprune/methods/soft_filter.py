"""Soft filter pruning (He, Kang, Dong, Fu, Yang, "Soft Filter Pruning for Accelerating Deep
Convolutional Neural Networks", IJCAI 2018, arXiv 1808.06866).

After every training epoch, the filters with the smallest L2 norm in each layer are set to zero
(in a coupled group: the filters of every layer producing those channels), but they stay in the
model, their consumers untouched, and keep being updated, so a filter zeroed early may grow
back and survive. Only at the end are the filters
that are zero removed physically. Paper defaults: pruning rate 30-40 % per layer, zeroing once
per epoch (the official code's `epoch_prune = 1`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from edgeprune.api import PruneConfig, PruneResult, prune
from edgeprune.config import TrainingMethodConfig, option
from edgeprune.engine import PruningSession
from edgeprune.hooks import TrainingHooks
from edgeprune.registry import register_method
from edgeprune.selection import n_prune


class SoftFilterPruning(TrainingHooks):
    """`sfp = SoftFilterPruning(model, x, prune_ratio=0.3)`; call `sfp.step()` after each epoch;
    `sfp.finalize()` returns the physically pruned model."""

    def __init__(self, model: nn.Module, example_inputs: Any, prune_ratio: float = 0.3):
        self.model, self.example_inputs, self.prune_ratio = model, example_inputs, prune_ratio
        was = model.training
        self.session = PruningSession(model, example_inputs)
        self.groups = self.session.groups()
        model.train(was)
        self.zeroed: dict[int, list[int]] = {}

    @torch.no_grad()
    def step(self) -> dict[int, list[int]]:
        """Zero the weakest filters of every group; return the zeroed units by group."""
        scores = self.session.score(self.groups, "l2")  # the session reads the live weights
        self.zeroed = {}
        for g in self.groups:
            k = n_prune(g, self.prune_ratio, 1, 1)
            units = torch.argsort(scores[g.index], stable=True)[:k].tolist()
            self.zeroed[g.index] = units
            removed = g.removed(units)
            for slot in g.producer_slots if units else ():  # the filters (the axes the rules tag "out")
                t = self.session.tensors[slot.key]
                t.index_fill_(slot.dim, torch.as_tensor(removed[slot], dtype=torch.long), 0.0)
        return self.zeroed

    def after_epoch(self, model: nn.Module, epoch: int) -> None:
        self.step()

    def finalize(self, **kw) -> PruneResult:
        """Remove the zeroed filters (zero norm ranks lowest under L2)."""
        self.step()
        was = self.model.training
        result = prune(self.model.eval(), PruneConfig(criterion="l2", prune_ratio=self.prune_ratio, **kw),
                       example_inputs=self.example_inputs)
        self.model.train(was)
        return result


@register_method("soft_filter")
@dataclass(frozen=True)
class SoftFilterConfig(TrainingMethodConfig):
    """Soft filter pruning: the weakest filters zeroed after every epoch, free to grow back, removed at the end (He et al., IJCAI 2018)."""

    keep_best: ClassVar[bool] = False  # the best-validation checkpoint may predate the zeroing
    shortcuts: ClassVar[dict] = {"--soft-filter": "prune_ratio"}
    prune_ratio: float = option(0.3, "fraction of each layer's filters zeroed each epoch and removed at the end",
                                low=0, high=1, high_open=True)

    def build(self, model: nn.Module, example_inputs: Any, steps: int) -> SoftFilterPruning:
        return SoftFilterPruning(model, example_inputs, prune_ratio=self.prune_ratio)

    def finalize(self, hooks: SoftFilterPruning, model: nn.Module, example_inputs: Any, task=None) -> PruneResult:
        return hooks.finalize()
