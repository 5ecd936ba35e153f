"""Data-free merging of redundant neurons, after RED (Yvinec, Dapogny, Cord, Bailly, "RED:
Looking for Redundancies for Data-Free Structured Compression of Deep Neural Networks",
NeurIPS 2021, arXiv 2105.14797).

Two channels whose incoming parameters are equal (filter, bias, batch-norm entries: every
tensor that produces the channel) compute the same activation on every input. One of them can
go, its outgoing weights added to its twin's: the function is unchanged and no data is needed.
RED first *hashes* the weight values (snaps them to a few cluster centres) so that near-equal
filters become equal; here the snapping is a uniform grid of `bins` levels per tensor
(simplified from the paper's density-based hashing), and `bins=None` merges exact duplicates
only. The paper's third step (splitting depthwise convolutions) is not implemented."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeprune.config import PruneMethodConfig, option
from edgeprune.example_inputs import call_with
from edgeprune.graph.coupling import build_groups, model_tensors
from edgeprune.graph.trace import trace
from edgeprune.registry import register_method
from edgeprune.surgery.apply import apply_plan
from edgeprune.surgery.plan import PrunePlan


@dataclass
class MergeResult:
    model: nn.Module
    plan: PrunePlan
    merged: int  # channels removed
    max_abs_error: float  # |merged(x) - original(x)| on the example inputs


def _snap(t: torch.Tensor, bins: int | None) -> torch.Tensor:
    if bins is None:
        return t
    lo, hi = t.min(), t.max()
    step = (hi - lo).clamp_min(1e-12) / (bins - 1)
    return torch.round((t - lo) / step) * step + lo


@torch.no_grad()
def merge_redundant(model: nn.Module, example_inputs: Any, bins: int | None = None) -> MergeResult:
    """A copy of `model` with duplicate channels merged (hashed to `bins` levels first, which
    also replaces the producers' weights by their hashed values)."""
    work = copy.deepcopy(model).eval()
    tensors = dict(work.named_parameters())
    tensors.update(dict(work.named_buffers()))
    if bins is not None:  # hashing: every producing tensor snapped to its grid
        for name, t in work.named_parameters():
            if t.is_floating_point():
                t.copy_(_snap(t, bins))
    groups = build_groups(work, trace(work, example_inputs))
    removed: dict[int, list[int]] = {}
    for g in groups:
        producers = [s for s in g.param_slots if g.roles.get(s) not in (None, "in")]
        consumers = g.slots_with_role("in")
        if not producers or not consumers or len(g) < 2:
            continue
        rows = []
        for s in producers:
            t = tensors[s.key].detach().movedim(s.dim, 0)
            idx = torch.from_numpy(g.slots[s])
            rows.append(t[idx.flatten()].reshape(len(g), -1).double())
        sig = torch.cat(rows, 1).numpy()
        _, first, inverse = np.unique(sig, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.ravel()
        dups = [u for u in range(len(g)) if first[inverse[u]] != u]
        if not dups:
            continue
        for u in dups:  # fold the twin's outgoing weights into the kept channel
            keep = int(first[inverse[u]])
            for s in consumers:
                w = tensors[s.key]
                src = torch.from_numpy(g.slots[s][u])
                dst = torch.from_numpy(g.slots[s][keep])
                w.index_add_(s.dim, dst, w.index_select(s.dim, src))
        removed[g.index] = dups
    plan = PrunePlan.from_groups(groups, removed, model_tensors(work))
    merged_model = apply_plan(work, plan)
    err = float((call_with(merged_model, example_inputs) - call_with(model.eval(), example_inputs)).abs().max())
    return MergeResult(merged_model, plan, sum(len(v) for v in removed.values()), err)


@register_method("red")
@dataclass(frozen=True)
class REDConfig(PruneMethodConfig):
    """RED: merge channels whose producing weights are equal once hashed; no data needed (Yvinec et al., NeurIPS 2021)."""

    bins: int | None = option(None, "hash each weight tensor to this many levels (default: exact duplicates only)",
                              low=2)

    def prune(self, model: nn.Module, *, example_inputs: Any, data=None):
        from edgeprune.api import PruneResult
        from edgeprune.metrics import measure
        merged = merge_redundant(model, example_inputs, bins=self.bins)
        return PruneResult(merged.model, merged.plan, measure(model, example_inputs),
                           measure(merged.model, example_inputs), None, "",
                           details={"merged_channels": merged.merged, "max_abs_change": merged.max_abs_error})
