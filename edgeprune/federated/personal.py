"""Personalised pruning ratios per device from its resources (after Xu et al. 2024; their text
was not available, so this follows the idea as the issue states it, with HeteroFL-style
aggregation of nested sub-models).

Every device carries a device profile (edgeprune.devices). Each round the server ranks the
global model's channels by L1 norm and gives each device the widest sub-model whose int8 cost
fits its profile (flash, RAM and, if given, a latency budget): the same ranking for everyone,
so smaller sub-models are nested in larger ones. A device trains its sub-model; the server
averages every global entry over the devices whose sub-model holds it (weighted by samples)
and keeps the old value where none does."""
from __future__ import annotations

import copy
import json

import numpy as np
import torch

from edgeprune.criteria import get_criterion
from edgeprune.criteria.base import ScoringContext
from edgeprune.devices import Budget, check_budget, load_profile, model_cost
from edgeprune.federated.model import counter_slots, get_weights
from edgeprune.search.space import ChannelSpace
from edgeprune.surgery.apply import apply_plan
from edgeprune.surgery.plan import PrunePlan


class Personaliser:
    def __init__(self, model: torch.nn.Module, example: torch.Tensor, profiles: dict[str, str],
                 default_profile: str = "nrf52840", latency_ms: float | None = None):
        self.model, self.example = model, example
        self.space = ChannelSpace(model, example, "l1")
        self.profiles, self.default = profiles, default_profile
        self.latency_ms = latency_ms
        self._keep: dict[str, float] = {}

    def keep_for(self, cid: str) -> float:
        """The widest uniform keep fraction whose sub-model fits the device's profile."""
        name = self.profiles.get(cid, self.default)
        if name not in self._keep:
            profile = load_profile(name)
            budget = Budget.of(profile, latency_ms=self.latency_ms)
            fits = lambda t: all(c.ok for c in check_budget(  # noqa: E731
                model_cost(self.space.prune([t] * len(self.space)), self.example, profile), budget))
            lo, hi = 0.0, 1.0
            if fits(1.0):
                lo = 1.0
            else:
                for _ in range(10):
                    mid = (lo + hi) / 2
                    lo, hi = (mid, hi) if fits(mid) else (lo, mid)
            if lo == 0.0:
                raise ValueError(f"no sub-model fits device profile {name!r}")
            self._keep[name] = lo
        return self._keep[name]

    def rerank(self) -> None:
        ctx = ScoringContext(self.space.tensors)
        crit = get_criterion("l1")
        self.space.order = {g.index: torch.argsort(crit(g, ctx), stable=True).tolist() for g in self.space.groups}

    def submodel(self, cid: str) -> tuple[list[np.ndarray], PrunePlan, str]:
        keep = self.keep_for(cid)
        plan = self.space.plan([keep] * len(self.space))
        sub = apply_plan(copy.deepcopy(self.model), plan)
        return get_weights(sub), plan, json.dumps(plan.to_dict()) if not plan.is_empty else ""

    def aggregate(self, updates: list[tuple[list[np.ndarray], PrunePlan, int]], robust=None) -> list[np.ndarray]:
        """Average each global entry over the sub-models that hold it. With a robust rule
        (edgeprune.federated.robust) other than the mean, every sub-model is first embedded in
        the global shape, entries it does not hold left at the global value (a vote for no
        change there), and the rule combines those: a simplification of ours."""
        keys = list(self.model.state_dict())
        current = get_weights(self.model)
        if robust is not None and robust.rule != "mean":
            from edgeprune.federated.robust import aggregate as combine
            full = []
            for arrays, plan, _ in updates:
                embedded = [c.copy() for c in current]
                for i, (k, a) in enumerate(zip(keys, arrays)):
                    embedded[i][_kept_index(plan, k, current[i].shape)] = a
                full.append(embedded)
            return combine(current, full, [n for _, _, n in updates], robust, counter_slots(self.model))
        sums = [np.zeros_like(c, dtype=np.float64) for c in current]
        counts = [np.zeros_like(c, dtype=np.float64) for c in current]
        for arrays, plan, n in updates:
            for i, (k, a) in enumerate(zip(keys, arrays)):
                idx = _kept_index(plan, k, current[i].shape)
                sums[i][idx] += n * a
                counts[i][idx] += n
        return [np.where(c > 0, s / np.maximum(c, 1e-12), cur).astype(np.float32)
                for s, c, cur in zip(sums, counts, current)]

    def expected_shapes(self, plan: PrunePlan) -> list[tuple[int, ...]]:
        shapes = []
        for k, v in self.model.state_dict().items():
            removed = plan.removed.get(k, {})
            shapes.append(tuple(s - len(removed.get(d, [])) for d, s in enumerate(v.shape)))
        return shapes


def _kept_index(plan: PrunePlan, name: str, shape: tuple[int, ...]):
    removed = plan.removed.get(name, {})
    if not removed or not shape:
        return tuple(slice(None) for _ in shape) if shape else ()
    kept = [np.array([j for j in range(s) if j not in set(removed.get(d, []))]) for d, s in enumerate(shape)]
    return np.ix_(*kept)
