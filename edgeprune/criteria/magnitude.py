"""L1 / L2 magnitude of each filter (Li, Kadav, Durdanovic, Samet, Graf, "Pruning Filters for
Efficient ConvNets", ICLR 2017): the norm of the kernel weights that produce a channel (the
axes the rules tag "out": a convolution's filters, whichever axis of its weight that is; a
linear layer's rows). In a coupled group every producing layer counts, each layer's norms
divided by their mean so that no layer dominates by its scale. Groups without a producing
weight (a norm's channels only) use all their tensors."""
from __future__ import annotations

import torch

from edgeprune.criteria.base import ScoringContext, per_unit, register_criterion
from edgeprune.graph.coupling import ChannelGroup


def _norm(group: ChannelGroup, ctx: ScoringContext, p: int) -> torch.Tensor:
    params = {n for n, t in ctx.tensors.items() if isinstance(t, torch.nn.Parameter)}
    filters = [s for s in group.producer_slots if s.key in params] or None  # None: every tensor of the group
    score = torch.zeros(len(group))
    for _, stat in per_unit(group, ctx.tensors, "abs_sum" if p == 1 else "sq_sum", only_params=params, slots=filters):
        norms = stat if p == 1 else stat.sqrt()
        score += norms / norms.mean().clamp_min(1e-12)
    return score


@register_criterion("l1")
def l1(group: ChannelGroup, ctx: ScoringContext) -> torch.Tensor:
    """L1 norm of each filter (Li et al., ICLR 2017)."""
    return _norm(group, ctx, 1)


@register_criterion("l2")
def l2(group: ChannelGroup, ctx: ScoringContext) -> torch.Tensor:
    """L2 norm of each filter."""
    return _norm(group, ctx, 2)
