"""Filter pruning via geometric median (He, Liu, Wang, Hu, Yang, CVPR 2019, arXiv 1811.00250).

Filters close to the geometric median of their layer are the most replaceable by the others,
whatever their norm. FPGM scores each filter by the sum of its Euclidean distances to all other
filters of the layer (the official code's approximation of the geometric-median distance) and
removes the smallest. In a coupled group, every producer's filters (the weight axes the rules
tag "out") contribute their distances, each layer normalised by its mean."""
from __future__ import annotations

import torch

from edgeprune.criteria.base import ScoringContext, register_criterion, unit_views
from edgeprune.criteria.magnitude import l2
from edgeprune.graph.coupling import ChannelGroup


@register_criterion("fpgm")
def fpgm(group: ChannelGroup, ctx: ScoringContext) -> torch.Tensor:
    """FPGM: filters nearest the geometric median of their layer go first (He et al., CVPR 2019)."""
    producers = [s for s in group.producer_slots if s.key in ctx.tensors]
    if not producers:  # no filters (a group of norms only): fall back to magnitude
        return l2(group, ctx)
    score = torch.zeros(len(group))
    for _, rows in unit_views(group, ctx.tensors, slots=producers):
        dist = torch.cdist(rows.double(), rows.double()).sum(1).float()
        score += dist / dist.mean().clamp_min(1e-12)
    return score
