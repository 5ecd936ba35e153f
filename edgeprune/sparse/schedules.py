"""Gradual magnitude pruning (Zhu & Gupta, "To prune, or not to prune", arXiv 1710.01878).

Sparsity rises from s_i to s_f over n pruning steps of length dt starting at step t0 by the
cubic schedule s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n dt))^3: fast at first, while there
is redundancy, slower as the network gets small. At each pruning step the smallest-magnitude
weights of each layer are masked (the paper prunes each layer to the same sparsity); training
continues in between. Paper defaults: s_i = 0, dt = 100-1000 steps."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from edgeprune.config import SparsifyConfig, option
from edgeprune.hooks import TrainingHooks
from edgeprune.registry import register_method
from edgeprune.sparse.masks import SparseMasks, global_magnitude, layer_magnitude


def cubic_sparsity(step: int, final: float, begin: int, end: int, initial: float = 0.0) -> float:
    """Target sparsity at `step` for pruning from `begin` to `end`."""
    if step >= end:
        return final
    if step <= begin:
        return initial
    return final + (initial - final) * (1.0 - (step - begin) / (end - begin)) ** 3


class GradualMagnitudePruning:
    """Call `gmp.step(model, step)` every training step (it re-masks every `every` steps)."""

    def __init__(self, final_sparsity: float, begin: int, end: int, every: int = 100,
                 initial_sparsity: float = 0.0, scope: str = "layer"):
        self.final, self.begin, self.end, self.every = final_sparsity, begin, end, every
        self.initial, self.scope = initial_sparsity, scope
        self.masks = SparseMasks()

    def step(self, model: nn.Module, step: int) -> SparseMasks:
        if self.begin <= step <= self.end and (step - self.begin) % self.every == 0:
            s = cubic_sparsity(step, self.final, self.begin, self.end, self.initial)
            self.masks = (layer_magnitude if self.scope == "layer" else global_magnitude)(model, s)
        self.masks.apply_(model)
        return self.masks


class _GMPHooks(TrainingHooks):
    """Re-mask by layer magnitude on the cubic schedule every `every` steps up to `end`; masks held."""

    def __init__(self, sparsity: float, end: int, every: int, skip: tuple[str, ...]):
        self.sparsity, self.end, self.every, self.skip = sparsity, end, every, skip
        self.masks = SparseMasks()

    def after_step(self, model: nn.Module, step: int) -> None:
        step += 1
        if step <= self.end and (step % self.every == 0 or step == self.end):
            self.masks = layer_magnitude(model, cubic_sparsity(step, self.sparsity, 0, self.end), self.skip)
        self.masks.apply_(model)


@register_method("gmp")
@dataclass(frozen=True)
class GMPConfig(SparsifyConfig):
    """Gradual magnitude pruning on the cubic schedule while fine-tuning (Zhu & Gupta 2017)."""

    trains: ClassVar[bool] = True  # the fine-tuning is the method
    sparsity: float = option(0.9, "fraction of the prunable weights removed", low=0, high=1, high_open=True)
    every: int = option(20, "steps between re-masking", low=1)
    ramp: float = option(2 / 3, "fraction of the fine-tuning over which sparsity rises", low=0, high=1, low_open=True)
    ignore: tuple[str, ...] = option((), "modules whose weights stay dense (module names)", aliases=("--skip",))

    def masks(self, model: nn.Module, inputs) -> SparseMasks:
        train = inputs.training("gmp")
        hooks = _GMPHooks(self.sparsity, max(1, int(inputs.steps * self.ramp + 1e-9)), self.every, self.ignore)
        train(model, [hooks])
        return hooks.masks
