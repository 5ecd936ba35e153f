"""Iterative magnitude pruning with retraining (Han, Pool, Tran, Dally, NeurIPS 2015): prune
the smallest weights, retrain the rest with the pruned ones held at zero, and repeat with a
higher sparsity. A weight once pruned stays pruned. The sparsity of round r of R is
1 - (1 - final)^(r / R), so every round removes the same fraction of what is left."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

from torch import nn

from edgeprune.config import SparsifyConfig, option
from edgeprune.hooks import MaskHolder
from edgeprune.registry import register_method
from edgeprune.sparse.masks import SparseMasks, global_magnitude, layer_magnitude


def iterative_magnitude(model: nn.Module, final_sparsity: float, rounds: int,
                        retrain: Callable[[nn.Module, SparseMasks], None] | None = None,
                        scope: str = "global", skip: tuple[str, ...] = ()) -> SparseMasks:
    """Prune `model` in place over `rounds`; `retrain(model, masks)` runs after each round and
    must keep the masks (call `masks.apply_(model)` after its optimiser steps)."""
    choose = global_magnitude if scope == "global" else layer_magnitude
    masks = SparseMasks()
    for r in range(1, rounds + 1):
        s = 1.0 - (1.0 - final_sparsity) ** (r / rounds)
        masks = choose(model, s, skip)
        masks.apply_(model)
        if retrain is not None:
            retrain(model, masks)
            masks.apply_(model)
    return masks


@register_method("iterative")
@dataclass(frozen=True)
class IterativeConfig(SparsifyConfig):
    """Iterative magnitude pruning, retraining with the masks held after each round (Han et al. 2015)."""

    trains: ClassVar[bool] = True
    sparsity: float = option(0.9, "fraction of the prunable weights removed", low=0, high=1, high_open=True)
    rounds: int = option(3, "prune-retrain rounds", low=1)
    scope: str = option("global", "one threshold for all layers, or the same fraction per layer",
                        choices=("global", "layer"))
    ignore: tuple[str, ...] = option((), "modules whose weights stay dense (module names)", aliases=("--skip",))

    def masks(self, model: nn.Module, inputs) -> SparseMasks:
        retrain = (lambda mod, masks: inputs.train(mod, [MaskHolder(masks)])) if inputs.train is not None else None
        return iterative_magnitude(model, self.sparsity, self.rounds, retrain, self.scope, self.ignore)
