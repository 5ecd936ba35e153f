"""LAMP, layer-adaptive magnitude-based pruning (Lee, Park, Mo, Ahn, Shin, ICLR 2021).

Within a layer, sort weights by magnitude ascending; weight u gets the score
w_u^2 / sum_{v >= u} w_v^2 (its squared magnitude over that of all weights at least as large).
Scores are comparable across layers, so one global threshold on them sets each layer's
sparsity; the largest weight of every layer scores 1, so no layer is ever emptied."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgeprune.config import SparsifyConfig, option
from edgeprune.registry import register_method
from edgeprune.sparse.masks import SparseMasks, _kth_threshold, prunable_weights


def lamp_scores(w: torch.Tensor) -> torch.Tensor:
    sq = w.detach().flatten().double() ** 2
    order = torch.argsort(sq)
    sorted_sq = sq[order]
    tail = sorted_sq.flip(0).cumsum(0).flip(0)  # sum over v >= u in sorted order
    scores = torch.empty_like(sq)
    scores[order] = sorted_sq / tail.clamp_min(1e-300)
    return scores.view_as(w).float()


def lamp_masks(model: nn.Module, sparsity: float, skip: tuple[str, ...] = ()) -> SparseMasks:
    weights = prunable_weights(model, skip)
    scores = {n: lamp_scores(w) for n, w in weights.items()}
    thr = _kth_threshold(torch.cat([s.flatten() for s in scores.values()]), sparsity)
    return SparseMasks({n: s > thr for n, s in scores.items()})


@register_method("lamp")
@dataclass(frozen=True)
class LAMPConfig(SparsifyConfig):
    """LAMP: layer-adaptive magnitude scores under one global threshold (Lee et al., ICLR 2021)."""

    sparsity: float = option(0.9, "fraction of the prunable weights removed", low=0, high=1, high_open=True)
    ignore: tuple[str, ...] = option((), "modules whose weights stay dense (module names)", aliases=("--skip",))

    def masks(self, model: nn.Module, inputs) -> SparseMasks:
        return lamp_masks(model, self.sparsity, self.ignore)
