"""Entry points: `prune` (an nn.Module in, a pruned copy out) and its config/result types."""
from __future__ import annotations

import copy
import math
import re
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from edgeprune.criteria import get_criterion
from edgeprune.criteria.base import ScoringContext
from edgeprune.errors import ConfigError, VerificationError
from edgeprune.graph.coupling import ChannelGroup, build_groups
from edgeprune.graph.trace import trace
from edgeprune.metrics import ModelStats, measure
from edgeprune.surgery.apply import apply_plan
from edgeprune.surgery.plan import PrunePlan
from edgeprune.verify import VerifyReport, locate_failure, verify


@dataclass(frozen=True)
class PruneConfig:
    """How to prune. `prune_ratio` is the fraction of each group's channels removed; or give a
    whole-model target as the fraction kept: `keep_macs` or `keep_params` (0-1)."""

    criterion: str = "l1"
    prune_ratio: float = 0.5
    keep_macs: float | None = None
    keep_params: float | None = None
    scope: str = "local"  # "local": same ratio in every group; "global": one ranking for all
    round_to: int = 1  # kept channels a multiple of this (SIMD width on microcontrollers)
    min_channels: int = 1  # per group
    ignore: tuple[str, ...] = ()  # module names (or "re:regex") whose output channels are kept
    layer_ratios: dict[str, float] = field(default_factory=dict)  # group name / "re:regex" -> ratio
    steps: int = 1  # iterative pruning: re-score after each step
    strict: bool = True  # an unknown op that costs prunable channels raises
    verify: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.prune_ratio < 1.0:
            raise ConfigError(f"prune_ratio must be in [0, 1), got {self.prune_ratio}")
        for name in ("keep_macs", "keep_params"):
            v = getattr(self, name)
            if v is not None and not 0.0 < v <= 1.0:
                raise ConfigError(f"{name} is the fraction kept and must be in (0, 1], got {v}")
        if self.keep_macs is not None and self.keep_params is not None:
            raise ConfigError("give keep_macs or keep_params, not both")
        if self.scope not in ("local", "global"):
            raise ConfigError(f"scope must be 'local' or 'global', got {self.scope!r}")
        if self.round_to < 1 or self.min_channels < 1 or self.steps < 1:
            raise ConfigError("round_to, min_channels and steps must be >= 1")
        for k, v in self.layer_ratios.items():
            if not 0.0 <= v < 1.0:
                raise ConfigError(f"layer_ratios[{k!r}] must be in [0, 1), got {v}")
        get_criterion(self.criterion)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PruneResult:
    model: nn.Module
    plan: PrunePlan
    before: ModelStats
    after: ModelStats
    verification: VerifyReport | None
    tracer: str

    def table(self) -> str:
        from edgeprune.report_table import before_after_table
        return before_after_table(self.before, self.after)

    def __str__(self) -> str:
        return self.table() + (f"\n{self.verification}" if self.verification else "")


def _matches(name: str, patterns: Iterable[str]) -> bool:
    for p in patterns:
        if p.startswith("re:") and re.fullmatch(p[3:], name):
            return True
        if name == p or name.startswith(p + "."):
            return True
    return False


def _expand_ignore(model: nn.Module, ignore: Iterable[str]) -> list[str]:
    ignore = list(ignore)
    names = [n for n, _ in model.named_modules() if n]
    out = [n for n in names if _matches(n, ignore)]
    missing = [p for p in ignore if not p.startswith("re:") and p not in names]
    if missing:
        raise ConfigError(f"ignore names modules the model does not have: {missing}")
    return out


def _group_ratio(g: ChannelGroup, config: PruneConfig, base: float) -> float:
    for pat, r in config.layer_ratios.items():
        if _matches(g.name, [pat]):
            return r
    return base


def _n_prune(g: ChannelGroup, ratio: float, config: PruneConfig, original_units: int | None = None) -> int:
    """Units to remove now so that `ratio` of the group's original units are gone."""
    n, cpu = len(g), g.channels_per_unit
    base = original_units or n
    keep = base - int(math.floor(base * ratio + 1e-9))
    if config.round_to > 1 and cpu == 1:
        keep = int(round(keep / config.round_to)) * config.round_to
    keep = max(keep, math.ceil(config.min_channels / cpu), 1)
    return max(0, n - min(keep, n))


def _gradients(model: nn.Module, data: Iterable, loss_fn: Callable, batches: int) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    model.train()
    for i, (x, y) in enumerate(data):
        if i >= batches:
            break
        loss_fn(model(x), y).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    model.eval()
    return grads


def _select(groups: list[ChannelGroup], scores: dict[int, torch.Tensor], ratio: float,
            config: PruneConfig, original: dict | None = None) -> dict[int, list[int]]:
    """`ratio` is the fraction removed from the original model; `original[(tensor, dim)]` its
    sizes before earlier steps (iterative pruning)."""
    original = original or {}
    if config.scope == "local" or config.layer_ratios:
        out = {}
        for g in groups:
            _, name, dim = g.param_slots[0]
            units = original.get((name, dim), 0) // g.channels_per_unit or None
            k = _n_prune(g, _group_ratio(g, config, ratio), config, units)
            out[g.index] = torch.argsort(scores[g.index], stable=True)[:k].tolist() if k else []
        return out
    # global: one ranking of mean-normalised scores, channels weighted by their width
    caps = {g.index: _n_prune(g, 0.999, config) for g in groups}
    entries = []
    for g in groups:
        s = scores[g.index]
        s = s / s.mean().clamp_min(1e-12)
        entries += [(float(v), g.index, u) for u, v in enumerate(s)]
    entries.sort()
    total = sum(len(g) * g.channels_per_unit for g in groups)
    budget = ratio * total
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


def _prune_once(model: nn.Module, example_inputs: Any, config: PruneConfig, ratio: float,
                grads: dict[str, torch.Tensor], ignore: list[str], original: dict | None = None,
                step_ratio: float | None = None) -> tuple[nn.Module, PrunePlan, str]:
    """One pruning step on a copy of `model`. Every candidate plan is checked op by op against
    the masked original; an op whose pruned result is wrong (code that hard-codes a width, say)
    gets its channels kept, first at the op, then where shapes were read, then upstream."""
    graph = trace(model, example_inputs)
    tensors = dict(model.named_parameters())
    tensors.update(dict(model.named_buffers()))
    owner_types = {}
    for mname, m in model.named_modules():
        for t, _ in list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False)):
            owner_types[f"{mname}.{t}" if mname else t] = type(m)
    crit = get_criterion(config.criterion)
    blocked_nodes: set[int] = set()
    blocked_values: set[int] = set()
    level: dict[int, int] = {}
    repairs: list[str] = []
    for _ in range(12):
        groups = build_groups(model, graph, ignore=ignore, strict=config.strict,
                              blocked_nodes=blocked_nodes, blocked_values=blocked_values)
        ctx = ScoringContext(tensors, grads, owner_types, torch.Generator().manual_seed(config.seed))
        scores = {g.index: crit(g, ctx) for g in groups}
        if config.scope == "global" and not config.layer_ratios and step_ratio is not None:
            chosen = _select(groups, scores, step_ratio, config)  # global: fraction of what is left
        else:
            chosen = _select(groups, scores, ratio, config, original)
        plan = PrunePlan.from_groups(groups, chosen, tensors)
        candidate = apply_plan(copy.deepcopy(model), plan)
        if plan.is_empty:
            break
        failure = locate_failure(model, candidate, graph, groups, plan, example_inputs)
        if failure is None:
            break
        k = failure.node
        site = graph.nodes[k].site
        level[k] = level.get(k, 0) + 1
        if level[k] == 1:  # this op and every op from the same code in other blocks
            blocked_nodes |= {n.index for n in graph.nodes if n.site == site} | {k}
        elif level[k] == 2:
            blocked_values |= {vid for vid, at in graph.size_reads if at <= k}
        else:
            blocked_values |= {v.id for n in graph.nodes[: k + 1] for v in n.inputs + n.outputs}
        repairs.append(f"op #{k} ({graph.nodes[k].target}): {failure.reason.splitlines()[0][:160]}")
    else:
        raise VerificationError("could not find a plan that verifies; repairs tried:\n" + "\n".join(repairs))
    if repairs:
        warnings.warn(f"{len(repairs)} op(s) of {type(model).__name__} could not change width and kept their "
                      f"channels: {'; '.join(repairs[:3])}{' ...' if len(repairs) > 3 else ''}", stacklevel=3)
        plan.meta["kept_by_checks"] = repairs
    return candidate, plan, graph.tracer


def _prune_ratio_copy(model, example_inputs, config, ratio, grads, ignore):
    pruned = model
    plan = PrunePlan()
    tracer = ""
    for step in range(1, config.steps + 1):
        # after this step, ratio * step / steps of the original channels are gone
        prev, now = 1 - ratio * (step - 1) / config.steps, 1 - ratio * step / config.steps
        original = {(n, d): shape[d] for n, shape in plan.shapes.items() for d in range(len(shape))}
        pruned, p, tracer = _prune_once(pruned, example_inputs, config, ratio * step / config.steps,
                                        grads if step == 1 else {}, ignore, original, 1 - now / prev)
        plan = plan.merge(p) if step > 1 else p
    return pruned, plan, tracer


def prune(model: nn.Module, config: PruneConfig | None = None, *, example_inputs: Any,
          data: Iterable | None = None, loss_fn: Callable | None = None, grad_batches: int = 4,
          measure_latency: bool = False) -> PruneResult:
    """Return a structurally pruned copy of `model` with its plan, before/after figures and
    verification. `example_inputs` is what the model is called with (a tensor, tuple or dict),
    batch size 1 preferred. `data` (batches of (x, y)) and `loss_fn` feed gradient criteria."""
    config = config or PruneConfig()
    torch.manual_seed(config.seed)
    model.eval()
    ignore = _expand_ignore(model, config.ignore)
    grads: dict[str, torch.Tensor] = {}
    if config.criterion == "taylor":
        if data is None:
            raise ConfigError("criterion 'taylor' needs data=... (batches of (inputs, targets))")
        grads = _gradients(copy.deepcopy(model), data, loss_fn or nn.functional.cross_entropy, grad_batches)
    before = measure(model, example_inputs, latency=measure_latency)
    target = config.keep_macs if config.keep_macs is not None else config.keep_params
    if target is None:
        pruned, plan, tracer = _prune_ratio_copy(model, example_inputs, config, config.prune_ratio, grads, ignore)
    else:
        key = "macs" if config.keep_macs is not None else "params"
        pruned, plan, tracer = _search_ratio(model, example_inputs, config, grads, ignore, key, target,
                                             getattr(before, key))
    pruned.eval()
    report = None
    if config.verify:
        report = verify(model, pruned, plan, example_inputs, ignore=ignore)
    after = measure(pruned, example_inputs, latency=measure_latency)
    plan.meta.update({"config": {k: v for k, v in config.to_dict().items() if k != "layer_ratios"},
                      "tracer": tracer})
    return PruneResult(pruned, plan, before, after, report, tracer)


def _search_ratio(model, example_inputs, config, grads, ignore, key, target, base_value):
    """Bisect a uniform ratio until the kept fraction of `key` is just under `target`."""
    from edgeprune.metrics import count_macs, count_params

    def kept(ratio):
        pruned, plan, tracer = _prune_ratio_copy(model, example_inputs, config, ratio, grads, ignore)
        v = count_macs(pruned, example_inputs) if key == "macs" else count_params(pruned)
        return v / base_value, (pruned, plan, tracer)

    lo, hi = 0.0, 0.99
    best = None
    frac_hi, res_hi = kept(hi)
    if frac_hi > target:
        raise ConfigError(f"cannot reach keep_{key}={target}: even pruning 99% of every group keeps "
                          f"{frac_hi:.3f} of the {key} (ignored layers and unprunable layers remain)")
    best = res_hi
    for _ in range(12):
        mid = (lo + hi) / 2
        frac, res = kept(mid)
        if frac <= target:
            hi, best = mid, res
        else:
            lo = mid
        if abs(frac - target) < 0.005 and frac <= target:
            break
    return best
