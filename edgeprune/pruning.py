"""The pruning loop behind `edgeprune.prune`: score, select, apply, check op by op, repair.

Every candidate plan is replayed against the masked original. An op whose pruned result is
wrong (code that hard-codes a width, say) gets its channels kept: first that op and every op
from the same code site, then the tensors whose shapes the code read before it, then
everything upstream of it. What was kept, and why, is recorded in the plan."""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from edgeprune.criteria import get_criterion
from edgeprune.criteria.base import ScoringContext
from edgeprune.errors import VerificationError
from edgeprune.graph.coupling import build_groups, model_tensors
from edgeprune.graph.graph import OpGraph
from edgeprune.graph.trace import trace
from edgeprune.selection import select
from edgeprune.surgery.apply import apply_plan
from edgeprune.surgery.plan import PrunePlan
from edgeprune.verify import CheckResult, locate_failure


@dataclass
class Blocks:
    """Ops and values whose channels must stay, found by checks (by op index of one graph)."""

    nodes: set[int] = field(default_factory=set)
    values: set[int] = field(default_factory=set)
    level: dict[int, int] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def escalate(self, graph: OpGraph, k: int, reason: str) -> None:
        self.level[k] = self.level.get(k, 0) + 1
        same_site = [n.index for n in graph.nodes if n.site == graph.nodes[k].site] or [k]
        if self.level[k] == 1:  # this op and every op from the same code in other blocks
            self.nodes |= set(same_site) | {k}
        elif self.level[k] == 2:  # shapes the code read before it (or before the same code elsewhere)
            self.values |= {vid for vid, at in graph.size_reads if at <= max(same_site + [k])}
        else:  # everything upstream
            self.values |= {v.id for n in graph.nodes[: k + 1] for v in n.inputs + n.outputs}
        self.reasons.append(f"op #{k} ({graph.nodes[k].target} in {graph.nodes[k].site[0]}): "
                            f"{reason.splitlines()[0][:160]}")


def _owner_types(model: nn.Module) -> dict[str, type]:
    out = {}
    for mname, m in model.named_modules():
        for t, _ in list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False)):
            out[f"{mname}.{t}" if mname else t] = type(m)
    return out


@dataclass
class Step:
    model: nn.Module
    plan: PrunePlan
    graph: OpGraph
    check: CheckResult | None


def prune_once(model: nn.Module, example_inputs: Any, config, ratio: float, grads: dict[str, torch.Tensor],
               ignore: list[str], original: dict | None = None, step_ratio: float | None = None,
               blocks: Blocks | None = None, check: bool = True, data: list | None = None) -> tuple[Step, Blocks]:
    """One pruning step on a copy of `model`, checked (unless `check=False`) and repaired."""
    graph = trace(model, example_inputs)
    tensors = dict(model.named_parameters())
    tensors.update(dict(model.named_buffers()))
    owners = _owner_types(model)
    crit = get_criterion(config.criterion)
    blocks = blocks or Blocks()
    stats_cache: dict = {}  # activation statistics survive repair attempts
    for _ in range(12):
        groups = build_groups(model, graph, ignore=ignore, strict=config.strict,
                              blocked_nodes=blocks.nodes, blocked_values=blocks.values,
                              prune_outputs=config.prune_outputs)
        ctx = ScoringContext(tensors, grads, owners, torch.Generator().manual_seed(config.seed),
                             model, graph, data, stats_cache)
        scores = {g.index: crit(g, ctx) for g in groups}
        if config.scope == "global" and not config.layer_ratios and step_ratio is not None:
            chosen = select(groups, scores, step_ratio, config)  # global: a fraction of what is left
        else:
            chosen = select(groups, scores, ratio, config, original)
        plan = PrunePlan.from_groups(groups, chosen, model_tensors(model))
        candidate = apply_plan(copy.deepcopy(model), plan)
        if plan.is_empty or not check:
            return Step(candidate, plan, graph, None), blocks
        result = locate_failure(model, candidate, graph, groups, plan, example_inputs,
                                dtype=getattr(torch, config.check_dtype))
        if result.failure is None:
            return Step(candidate, plan, graph, result), blocks
        blocks.escalate(graph, result.failure.node, result.failure.reason)
    raise VerificationError("could not find a plan that verifies; repairs tried:\n" + "\n".join(blocks.reasons))


def prune_steps(model, example_inputs, config, ratio, grads, ignore, blocks: Blocks | None = None,
                check: bool = True, data: list | None = None) -> tuple[Step, Blocks]:
    """`config.steps` pruning steps to remove `ratio` of the channels; one merged plan."""
    plan, step = PrunePlan(), None
    current, first = model, None
    for k in range(1, config.steps + 1):
        prev, now = 1 - ratio * (k - 1) / config.steps, 1 - ratio * k / config.steps
        original = {(n, d): shape[d] for n, shape in plan.shapes.items() for d in range(len(shape))}
        step, blocks = prune_once(current, example_inputs, config, ratio * k / config.steps,
                                  grads if k == 1 else {}, ignore, original, 1 - now / prev,
                                  blocks if k == 1 else None, check, data)
        current = step.model
        plan = plan.merge(step.plan) if k > 1 else step.plan
        if first is None:
            first = blocks
        elif blocks is not first:
            first.reasons += [f"step {k}: {r}" for r in blocks.reasons]
    step.plan = plan
    return step, first


def search_ratio(model, example_inputs, config, grads, ignore, key: str, target: float,
                 base_value: int, data: list | None = None) -> tuple[Step, Blocks]:
    """Bisect a uniform ratio until the kept fraction of `key` ("macs" or "params") is just
    under `target`. Checks run once to learn what must stay, then only on the final plan."""
    from edgeprune.errors import ConfigError
    from edgeprune.metrics import count_macs, count_params

    def kept(ratio: float, blocks: Blocks, check: bool):
        step, blocks = prune_steps(model, example_inputs, config, ratio, grads, ignore, blocks, check, data)
        v = count_macs(step.model, example_inputs) if key == "macs" else count_params(step.model)
        return v / base_value, step, blocks

    _, _, blocks = kept(0.5, Blocks(), config.verify)
    frac, step, _ = kept(0.99, copy.deepcopy(blocks), False)
    if frac > target:
        raise ConfigError(f"cannot reach keep_{key}={target}: even pruning 99% of every group keeps "
                          f"{frac:.3f} of the {key} (ignored and unprunable layers remain)")
    lo, hi, best = 0.0, 0.99, 0.99
    for _ in range(14):
        mid = (lo + hi) / 2
        frac, _, _ = kept(mid, copy.deepcopy(blocks), False)
        if frac <= target:
            hi, best = mid, mid
        else:
            lo = mid
        if hi - lo < 2e-3:
            break
    if config.scope == "local" and config.round_to == 1 and config.steps == 1 and not config.layer_ratios:
        config = _fill(model, example_inputs, config, grads, ignore, key, target, base_value, data, best, blocks)
    frac, step, blocks = kept(best, blocks, config.verify)
    while frac > target and best < 0.99:  # checks kept more channels than the search assumed
        best = min(0.99, best + 0.01)
        frac, step, blocks = kept(best, blocks, config.verify)
    return step, blocks


def _fill(model, example_inputs, config, grads, ignore, key: str, target: float, base_value: int, data,
          ratio: float, blocks: Blocks, max_trials: int = 60):
    """One uniform ratio moves every group's width at once, so it can land well under the
    target (small layers prune in big steps). Give units back, one at a time, largest groups
    first, while the model stays within the target; returns the config with those per-layer
    ratios. Bounded by `max_trials` unchecked trial prunes."""
    import re
    from dataclasses import replace

    from edgeprune.metrics import count_macs, count_params

    def frac_of(cfg) -> tuple[float, PrunePlan]:
        step, _ = prune_steps(model, example_inputs, cfg, ratio, grads, ignore, copy.deepcopy(blocks), False, data)
        v = count_macs(step.model, example_inputs) if key == "macs" else count_params(step.model)
        return v / base_value, step.plan

    _, plan = frac_of(config)
    removed = {g["layer"]: (g["removed"], g["units"]) for g in plan.groups if g.get("layer")}
    ratios: dict[str, float] = {}
    trials = 0
    for _ in range(3):
        grew = False
        for layer, (gone, units) in sorted(removed.items(), key=lambda kv: -kv[1][1]):
            if gone == 0 or trials >= max_trials:
                continue
            pat = "re:" + re.escape(layer)
            trial = replace(config, layer_ratios={**ratios, pat: (gone - 1) / units})
            trials += 1
            frac, _ = frac_of(trial)
            if frac <= target:
                ratios[pat] = (gone - 1) / units
                removed[layer] = (gone - 1, units)
                grew = True
        if not grew:
            break
    return replace(config, layer_ratios=ratios) if ratios else config


def warn_repairs(model: nn.Module, blocks: Blocks) -> None:
    if blocks.reasons:
        warnings.warn(f"{len(blocks.reasons)} op(s) of {type(model).__name__} could not change width and kept "
                      f"their channels: {'; '.join(blocks.reasons[:3])}{' ...' if len(blocks.reasons) > 3 else ''}",
                      stacklevel=3)
