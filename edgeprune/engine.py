"""One model under structured pruning: the session every entry point uses (`prune`, the width
searches, soft filter pruning, training-time methods) instead of wiring the engine's parts
together itself.

    s = PruningSession(model, x, ignore=["classifier"])
    groups = s.groups()                              # coupled channel groups (read-only)
    scores = s.score(groups, "l1")                   # one score per unit of every group
    plan = s.plan(groups, {g.index: [...] for g in groups})
    pruned = s.apply(plan)                           # a pruned copy; the model is untouched
    report = s.verify(pruned, plan)                  # pruned(x) vs the masked original

`check` locates the first op whose pruned output differs from the masked original; `Blocks`
records what checks found must keep its width, and `groups()` leaves those channels out."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Iterable

import torch
from torch import nn

from edgeprune.criteria import get_criterion
from edgeprune.criteria.base import ScoringContext
from edgeprune.graph.coupling import ChannelGroup, build_groups, model_tensors
from edgeprune.graph.trace import trace
from edgeprune.opgraph import OpGraph
from edgeprune.selection import expand_ignore
from edgeprune.surgery.apply import apply_plan
from edgeprune.surgery.plan import PrunePlan
from edgeprune.verify import CheckResult, VerifyReport, locate_failure, verify


@dataclass
class Blocks:
    """Ops and values whose channels must stay, found by checks (by op index of one graph)."""

    nodes: set[int] = field(default_factory=set)
    values: set[int] = field(default_factory=set)
    level: dict[int, int] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def escalate(self, graph: OpGraph, k: int, reason: str) -> None:
        """Keep more around op `k`, each time it fails again: first this op and every op from
        the same code site, then the shapes the code read before it, then everything upstream."""
        self.level[k] = self.level.get(k, 0) + 1
        same_site = [n.index for n in graph.nodes if n.site == graph.nodes[k].site] or [k]
        if self.level[k] == 1:
            self.nodes |= set(same_site) | {k}
        elif self.level[k] == 2:
            self.values |= {vid for vid, at in graph.size_reads if at <= max(same_site + [k])}
        else:
            self.values |= {v.id for n in graph.nodes[: k + 1] for v in n.inputs + n.outputs}
        self.reasons.append(f"op #{k} ({graph.nodes[k].target} in {graph.nodes[k].site[0]}): "
                            f"{reason.splitlines()[0][:160]}")


def owner_types(model: nn.Module) -> dict[str, type]:
    """Qualified tensor name -> the type of the module that owns it."""
    out = {}
    for mname, m in model.named_modules():
        for t, _ in list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False)):
            out[f"{mname}.{t}" if mname else t] = type(m)
    return out


class PruningSession:
    """`model` (eval mode) traced once on `example_inputs`; see the module docstring."""

    def __init__(self, model: nn.Module, example_inputs: Any, *, ignore: Iterable[str] = (), strict: bool = True,
                 prune_outputs: bool = False, data: list | None = None,
                 grads: dict[str, torch.Tensor] | None = None, seed: int = 0, blocks: Blocks | None = None,
                 graph: OpGraph | None = None):
        self.model, self.example_inputs = model, example_inputs
        self.ignore = expand_ignore(model, ignore)
        self.strict, self.prune_outputs, self.seed = strict, prune_outputs, seed
        self.data, self.grads = data, grads or {}
        self.graph = graph or trace(model, example_inputs)
        self.tensors = dict(model.named_parameters()) | dict(model.named_buffers())
        self.owners = owner_types(model)
        self.blocks = blocks or Blocks()
        self._stats: dict = {}  # activation statistics, kept across repairs

    def fork(self) -> "PruningSession":
        """The same session with a copy of its blocks: trial prunes that must not teach it."""
        twin = copy.copy(self)
        twin.blocks = copy.deepcopy(self.blocks)
        return twin

    def groups(self) -> list[ChannelGroup]:
        """The model's channel groups, without what the checks so far found must stay."""
        return build_groups(self.model, self.graph, ignore=self.ignore, strict=self.strict,
                            blocked_nodes=self.blocks.nodes, blocked_values=self.blocks.values,
                            prune_outputs=self.prune_outputs)

    def score(self, groups: list[ChannelGroup], criterion: str) -> dict[int, torch.Tensor]:
        """One score per unit of every group (higher = more important)."""
        crit = get_criterion(criterion)
        ctx = ScoringContext(self.tensors, self.grads, self.owners, torch.Generator().manual_seed(self.seed),
                             self.model, self.graph, self.data, self._stats)
        return {g.index: crit(g, ctx) for g in groups}

    def plan(self, groups: list[ChannelGroup], removed: dict[int, list[int]]) -> PrunePlan:
        """The plan that removes units `removed[group index]`."""
        return PrunePlan.from_groups(groups, removed, model_tensors(self.model))

    def apply(self, plan: PrunePlan) -> nn.Module:
        """A pruned copy (eval mode); the session's model is left as it was."""
        return apply_plan(copy.deepcopy(self.model), plan).eval()

    def check(self, pruned: nn.Module, groups: list[ChannelGroup], plan: PrunePlan,
              dtype: torch.dtype = torch.float64) -> CheckResult:
        """Op-by-op comparison with the masked original: the first op that differs, if any."""
        return locate_failure(self.model, pruned, self.graph, groups, plan, self.example_inputs, dtype=dtype)

    def verify(self, pruned: nn.Module, plan: PrunePlan) -> VerifyReport:
        """pruned(x) against the original with the removed channels masked where they are consumed."""
        return verify(self.model, pruned, plan, self.example_inputs, ignore=self.ignore,
                      prune_outputs=self.prune_outputs)


__all__ = ["Blocks", "PruningSession", "owner_types"]
