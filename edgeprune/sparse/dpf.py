"""Dynamic pruning with feedback (Lin, Stich, Barba, Dmitriev, Jaggi, "Dynamic Model Pruning
with Feedback", ICLR 2020, arXiv 2006.07253).

A dense model is kept alongside the sparse one. The forward/backward pass runs on the sparse
weights (dense x mask), but the gradient updates the *dense* weights, so the error of pruning
feeds back: a pruned weight whose dense value grows is revived when the mask is recomputed
(by magnitude, every `every` steps, with the sparsity following the cubic schedule of Zhu &
Gupta up to `final_sparsity`). At the end the sparse model is the dense one masked."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from edgeprune.config import SparsifyConfig, option
from edgeprune.hooks import TrainingHooks
from edgeprune.registry import register_method
from edgeprune.sparse.masks import SparseMasks, global_magnitude, restore_dense
from edgeprune.sparse.schedules import cubic_sparsity


class DynamicPruningFeedback:
    """Per training step: `dpf.before_forward(model, step)`, forward/backward, then
    `dpf.after_backward(model)` before `optimizer.step()`."""

    def __init__(self, final_sparsity: float, end: int, every: int = 16, skip: tuple[str, ...] = ()):
        self.final, self.end, self.every, self.skip = final_sparsity, end, every, skip
        self.masks = SparseMasks()
        self._dense: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def before_forward(self, model: nn.Module, step: int) -> None:
        if step % self.every == 0 or not self.masks.masks:
            self.masks = global_magnitude(model, cubic_sparsity(min(step, self.end), self.final, 0, self.end), self.skip)
        self._dense = self.masks.apply_keeping_dense(model)

    def after_backward(self, model: nn.Module) -> None:
        """Dense weights back: the optimiser applies the sparse model's gradient to them."""
        restore_dense(model, self._dense)
        self._dense = {}

    @torch.no_grad()
    def finalize(self, model: nn.Module) -> SparseMasks:
        self.masks = global_magnitude(model, self.final, self.skip)
        self.masks.apply_(model)
        return self.masks


class _DPFHooks(TrainingHooks):
    def __init__(self, dpf: DynamicPruningFeedback):
        self.dpf = dpf

    def before_forward(self, model: nn.Module, step: int) -> None:
        self.dpf.before_forward(model, step)

    def after_backward(self, model: nn.Module, step: int) -> None:
        self.dpf.after_backward(model)


@register_method("dpf")
@dataclass(frozen=True)
class DPFConfig(SparsifyConfig):
    """Dynamic pruning with feedback: sparse forward, dense updates (Lin et al., ICLR 2020)."""

    trains: ClassVar[bool] = True
    sparsity: float = option(0.9, "fraction of the prunable weights removed", low=0, high=1, high_open=True)
    ramp: float = option(2 / 3, "fraction of the fine-tuning over which sparsity rises", low=0, high=1, low_open=True)
    ignore: tuple[str, ...] = option((), "modules whose weights stay dense (module names)", aliases=("--skip",))

    def masks(self, model: nn.Module, inputs) -> SparseMasks:
        train = inputs.training("dpf")
        dpf = DynamicPruningFeedback(self.sparsity, end=max(1, int(inputs.steps * self.ramp + 1e-9)), skip=self.ignore)
        train(model, [_DPFHooks(dpf)])
        return dpf.finalize(model)
