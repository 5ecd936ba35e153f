"""Polarization regularizer (Zhuang, Zhang, Huang, Zeng, Shuang, Li, "Neuron-level Structured
Pruning using Polarization Regularizer", NeurIPS 2020).

R(gamma) = t * ||gamma||_1 - ||gamma - mean(gamma)||_1 over all batch-norm scales of the
network, with gamma clamped to [0, a]. Unlike the plain L1 of network slimming, it pushes the
scales apart: those of unimportant channels to 0, the others away from 0, so that a clear gap
separates what to prune. Paper defaults: a = 1 (scales initialised to 0.5), t in [1e-4, 1e-3]
x ... the total weight lambda of the term; t = 1.2 and lambda = 1e-4 are used here as defaults
(ResNet-56/CIFAR settings of the paper's code; METHODS.md section 2.9)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from edgeprune.api import PruneConfig, PruneResult, prune
from edgeprune.config import TrainingMethodConfig, option
from edgeprune.hooks import TrainingHooks
from edgeprune.methods.slimming import _norms
from edgeprune.registry import register_method


class Polarization(TrainingHooks):
    """`loss = task_loss + pol.penalty(model)`; call `pol.clamp_(model)` after each optimiser
    step; then `pol.finalize(...)` removes the channels whose scale fell to the low side."""

    def __init__(self, strength: float = 1e-4, t: float = 1.2, upper: float = 1.0):
        self.strength, self.t, self.upper = strength, t, upper

    def penalty(self, model: nn.Module) -> torch.Tensor:
        gammas = torch.cat([m.weight.view(-1) for m in _norms(model)])
        return self.strength * (self.t * gammas.abs().sum() - (gammas - gammas.mean()).abs().sum())

    def regularize(self, loss: torch.Tensor, model: nn.Module) -> torch.Tensor:
        return loss + self.penalty(model)

    def after_step(self, model: nn.Module, step: int) -> None:
        self.clamp_(model)

    @torch.no_grad()
    def clamp_(self, model: nn.Module) -> None:
        for m in _norms(model):
            m.weight.clamp_(0.0, self.upper)

    def finalize(self, model: nn.Module, example_inputs: Any, prune_ratio: float = 0.5, **kw) -> PruneResult:
        return prune(model, PruneConfig(criterion="bn_scale", prune_ratio=prune_ratio, scope="global", **kw),
                     example_inputs=example_inputs)


@register_method("polarization")
@dataclass(frozen=True)
class PolarizationConfig(TrainingMethodConfig):
    """Polarization: t|gamma| - |gamma - mean| pushes batch-norm scales to 0 or away from it (Zhuang et al., NeurIPS 2020)."""

    strength: float = option(1e-4, "weight lambda of the polarization term", low=0)
    t: float = option(1.2, "weight of the L1 part inside the term", low=0)
    upper: float = option(1.0, "scales are clamped to [0, upper]", low=0, low_open=True)
    prune_ratio: float = option(0.5, "fraction of each group's channels removed at the end (0: train only)", low=0, high=1, high_open=True)

    def build(self, model: nn.Module, example_inputs: Any, steps: int) -> Polarization:
        return Polarization(self.strength, self.t, self.upper)

    def finalize(self, hooks: Polarization, model: nn.Module, example_inputs: Any, task=None) -> PruneResult:
        return hooks.finalize(model, example_inputs, prune_ratio=self.prune_ratio)
