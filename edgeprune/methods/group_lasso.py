"""Group lasso on filters (Wen, Wu, Wang, Chen, Li, "Learning Structured Sparsity in Deep
Neural Networks", NeurIPS 2016, "SSL").

penalty = lambda * sum over output channels g of ||W_g||_2 for every convolution and linear
layer (a filter and its bias form one group). The L2 norm per group (not squared) drives whole
filters to exactly zero under proximal steps (`prox_(model, lr)`), which then prune away
without loss (criterion `l2`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from edgeprune.api import PruneConfig, PruneResult, prune
from edgeprune.config import TrainingMethodConfig, option
from edgeprune.hooks import TrainingHooks
from edgeprune.registry import register_method
from edgeprune.rules import layers_of_kind

_LAYERS = ("conv", "linear")  # layer kinds whose filters form the groups


class GroupLasso(TrainingHooks):
    def __init__(self, strength: float = 1e-4, skip: tuple[str, ...] = ()):
        self.strength, self.skip = strength, skip

    def _layers(self, model: nn.Module):
        return list(layers_of_kind(model, _LAYERS, self.skip).items())

    def penalty(self, model: nn.Module) -> torch.Tensor:
        total = 0.0
        for _, m in self._layers(model):
            rows = m.weight.flatten(1)
            if m.bias is not None:
                rows = torch.cat([rows, m.bias[:, None]], 1)
            total = total + rows.norm(dim=1).sum()
        return self.strength * total

    def regularize(self, loss: torch.Tensor, model: nn.Module) -> torch.Tensor:
        return loss + self.penalty(model)

    @torch.no_grad()
    def prox_(self, model: nn.Module, lr: float) -> None:
        """Proximal step of the group-lasso term: shrink each filter's norm by lr * lambda,
        setting it to exactly zero when smaller."""
        for _, m in self._layers(model):
            rows = m.weight.flatten(1)
            if m.bias is not None:
                rows = torch.cat([rows, m.bias[:, None]], 1)
            norm = rows.norm(dim=1).clamp_min(1e-12)
            scale = (1 - lr * self.strength / norm).clamp_min(0.0)
            m.weight.mul_(scale.view(-1, *[1] * (m.weight.ndim - 1)))
            if m.bias is not None:
                m.bias.mul_(scale)

    def finalize(self, model: nn.Module, example_inputs: Any, prune_ratio: float = 0.5, **kw) -> PruneResult:
        return prune(model, PruneConfig(criterion="l2", prune_ratio=prune_ratio, scope="global", **kw),
                     example_inputs=example_inputs)


@register_method("group_lasso")
@dataclass(frozen=True)
class GroupLassoConfig(TrainingMethodConfig):
    """Group lasso on filters while training, then the weakest filters removed (Wen et al., NeurIPS 2016)."""

    strength: float = option(1e-4, "weight of the group-lasso penalty", low=0)
    prune_ratio: float = option(0.5, "fraction of each group's channels removed at the end (0: train only)", low=0, high=1, high_open=True)

    def build(self, model: nn.Module, example_inputs: Any, steps: int) -> GroupLasso:
        return GroupLasso(self.strength)

    def finalize(self, hooks: GroupLasso, model: nn.Module, example_inputs: Any, task=None) -> PruneResult:
        return hooks.finalize(model, example_inputs, prune_ratio=self.prune_ratio)
