"""Random importance: the baseline every criterion must beat."""
from __future__ import annotations

import torch

from edgeprune.criteria.base import ScoringContext, register_criterion
from edgeprune.graph.coupling import ChannelGroup


@register_criterion("random")
def random(group: ChannelGroup, ctx: ScoringContext) -> torch.Tensor:
    """Random ranking (the baseline every criterion must beat)."""
    return torch.rand(len(group), generator=ctx.generator)
