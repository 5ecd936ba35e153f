"""Polarization regularizer (Zhuang, Zhang, Huang, Zeng, Shuang, Li, "Neuron-level Structured
Pruning using Polarization Regularizer", NeurIPS 2020).

R(gamma) = t * ||gamma||_1 - ||gamma - mean(gamma)||_1 over all batch-norm scales of the
network, with gamma clamped to [0, a]. Unlike the plain L1 of network slimming, it pushes the
scales apart: those of unimportant channels to 0, the others away from 0, so that a clear gap
separates what to prune. Paper defaults: a = 1 (scales initialised to 0.5), t in [1e-4, 1e-3]
x ... the total weight lambda of the term; t = 1.2 and lambda = 1e-4 are used here as defaults
(ResNet-56/CIFAR settings of the paper's code; METHODS.md section 2.9)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgeprune.api import PruneConfig, PruneResult, prune
from edgeprune.methods.slimming import _norms


class Polarization:
    """`loss = task_loss + pol.penalty(model)`; call `pol.clamp_(model)` after each optimiser
    step; then `pol.finalize(...)` removes the channels whose scale fell to the low side."""

    def __init__(self, strength: float = 1e-4, t: float = 1.2, upper: float = 1.0):
        self.strength, self.t, self.upper = strength, t, upper

    def penalty(self, model: nn.Module) -> torch.Tensor:
        gammas = torch.cat([m.weight.view(-1) for m in _norms(model)])
        return self.strength * (self.t * gammas.abs().sum() - (gammas - gammas.mean()).abs().sum())

    @torch.no_grad()
    def clamp_(self, model: nn.Module) -> None:
        for m in _norms(model):
            m.weight.clamp_(0.0, self.upper)

    def finalize(self, model: nn.Module, example_inputs: Any, prune_ratio: float = 0.5, **kw) -> PruneResult:
        return prune(model, PruneConfig(criterion="bn_scale", prune_ratio=prune_ratio, scope="global", **kw),
                     example_inputs=example_inputs)
