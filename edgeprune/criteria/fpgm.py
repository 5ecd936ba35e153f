"""Filter pruning via geometric median (He, Liu, Wang, Hu, Yang, CVPR 2019, arXiv 1811.00250).

Filters close to the geometric median of their layer are the most replaceable by the others,
whatever their norm. FPGM scores each filter by the sum of its Euclidean distances to all other
filters of the layer (the official code's approximation of the geometric-median distance) and
removes the smallest. In a coupled group, every producer's filters (output axis of a weight
matrix or kernel) contribute their distances, each layer normalised by its mean."""
from __future__ import annotations

import torch

from edgeprune.criteria.base import ScoringContext, register_criterion, unit_views
from edgeprune.criteria.magnitude import l2
from edgeprune.graph.coupling import ChannelGroup


@register_criterion("fpgm")
def fpgm(group: ChannelGroup, ctx: ScoringContext) -> torch.Tensor:
    producers = {s[1] for s in group.param_slots if s[2] == 0 and s[1] in ctx.tensors and ctx.tensors[s[1]].ndim >= 2}
    if not producers:  # no filters (a group of norms only): fall back to magnitude
        return l2(group, ctx)
    score = torch.zeros(len(group))
    for slot, rows in unit_views(group, ctx.tensors, only_params=producers):
        if slot[2] != 0:
            continue
        dist = torch.cdist(rows.double(), rows.double()).sum(1).float()
        score += dist / dist.mean().clamp_min(1e-12)
    return score
