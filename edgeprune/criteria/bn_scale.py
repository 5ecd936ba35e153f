"""Batch-norm scale |gamma| (Liu et al., "Learning Efficient Convolutional Networks through
Network Slimming", ICCV 2017): a channel whose normalised output is scaled to ~0 carries
little. The scales are the axes the rules tag "scale" (batch, instance, group, layer and RMS
norms). Groups without a normalisation layer fall back to L1 magnitude."""
from __future__ import annotations

import torch

from edgeprune.criteria.base import ScoringContext, register_criterion, unit_views
from edgeprune.criteria.magnitude import l1
from edgeprune.graph.coupling import ChannelGroup


@register_criterion("bn_scale")
def bn_scale(group: ChannelGroup, ctx: ScoringContext) -> torch.Tensor:
    """Batch-norm scale |gamma|: channels scaled towards zero go first (network slimming, Liu et al. 2017)."""
    gammas = group.slots_with_role("scale")  # the normalisation scales the rules tagged
    score = torch.zeros(len(group))
    for _, view in unit_views(group, ctx.tensors, slots=gammas):
        score += view.abs().sum(1)
    return score if gammas else l1(group, ctx)
