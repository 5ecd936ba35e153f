"""The protocol every method that acts during training follows, whatever it does: a loss term
(network slimming, polarization, group lasso, FBS), a masked forward with dense updates (DNS,
DPF), masks re-applied after each step (GMP, iterative pruning), zeroing after each epoch
(soft filter pruning), gates (Taylor reallocation). `edgeprune.training.train(...,
methods=[...])` calls the hooks in this order on every batch:

    before_forward(model, step) -> forward -> loss = regularize(loss, model) -> backward
    -> after_backward(model, step) -> optimiser step -> after_step(model, step)

and `after_epoch(model, epoch)` after every epoch; `step` counts optimiser steps from 0.
Methods that change the model's structure before training (FBS's gates) do it in `prepare`,
which a saved model replays when it is loaded. Every hook is optional."""
from __future__ import annotations

import torch
from torch import nn


class TrainingHooks:
    """Base class: override the hooks a method needs (see the module docstring)."""

    def prepare(self, model: nn.Module) -> nn.Module:
        """Structural changes before training (in place); returns the model."""
        return model

    def regularize(self, loss: torch.Tensor, model: nn.Module) -> torch.Tensor:
        return loss

    def before_forward(self, model: nn.Module, step: int) -> None:
        pass

    def after_backward(self, model: nn.Module, step: int) -> None:
        pass

    def after_step(self, model: nn.Module, step: int) -> None:
        pass

    def after_epoch(self, model: nn.Module, epoch: int) -> None:
        pass


class MaskHolder(TrainingHooks):
    """Keeps pruned weights at zero while training: masks re-applied after every optimiser step
    (momentum and weight decay would revive them)."""

    def __init__(self, masks):
        self.masks = masks

    def after_step(self, model: nn.Module, step: int) -> None:
        self.masks.apply_(model)


__all__ = ["MaskHolder", "TrainingHooks"]
