"""Network slimming (Liu, Li, Shen, Huang, Yan, Zhang, "Learning Efficient Convolutional
Networks through Network Slimming", ICCV 2017, arXiv 1708.06519).

Train with an L1 penalty lambda * sum |gamma| on every batch-norm scale, so that unimportant
channels get gamma ~ 0, then prune the channels with the smallest |gamma| (criterion
`bn_scale`) and fine-tune. The paper's default lambda is 1e-4 (1e-5 for VGG on ImageNet); the
official code adds lambda * sign(gamma) to the gradient, which is what autograd gives here."""
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


def _norms(model: nn.Module) -> list[nn.Module]:
    return [m for m in layers_of_kind(model, ("batch_norm",)).values() if m.affine]


class NetworkSlimming(TrainingHooks):
    """`loss = task_loss + slim.penalty(model)` during training (or `train(..., methods=[slim])`);
    then `slim.finalize(...)`."""

    def __init__(self, strength: float = 1e-4):
        self.strength = strength

    def penalty(self, model: nn.Module) -> torch.Tensor:
        norms = _norms(model)
        if not norms:
            raise ValueError("network slimming needs batch-norm layers with affine scales")
        return self.strength * sum(m.weight.abs().sum() for m in norms)

    def regularize(self, loss: torch.Tensor, model: nn.Module) -> torch.Tensor:
        return loss + self.penalty(model)

    def finalize(self, model: nn.Module, example_inputs: Any, prune_ratio: float = 0.5,
                 scope: str = "global", **kw) -> PruneResult:
        """Remove the channels with the smallest |gamma| (global ranking, as in the paper)."""
        return prune(model, PruneConfig(criterion="bn_scale", prune_ratio=prune_ratio, scope=scope, **kw),
                     example_inputs=example_inputs)


@register_method("slimming")
@dataclass(frozen=True)
class SlimmingConfig(TrainingMethodConfig):
    """Network slimming: L1 on batch-norm scales while training, then the smallest scales' channels removed (Liu et al., ICCV 2017)."""

    strength: float = option(1e-4, "weight of the L1 penalty on the batch-norm scales", low=0)
    prune_ratio: float = option(0.5, "fraction of each group's channels removed at the end (0: train only)", low=0, high=1, high_open=True)
    scope: str = option("global", "one ranking of the scales for the whole network, or per group",
                        choices=("global", "local"))

    def build(self, model: nn.Module, example_inputs: Any, steps: int) -> NetworkSlimming:
        return NetworkSlimming(self.strength)

    def finalize(self, hooks: NetworkSlimming, model: nn.Module, example_inputs: Any, task=None) -> PruneResult:
        return hooks.finalize(model, example_inputs, prune_ratio=self.prune_ratio, scope=self.scope)
