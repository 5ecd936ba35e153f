"""Activation-based criteria, measured on calibration batches (prune(..., data=...)).

- `apoz`: average percentage of zeros after a ReLU (Hu, Peng, Tai, Tang, "Network Trimming",
  arXiv 1607.03250, 2016): a channel that is mostly zero carries little; score = 1 - APoZ.
- `mean_activation`: mean |activation| of the channel (the criterion Molchanov et al. 2017
  compare against).
- `hrank`: average rank of the channel's 2-D feature maps (Lin et al., "HRank: Filter Pruning
  using High-Rank Feature Map", CVPR 2020): low-rank maps carry less information.
Each statistic is taken on the values of the group after its activation function (or, when
the group has none, on its layer outputs), averaged over those values.
"""
from __future__ import annotations

import torch

from edgeprune.criteria.base import ScoringContext, register_criterion
from edgeprune.errors import ConfigError
from edgeprune.graph.coupling import ChannelGroup
from edgeprune.graph.trace import Recorder, run_recorded
from edgeprune.rules.base import has_rule

ACTIVATIONS = {"relu", "relu6", "hardtanh", "leaky_relu", "gelu", "silu", "hardswish", "elu", "mish", "sigmoid"}


def _value_slots(group: ChannelGroup, graph, zero_based: bool) -> list[tuple]:
    vs = [s for s in group.slots if s[0] == "v"]
    acts = [s for s in vs if graph.values[s[1]].producer is not None and graph.values[s[1]].producer.kind == "function"
            and graph.values[s[1]].producer.target in (("relu", "relu6", "hardtanh") if zero_based else ACTIVATIONS)]
    if acts:
        return acts
    return [s for s in vs if graph.values[s[1]].producer is not None and graph.values[s[1]].producer.kind == "module"]


class _StatsRecorder(Recorder):
    def __init__(self, model, wanted: dict[int, list[tuple[int, int]]], kind: str):
        super().__init__(has_rule, model)
        self.wanted, self.kind = wanted, kind  # node index -> [(output position, dim)]
        self.sums: dict[tuple[int, int, int], torch.Tensor] = {}
        self.counts: dict[tuple[int, int, int], float] = {}

    def _finish(self, kind, target, pending, out, module):
        k = len(self.nodes)
        super()._finish(kind, target, pending, out, module)
        if k not in self.wanted or len(self.nodes) == k:
            return
        outs = [t for t in torch.utils._pytree.tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        for pos, dim, size in self.wanted[k]:
            if outs[pos].ndim <= dim or outs[pos].shape[dim] != size:
                continue  # a length that varies with the input (sequence), not channels
            t = outs[pos].detach().float().movedim(dim, 1)
            t = t.reshape(t.shape[0], t.shape[1], -1) if t.ndim >= 2 else t.reshape(1, -1, 1)
            if self.kind == "samples":  # one pooled value per sample and channel (kept, not summed)
                s, c = t.mean(2), 1
            elif self.kind == "apoz":
                s, c = (t == 0).float().sum((0, 2)), t.shape[0] * t.shape[2]
            elif self.kind == "mean":
                s, c = t.abs().sum((0, 2)), t.shape[0] * t.shape[2]
            else:  # rank of each (sample, channel) 2-D map
                full = outs[pos].detach().float()
                s, c = torch.linalg.matrix_rank(full).float().sum(0), full.shape[0]
            key = (k, pos, dim)
            self.sums[key] = self.sums.get(key, 0) + s
            self.counts[key] = self.counts.get(key, 0) + c


def _stats(ctx: ScoringContext, kind: str) -> dict[tuple[int, int], torch.Tensor]:
    """Per (value id, dim) channel statistic over the calibration data, cached per kind; for
    kind "samples", every sample's pooled value: a [samples, channels] tensor."""
    if kind in ctx.cache:
        return ctx.cache[kind]
    if not ctx.data or ctx.model is None or ctx.graph is None:
        raise ConfigError("activation criteria need calibration data: prune(..., data=batches)")
    graph = ctx.graph
    wanted: dict[int, list[tuple[int, int, int]]] = {}
    for v in graph.values.values():  # channels at dim 1 (N, C, ...) or last (N, L, C)
        if v.producer is None or v.ndim < 2 or not v.dtype.is_floating_point:
            continue
        dims = [1] if kind == "rank" else sorted({1, v.ndim - 1})
        if kind == "rank" and v.ndim != 4:
            continue
        for d in dims:
            wanted.setdefault(v.producer.index, []).append((v.producer.outputs.index(v), d, v.shape[d]))
    rec_sums: dict = {}
    rec_counts: dict = {}
    with torch.no_grad():
        for x in ctx.data:
            rec = _StatsRecorder(ctx.model.eval(), wanted, kind)
            run_recorded(rec, ctx.model, x)
            for key, s in rec.sums.items():
                if kind == "samples":
                    rec_sums[key] = torch.cat([rec_sums[key], s]) if key in rec_sums else s
                    rec_counts[key] = 1
                else:
                    rec_sums[key] = rec_sums.get(key, 0) + s
                    rec_counts[key] = rec_counts.get(key, 0) + rec.counts[key]
    out = {}
    for (k, pos, dim), s in rec_sums.items():
        out[(graph.nodes[k].outputs[pos].id, dim)] = s / max(rec_counts[(k, pos, dim)], 1)
    ctx.cache[kind] = out
    return out


def channel_samples(group: ChannelGroup, ctx: ScoringContext) -> list[tuple[tuple, torch.Tensor]]:
    """For a group's activation values (after its activation function, else its layers'
    outputs): (slot, [samples, units, k]) of each channel's value averaged over its positions,
    one row per calibration sample, for criteria built on the distribution of a channel's
    output over inputs (entropy)."""
    stats = _stats(ctx, "samples")
    out = []
    for slot in _value_slots(group, ctx.graph, False):
        per_sample = stats.get((slot[1], slot[2]))
        if per_sample is not None:
            out.append((slot, per_sample[:, torch.from_numpy(group.slots[slot])]))
    if not out:
        raise ConfigError(f"no activations measured for group {group.name}")
    return out


def _score(group: ChannelGroup, ctx: ScoringContext, kind: str, zero_based: bool) -> torch.Tensor:
    stats = _stats(ctx, kind)
    score = torch.zeros(len(group))
    found = False
    for slot in _value_slots(group, ctx.graph, zero_based):
        per_channel = stats.get((slot[1], slot[2]))
        if per_channel is None:
            continue
        idx = torch.from_numpy(group.slots[slot])
        score += per_channel[idx].mean(1)
        found = True
    if not found:
        raise ConfigError(f"no activations measured for group {group.name}"
                          + (" (hrank needs 2-D feature maps, N x C x H x W)" if kind == "rank" else ""))
    return score


@register_criterion("apoz")
def apoz(group: ChannelGroup, ctx: ScoringContext) -> torch.Tensor:
    """APoZ: channels whose activations are most often zero go first (Hu et al. 2016); needs data."""
    return 1.0 - _score(group, ctx, "apoz", True)


@register_criterion("mean_activation")
def mean_activation(group: ChannelGroup, ctx: ScoringContext) -> torch.Tensor:
    """Mean activation: channels with the smallest mean output go first (Molchanov et al. 2017); needs data."""
    return _score(group, ctx, "mean", False)


@register_criterion("hrank")
def hrank(group: ChannelGroup, ctx: ScoringContext) -> torch.Tensor:
    """HRank: channels whose feature maps have the lowest average rank go first (Lin et al., CVPR 2020); needs data."""
    return _score(group, ctx, "rank", False)
