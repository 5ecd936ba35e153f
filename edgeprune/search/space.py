"""The space the width-search methods (AMC, ABCPruner, DSA, ...) move in: a model's prunable
channel groups, a cost model of MACs and parameters as a function of each group's kept
fraction, fast unverified pruning at any per-group keep vector (for candidate evaluation),
and a verified `finalize` for the chosen one.

The cost model is fitted on the real engine: MACs (or parameters) of a network are, layer by
layer, products of an input width and an output width, so they are exactly a constant plus a
linear and a pairwise term in the groups' kept fractions. We measure the model at all groups
kept, at each group halved, and at each adjacent pair halved, and solve for the
coefficients; `exact()` still counts the pruned model when a figure must be exact."""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from edgeprune.api import PruneConfig, PruneResult
from edgeprune.budget import meet_budget
from edgeprune.engine import PruningSession
from edgeprune.errors import ConfigError
from edgeprune.graph.coupling import ChannelGroup
from edgeprune.metrics import count_macs, count_params, measure
from edgeprune.opgraph import Slot
from edgeprune.pruning import prune_once
from edgeprune.surgery.apply import apply_plan
from edgeprune.surgery.plan import PrunePlan
from edgeprune.verify import verify


@dataclass
class BilinearCost:
    """cost(x) = c0 + sum_i a_i (x_i - 1) + sum_(i,j) b_ij (x_i - 1)(x_j - 1), x = kept fractions."""

    c0: float
    a: np.ndarray
    pairs: list[tuple[int, int, float]]

    def __call__(self, x: Sequence[float]) -> float:
        d = np.asarray(x, dtype=float) - 1.0
        return float(self.c0 + self.a @ d + sum(b * d[i] * d[j] for i, j, b in self.pairs))

    def grad(self, x: Sequence[float]) -> np.ndarray:
        d = np.asarray(x, dtype=float) - 1.0
        g = self.a.copy()
        for i, j, b in self.pairs:
            g[i] += b * d[j]
            g[j] += b * d[i]
        return g

    def torch(self, x: torch.Tensor) -> torch.Tensor:
        """The same cost, differentiable in `x` (DSA's budget term)."""
        d = x - 1.0
        out = self.c0 + (torch.as_tensor(self.a, dtype=x.dtype) * d).sum()
        for i, j, b in self.pairs:
            out = out + b * d[i] * d[j]
        return out


class ChannelSpace:
    """`space = ChannelSpace(model, x)`; `space.prune(keep)` -> unverified pruned copy for a
    keep fraction per group (len(space) of them); `space.finalize(keep)` -> verified PruneResult.

    Units inside a group are ranked by `criterion` once (on the unpruned weights). Groups the
    engine's checks must keep (hard-coded widths) are left out of the space."""

    def __init__(self, model: nn.Module, example_inputs: Any, criterion: str = "l1", ignore: Iterable[str] = (),
                 data: list | None = None, round_to: int = 1):
        self.model, self.example_inputs, self.round_to = model.eval(), example_inputs, round_to
        self.config = PruneConfig(criterion=criterion, prune_ratio=0.5, ignore=tuple(ignore), round_to=round_to)
        if criterion == "taylor":
            raise ConfigError("ChannelSpace ranks channels once on the weights; use l1, l2, fpgm or an activation "
                              "criterion with data=...")
        self.session = PruningSession(model, example_inputs, ignore=ignore, data=data)
        self.ignore = self.session.ignore
        prune_once(self.session, self.config, 0.5)  # a checked prune at half width teaches which ops must keep their width
        self.graph = self.session.graph
        self.groups: list[ChannelGroup] = [g for g in self.session.groups() if len(g) > 1]
        if not self.groups:
            raise ConfigError(f"{type(model).__name__} has no prunable channel group to search over")
        self.tensors = self.session.tensors
        scores = self.session.score(self.groups, criterion)
        self.order = {g.index: torch.argsort(scores[g.index], stable=True).tolist() for g in self.groups}
        self.base_macs = count_macs(model, example_inputs)
        self.base_params = count_params(model)
        self.macs = self._fit(lambda m: count_macs(m, example_inputs))
        self.params = self._fit(count_params)

    def __len__(self) -> int:
        return len(self.groups)

    @property
    def names(self) -> list[str]:
        return [g.name for g in self.groups]

    @property
    def sizes(self) -> list[int]:
        return [len(g) for g in self.groups]

    def kept_units(self, keep: Sequence[float]) -> list[int]:
        """Units kept per group for the fractions `keep` (rounded, at least one, `round_to`)."""
        if len(keep) != len(self):
            raise ConfigError(f"need {len(self)} keep fractions (one per group), got {len(keep)}")
        out = []
        for g, k in zip(self.groups, keep):
            n = len(g)
            units = int(round(float(np.clip(k, 0.0, 1.0)) * n))
            if self.round_to > 1 and g.channels_per_unit == 1:
                units = int(round(units / self.round_to)) * self.round_to
            out.append(int(min(n, max(1, units))))
        return out

    def fractions(self, keep: Sequence[float]) -> list[float]:
        """The kept fractions really achieved after rounding."""
        return [u / len(g) for u, g in zip(self.kept_units(keep), self.groups)]

    def fill(self, units: Sequence[int], key: str, target: float, priority: Sequence[float] | None = None) -> list[int]:
        """Give units back, one at a time (groups by `priority`, highest first, default the
        largest), while the cost stays within `target` (kept fraction of `key`)."""
        cost, units = self.cost(key), list(units)
        sizes = self.sizes
        order = sorted(range(len(self)), key=lambda i: -(priority[i] if priority is not None else sizes[i]))
        grew = True
        while grew:
            grew = False
            for i in order:
                if units[i] < sizes[i]:
                    units[i] += 1
                    if cost([u / s for u, s in zip(units, sizes)]) <= target * cost.c0 + 1e-9:
                        grew = True
                    else:
                        units[i] -= 1
        return units

    def plan(self, keep: Sequence[float] | None = None, removed: dict[int, list[int]] | None = None) -> PrunePlan:
        """The plan for `keep` (lowest-ranked units go), or for explicit `removed` units by group index."""
        if removed is None:
            removed = {g.index: self.order[g.index][: len(g) - u] for g, u in zip(self.groups, self.kept_units(keep))}
        return self.session.plan(self.groups, removed)

    def prune(self, keep: Sequence[float] | None = None, removed: dict[int, list[int]] | None = None) -> nn.Module:
        """An unverified pruned copy (candidate evaluation); see `finalize` for the checked one."""
        return apply_plan(copy.deepcopy(self.model), self.plan(keep, removed)).eval()

    def exact(self, keep: Sequence[float], key: str = "macs") -> float:
        """Kept fraction of `key` ("macs" or "params"), counted on the pruned model."""
        m = self.prune(keep)
        return count_macs(m, self.example_inputs) / self.base_macs if key == "macs" else \
            count_params(m) / self.base_params

    def cost(self, key: str) -> BilinearCost:
        if key not in ("macs", "params"):
            raise ConfigError(f"cost key must be 'macs' or 'params', got {key!r}")
        return self.macs if key == "macs" else self.params

    def finalize(self, keep: Sequence[float] | None = None, removed: dict[int, list[int]] | None = None,
                 model: nn.Module | None = None, check: bool = True) -> PruneResult:
        """Prune `model` (default: the space's model; same architecture, e.g. trained further)
        and verify the result against it masked."""
        base = (model or self.model).eval()
        tensors = dict(base.named_parameters()) | dict(base.named_buffers())
        plan = self.plan(keep, removed)
        plan = PrunePlan(plan.removed, {k: list(tensors[k].shape) for k in plan.shapes}, plan.groups, plan.meta)
        pruned = apply_plan(copy.deepcopy(base), plan).eval()
        report = verify(base, pruned, plan, self.example_inputs, ignore=self.ignore) if check else None
        plan.meta["keep"] = dict(zip(self.names, self.fractions(keep))) if keep is not None else {}
        return PruneResult(pruned, plan, measure(base, self.example_inputs), measure(pruned, self.example_inputs),
                           report, self.graph.tracer)

    # -- cost model fit ---------------------------------------------------------------
    def _adjacent_pairs(self) -> list[tuple[int, int]]:
        where: dict[tuple, int] = {}
        for i, g in enumerate(self.groups):
            for slot in g.slots:
                where[slot] = i
        pairs = set()
        for node in self.graph.nodes:
            touched = set()
            for v in list(node.inputs) + list(node.outputs):
                for d in range(v.ndim):
                    key = Slot.of(v, d)
                    if key in where:
                        touched.add(where[key])
            pairs |= set(itertools.combinations(sorted(touched), 2))
        return sorted(pairs)

    def _fit(self, count) -> BilinearCost:
        n = len(self)
        half = [0.5] * n
        frac = self.fractions(half)
        d = np.asarray(frac) - 1.0

        def at(idx: Iterable[int]) -> float:
            keep = [1.0] * n
            for i in idx:
                keep[i] = half[i]
            return float(count(self.prune(keep)))

        c0 = float(count(self.model))
        single = np.array([at([i]) for i in range(n)])
        a = (single - c0) / d
        pairs = []
        for i, j in self._adjacent_pairs():
            b = (at([i, j]) - single[i] - single[j] + c0) / (d[i] * d[j])
            if abs(b) > 1e-9 * max(c0, 1.0):
                pairs.append((i, j, float(b)))
        return BilinearCost(c0, a, pairs)


def min_keep_vector(space: ChannelSpace, lower: float) -> list[float]:
    return [max(lower, 1.0 / s) for s in space.sizes]


def scale_to_budget(space: ChannelSpace, keep: Sequence[float], key: str, target: float,
                    lower: float = 0.05) -> list[float]:
    """Shrink `keep` towards `lower` by one common factor until the cost of the channel counts
    it rounds to is within `target` (a kept fraction of the base cost). Unchanged if it fits."""
    cost = space.cost(key)
    budget = target * cost.c0
    keep = np.asarray(keep, dtype=float)
    if cost(space.fractions(keep)) <= budget:
        return keep.tolist()
    floor = np.asarray(min_keep_vector(space, lower))  # t: keep = floor + t (keep - floor)
    t = meet_budget(lambda t: cost(space.fractions(floor + t * (keep - floor))) <= budget, 0.0, 1.0, steps=40)
    return (floor + t * (keep - floor)).tolist()


def check_reachable(space: ChannelSpace, key: str, target: float, lower: float) -> None:
    floor = min_keep_vector(space, lower)
    least = space.cost(key)(floor) / space.cost(key).c0
    if least > target + 1e-9:
        raise ConfigError(f"keep_{key}={target} is out of reach: with every group at its minimum ({lower:.0%}) "
                          f"the model keeps {least:.3f} of its {key}; lower the bound or raise the target")


