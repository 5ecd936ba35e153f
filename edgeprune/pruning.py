"""The pruning loop behind `edgeprune.prune`: score, select, apply, check op by op, repair.

Every candidate plan is replayed against the masked original. An op whose pruned result is
wrong (code that hard-codes a width, say) gets its channels kept: first that op and every op
from the same code site, then the tensors whose shapes the code read before it, then
everything upstream (`engine.Blocks`). What was kept, and why, is recorded in the plan."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import torch
from torch import nn

from edgeprune.budget import meet_budget
from edgeprune.engine import Blocks, PruningSession
from edgeprune.errors import ConfigError, VerificationError
from edgeprune.opgraph import OpGraph
from edgeprune.selection import select
from edgeprune.surgery.plan import PrunePlan
from edgeprune.verify import CheckResult


@dataclass
class Step:
    model: nn.Module
    plan: PrunePlan
    graph: OpGraph
    check: CheckResult | None


def prune_once(session: PruningSession, config, ratio: float, original: dict | None = None,
               step_ratio: float | None = None, check: bool = True) -> Step:
    """One pruning step on a copy of the session's model, checked (unless `check=False`) and
    repaired; what the repairs keep accumulates in `session.blocks`."""
    for _ in range(12):
        groups = session.groups()
        scores = session.score(groups, config.criterion)
        if config.scope == "global" and not config.layer_ratios and step_ratio is not None:
            chosen = select(groups, scores, step_ratio, config)  # global: a fraction of what is left
        else:
            chosen = select(groups, scores, ratio, config, original)
        plan = session.plan(groups, chosen)
        candidate = session.apply(plan)
        if plan.is_empty or not check:
            return Step(candidate, plan, session.graph, None)
        result = session.check(candidate, groups, plan, dtype=getattr(torch, config.check_dtype))
        if result.failure is None:
            return Step(candidate, plan, session.graph, result)
        session.blocks.escalate(session.graph, result.failure.node, result.failure.reason)
    raise VerificationError("could not find a plan that verifies; repairs tried:\n" + "\n".join(session.blocks.reasons))


def prune_steps(session: PruningSession, config, ratio: float, check: bool = True) -> Step:
    """`config.steps` pruning steps to remove `ratio` of the channels; one merged plan. Steps
    after the first trace the model pruned so far in a session of their own (no gradients)."""
    plan, step, current = PrunePlan(), None, session
    for k in range(1, config.steps + 1):
        prev, now = 1 - ratio * (k - 1) / config.steps, 1 - ratio * k / config.steps
        original = {(n, d): shape[d] for n, shape in plan.shapes.items() for d in range(len(shape))}
        if k > 1:
            current = PruningSession(step.model, session.example_inputs, ignore=session.ignore,
                                     strict=session.strict, prune_outputs=session.prune_outputs,
                                     data=session.data, seed=session.seed)
        step = prune_once(current, config, ratio * k / config.steps, original, 1 - now / prev, check)
        plan = plan.merge(step.plan) if k > 1 else step.plan
        if current is not session:
            session.blocks.reasons += [f"step {k}: {r}" for r in current.blocks.reasons]
    step.plan = plan
    return step


def _kept(session: PruningSession, config, ratio: float, key: str, base_value: int,
          check: bool) -> tuple[float, Step]:
    from edgeprune.metrics import count_macs, count_params
    step = prune_steps(session, config, ratio, check)
    v = count_macs(step.model, session.example_inputs) if key == "macs" else count_params(step.model)
    return v / base_value, step


def search_ratio(session: PruningSession, config, key: str, target: float, base_value: int) -> Step:
    """Bisect a uniform ratio until the kept fraction of `key` ("macs" or "params") is just
    under `target`. Checks run once to learn what must stay, then only on the final plan."""
    _kept(session, config, 0.5, key, base_value, config.verify)  # learns the blocks
    frac, _ = _kept(session.fork(), config, 0.99, key, base_value, False)
    if frac > target:
        raise ConfigError(f"cannot reach keep_{key}={target}: even pruning 99% of every group keeps "
                          f"{frac:.3f} of the {key} (ignored and unprunable layers remain)")
    best = meet_budget(lambda r: _kept(session.fork(), config, r, key, base_value, False)[0] <= target,
                       0.0, 0.99, steps=14, feasible="high", tol=2e-3)
    if config.scope == "local" and config.round_to == 1 and config.steps == 1 and not config.layer_ratios:
        config = _fill(session, config, key, target, base_value, best)
    frac, step = _kept(session, config, best, key, base_value, config.verify)
    while frac > target and best < 0.99:  # checks kept more channels than the search assumed
        best = min(0.99, best + 0.01)
        frac, step = _kept(session, config, best, key, base_value, config.verify)
    return step


def _fill(session: PruningSession, config, key: str, target: float, base_value: int, ratio: float,
          max_trials: int = 60):
    """One uniform ratio moves every group's width at once, so it can land well under the
    target (small layers prune in big steps). Give units back, one at a time, largest groups
    first, while the model stays within the target; returns the config with those per-layer
    ratios. Bounded by `max_trials` unchecked trial prunes."""
    import re

    def frac_of(cfg) -> tuple[float, PrunePlan]:
        frac, step = _kept(session.fork(), cfg, ratio, key, base_value, False)
        return frac, step.plan

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
            if frac_of(trial)[0] <= target:
                ratios[pat] = (gone - 1) / units
                removed[layer] = (gone - 1, units)
                grew = True
        if not grew:
            break
    return replace(config, layer_ratios=ratios) if ratios else config


def warn_repairs(model: nn.Module, blocks: Blocks) -> None:
    """One warning naming what checks kept at its width."""
    if blocks.reasons:
        warnings.warn(f"{len(blocks.reasons)} op(s) of {type(model).__name__} could not change width and kept "
                      f"their channels: {'; '.join(blocks.reasons[:3])}{' ...' if len(blocks.reasons) > 3 else ''}",
                      stacklevel=3)
