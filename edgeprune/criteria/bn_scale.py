"""Batch-norm scale |gamma| (Liu et al., "Learning Efficient Convolutional Networks through
Network Slimming", ICCV 2017): a channel whose normalised output is scaled to ~0 carries
little. Groups without a normalisation layer fall back to L1 magnitude."""
from __future__ import annotations

import torch
from torch import nn

from edgeprune.criteria.base import ScoringContext, register_criterion, unit_views
from edgeprune.criteria.magnitude import l1
from edgeprune.graph.coupling import ChannelGroup

_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


@register_criterion("bn_scale")
def bn_scale(group: ChannelGroup, ctx: ScoringContext) -> torch.Tensor:
    gammas = {n for n, owner in ctx.owner_types.items()
              if n.endswith(".weight") and issubclass(owner, _NORMS)}
    score, found = torch.zeros(len(group)), False
    for _, view in unit_views(group, ctx.tensors, only_params=gammas):
        score += view.abs().sum(1)
        found = True
    return score if found else l1(group, ctx)
