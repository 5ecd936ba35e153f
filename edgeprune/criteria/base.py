"""Criterion registry and the units x features view every criterion reads."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch

from edgeprune.graph.coupling import ChannelGroup
from edgeprune.registry import CRITERIA


@dataclass
class ScoringContext:
    """What a criterion may read: tensors by name, their gradients (Taylor), module types, and
    for activation-based criteria the model, its graph and calibration batches."""

    tensors: dict[str, torch.Tensor]
    grads: dict[str, torch.Tensor] = field(default_factory=dict)
    owner_types: dict[str, type] = field(default_factory=dict)
    generator: torch.Generator | None = None
    model: torch.nn.Module | None = None
    graph: object | None = None
    data: list | None = None
    cache: dict = field(default_factory=dict)


Criterion = Callable[[ChannelGroup, ScoringContext], torch.Tensor]


def register_criterion(name: str) -> Callable[[Criterion], Criterion]:
    """Function decorator: `@register_criterion("mine") def mine(group, ctx) -> Tensor[units]`
    (higher = more important). A file in edgeprune/criteria/ is found by itself; a criterion
    defined elsewhere is registered when its module is imported."""
    def wrap(fn: Criterion) -> Criterion:
        CRITERIA.register(name, fn)
        return fn
    return wrap


def get_criterion(name: str) -> Criterion:
    return CRITERIA.get(name).obj


def per_unit(group: ChannelGroup, source: dict[str, torch.Tensor], reduce: str,
             only_params: set[str] | None = None, slots: list | None = None) -> Iterator[tuple[tuple, torch.Tensor]]:
    """For each tensor axis of the group (or of `slots`): a per-unit statistic without copying
    rows. `reduce` = "abs_sum" (sum of |w|) or "sq_sum" (sum of w^2) over everything in the unit."""
    for slot in (group.param_slots if slots is None else slots):
        _, name, dim = slot
        if name not in source or (only_params is not None and name not in only_params):
            continue
        t = source[name].detach()
        other = [d for d in range(t.ndim) if d != dim]
        stat = t.abs().sum(other) if reduce == "abs_sum" else (t * t).sum(other)
        if not other:
            stat = t.abs() if reduce == "abs_sum" else t * t
        idx = torch.from_numpy(group.slots[slot])
        yield slot, stat.float()[idx].sum(1)


def unit_views(group: ChannelGroup, source: dict[str, torch.Tensor],
               only_params: set[str] | None = None, slots: list | None = None) -> Iterator[tuple[tuple, torch.Tensor]]:
    """For each tensor axis of the group (or of `slots`): (slot, [units, features]) gathered from `source`."""
    for slot in (group.param_slots if slots is None else slots):
        _, name, dim = slot
        if name not in source or (only_params is not None and name not in only_params):
            continue
        t = source[name].detach().float().movedim(dim, 0)
        idx = torch.from_numpy(group.slots[slot])
        yield slot, t[idx.flatten()].reshape(idx.shape[0], -1)
