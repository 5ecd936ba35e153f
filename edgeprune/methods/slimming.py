"""Network slimming (Liu, Li, Shen, Huang, Yan, Zhang, "Learning Efficient Convolutional
Networks through Network Slimming", ICCV 2017, arXiv 1708.06519).

Train with an L1 penalty lambda * sum |gamma| on every batch-norm scale, so that unimportant
channels get gamma ~ 0, then prune the channels with the smallest |gamma| (criterion
`bn_scale`) and fine-tune. The paper's default lambda is 1e-4 (1e-5 for VGG on ImageNet); the
official code adds lambda * sign(gamma) to the gradient, which is what autograd gives here."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgeprune.api import PruneConfig, PruneResult, prune
from edgeprune.rules import layers_of_kind


def _norms(model: nn.Module) -> list[nn.Module]:
    return [m for m in layers_of_kind(model, ("batch_norm",)).values() if m.affine]


class NetworkSlimming:
    """`loss = task_loss + slim.penalty(model)` during training; then `slim.finalize(...)`."""

    def __init__(self, strength: float = 1e-4):
        self.strength = strength

    def penalty(self, model: nn.Module) -> torch.Tensor:
        norms = _norms(model)
        if not norms:
            raise ValueError("network slimming needs batch-norm layers with affine scales")
        return self.strength * sum(m.weight.abs().sum() for m in norms)

    def finalize(self, model: nn.Module, example_inputs: Any, prune_ratio: float = 0.5,
                 scope: str = "global", **kw) -> PruneResult:
        """Remove the channels with the smallest |gamma| (global ranking, as in the paper)."""
        return prune(model, PruneConfig(criterion="bn_scale", prune_ratio=prune_ratio, scope=scope, **kw),
                     example_inputs=example_inputs)
