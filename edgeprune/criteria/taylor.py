"""First-order Taylor importance (Molchanov, Mallya, Tyree, Frosio, Kautz, "Importance
Estimation for Neural Network Pruning", CVPR 2019): the loss change from removing a unit is
approximated by (sum over its parameters of gradient x weight)^2, with gradients accumulated
over a few batches. Needs `grads` (edgeprune.prune computes them when given data)."""
from __future__ import annotations

import torch

from edgeprune.criteria.base import ScoringContext, register_criterion, unit_views
from edgeprune.errors import ConfigError
from edgeprune.graph.coupling import ChannelGroup


@register_criterion("taylor")
def taylor(group: ChannelGroup, ctx: ScoringContext) -> torch.Tensor:
    """First-order Taylor: |gradient x weight| summed per channel (Molchanov et al. 2017/2019); needs data."""
    if not ctx.grads:
        raise ConfigError("the 'taylor' criterion needs gradients: pass calibration data "
                          "(prune(..., data=loader)) so edgeprune can compute them")
    prod = {n: ctx.tensors[n].detach() * g for n, g in ctx.grads.items() if n in ctx.tensors}
    score = torch.zeros(len(group))
    for _, view in unit_views(group, prod):
        score += view.sum(1) ** 2
    return score
