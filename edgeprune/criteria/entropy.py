"""Entropy of a channel's output over inputs (Luo & Wu, "An Entropy-based Pruning Method for
CNN Compression", arXiv 1706.05791, 2017; the entropy criterion the survey cites for
multi-level filter pruning, Liu et al.: VGG-16 on CIFAR-10 -54.5 % FLOPs).

Each channel's feature map is reduced to one number per input by global average pooling;
over the N calibration inputs these numbers form a distribution, whose range is cut into
`BINS` equal bins: H = -sum_i p_i log p_i. A channel whose pooled output hardly changes from
input to input (low entropy, e.g. always about the same value) carries little information
about the input and goes first. The paper's bin count is not in our sources; 100 bins here.
In a coupled group, the entropies of every place the channels appear (after their activation
function) are averaged."""
from __future__ import annotations

import torch

from edgeprune.criteria.activation import channel_samples
from edgeprune.criteria.base import ScoringContext, register_criterion
from edgeprune.graph.coupling import ChannelGroup

BINS = 100


def channel_entropy(values: torch.Tensor, bins: int = BINS) -> torch.Tensor:
    """Entropy (nats) of each column of `values` [samples, channels], histogrammed over the
    column's own range into `bins` equal bins; a constant column has entropy 0."""
    lo, hi = values.min(0).values, values.max(0).values
    width = (hi - lo).clamp_min(1e-12)
    idx = ((values - lo) / width * bins).long().clamp_(0, bins - 1)  # the maximum lands in the last bin
    counts = torch.zeros(bins, values.shape[1]).scatter_add_(0, idx, torch.ones_like(values))
    p = counts / values.shape[0]
    h = -(p * torch.log(p.clamp_min(1e-30))).sum(0)
    return torch.where(hi > lo, h, torch.zeros_like(h))


@register_criterion("entropy")
def entropy(group: ChannelGroup, ctx: ScoringContext) -> torch.Tensor:
    """Entropy of each channel's pooled output over the inputs (Luo & Wu 2017); low entropy goes first; needs data."""
    score = torch.zeros(len(group))
    views = channel_samples(group, ctx)
    for _, samples in views:  # [samples, units, k]
        score += channel_entropy(samples.reshape(samples.shape[0], -1)).reshape(len(group), -1).mean(1)
    return score / len(views)
