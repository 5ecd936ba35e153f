"""Which units to remove: per-group counts (ratio, round_to, min_channels, layer ratios) and
local or global ranking of criterion scores."""
from __future__ import annotations

import math
import re
from typing import Iterable

import torch
from torch import nn

from edgeprune.errors import ConfigError
from edgeprune.graph.coupling import ChannelGroup

PRODUCING = ("out", "bias", "scale", "shift", "stat", "act")  # axes on the producing side of a group's channels (rules' roles)


def matches(name: str, patterns: Iterable[str]) -> bool:
    """`name` equals a pattern, sits under it (`features` matches `features.3`), or fits `re:...`."""
    for p in patterns:
        if p.startswith("re:") and re.fullmatch(p[3:], name):
            return True
        if name == p or name.startswith(p + "."):
            return True
    return False


def expand_ignore(model: nn.Module, ignore: Iterable[str]) -> list[str]:
    """The module names `ignore` covers (names, their submodules, `re:` patterns); a plain name
    the model does not have is refused."""
    ignore = list(ignore)
    names = [n for n, _ in model.named_modules() if n]
    missing = [p for p in ignore if not p.startswith("re:") and p not in names]
    if missing:
        raise ConfigError(f"ignore names modules the model does not have: {missing}")
    return [n for n in names if matches(n, ignore)]


def group_ratio(g: ChannelGroup, layer_ratios: dict[str, float], base: float) -> float:
    """The ratio of the first pattern naming one of the group's layers (by their module names)."""
    layers = [s.key.rsplit(".", 1)[0] for s in g.param_slots if g.roles.get(s) in PRODUCING]
    for pat, r in layer_ratios.items():
        if any(matches(name, [pat]) for name in layers):
            return r
    return base


def n_prune(g: ChannelGroup, ratio: float, round_to: int, min_channels: int, original_units: int | None = None) -> int:
    """Units to remove now so that `ratio` of the group's original units are gone."""
    n, cpu = len(g), g.channels_per_unit
    base = original_units or n
    keep = base - int(math.floor(base * ratio + 1e-9))
    if round_to > 1 and cpu == 1:
        keep = int(round(keep / round_to)) * round_to
    keep = max(keep, math.ceil(min_channels / cpu), 1)
    return max(0, n - min(keep, n))


def select(groups: list[ChannelGroup], scores: dict[int, torch.Tensor], ratio: float, config,
           original: dict | None = None) -> dict[int, list[int]]:
    """Units to remove per group. `ratio`: fraction removed from the original model;
    `original[(tensor, dim)]`: sizes before earlier steps (iterative pruning)."""
    original = original or {}
    if config.scope == "local" or config.layer_ratios:
        out = {}
        for g in groups:
            _, name, dim = g.param_slots[0]
            units = original.get((name, dim), 0) // g.channels_per_unit or None
            k = n_prune(g, group_ratio(g, config.layer_ratios, ratio), config.round_to, config.min_channels, units)
            out[g.index] = torch.argsort(scores[g.index], stable=True)[:k].tolist() if k else []
        return out
    # global: one ranking of mean-normalised scores; a unit counts for its width in channels
    caps = {g.index: n_prune(g, 0.999, config.round_to, config.min_channels) for g in groups}
    entries = []
    for g in groups:
        s = scores[g.index]
        s = s / s.mean().clamp_min(1e-12)
        entries += [(float(v), g.index, u) for u, v in enumerate(s)]
    entries.sort()
    budget = ratio * sum(len(g) * g.channels_per_unit for g in groups)
    width = {g.index: g.channels_per_unit for g in groups}
    out: dict[int, list[int]] = {g.index: [] for g in groups}
    removed = 0.0
    for _, gi, u in entries:
        if removed >= budget:
            break
        if len(out[gi]) < caps[gi]:
            out[gi].append(u)
            removed += width[gi]
    return out
