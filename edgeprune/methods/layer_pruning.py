"""Layer pruning: remove whole blocks whose output has the shape of their input (residual
blocks, transformer layers), replacing them by identity.

A block's importance is how much the model's features change without it: the relative norm
of (block(x) - x) on calibration data, measured at the block (for a residual block, the size of
its residual branch against its input). The least important blocks go first. This is the
simple block-drop criterion used by e.g. Veit et al. ("Residual networks behave like ensembles
of relatively shallow networks", NeurIPS 2016) to show residual blocks can be removed singly;
removing several at once is followed by fine-tuning or distillation in practice."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import nn

from edgeprune.config import PruneMethodConfig, option
from edgeprune.errors import ConfigError
from edgeprune.example_inputs import call_with
from edgeprune.registry import register_method


@dataclass
class LayerPruneResult:
    model: nn.Module
    removed: list[str]
    scores: dict[str, float]


@torch.no_grad()
def block_scores(model: nn.Module, data: Iterable, candidates: list[str] | None = None) -> dict[str, float]:
    """Relative change ||block(x) - x|| / ||x|| of every shape-preserving block on `data`."""
    model.eval()
    seen: dict[str, list[float]] = {}
    hooks = []
    modules = dict(model.named_modules())
    names = candidates or [n for n, m in modules.items() if n and len(list(m.children())) > 0]
    for name in names:
        def hook(mod, args, out, key=name):
            if args and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor) \
                    and out.shape == args[0].shape and args[0].is_floating_point():
                seen.setdefault(key, []).append(float((out - args[0]).norm() / args[0].norm().clamp_min(1e-12)))
        hooks.append(modules[name].register_forward_hook(hook))
    try:
        for batch in data:
            call_with(model, batch[0] if isinstance(batch, (tuple, list)) and len(batch) == 2 else batch)
    finally:
        for h in hooks:
            h.remove()
    # only outermost shape-preserving blocks: a block inside another candidate is skipped
    keys = sorted(seen)
    outer = [k for k in keys if not any(k.startswith(o + ".") for o in keys if o != k)]
    return {k: sum(seen[k]) / len(seen[k]) for k in outer}


def prune_layers(model: nn.Module, data: Iterable, n_remove: int, example_inputs: Any,
                 candidates: list[str] | None = None) -> LayerPruneResult:
    """A copy of `model` with the `n_remove` least important blocks replaced by nn.Identity."""
    scores = block_scores(model, data, candidates)
    order = sorted(scores, key=scores.get)[:n_remove]
    pruned = copy.deepcopy(model)
    for name in order:
        parent, _, child = name.rpartition(".")
        setattr(pruned.get_submodule(parent) if parent else pruned, child, nn.Identity())
    with torch.no_grad():
        if tuple(call_with(pruned.eval(), example_inputs).shape) != tuple(call_with(model.eval(), example_inputs).shape):
            raise RuntimeError("removing blocks changed the output shape")
    return LayerPruneResult(pruned, order, scores)


@register_method("layers")
@dataclass(frozen=True)
class LayerDropConfig(PruneMethodConfig):
    """Layer pruning: the residual blocks that change the features least replaced by identity."""

    blocks: int = option(1, "blocks to remove", low=1)

    def prune(self, model: nn.Module, *, example_inputs: Any, data=None):
        from edgeprune.api import PruneResult
        from edgeprune.metrics import measure
        from edgeprune.surgery.plan import PrunePlan
        if not data:
            raise ConfigError("layer pruning scores blocks on calibration data: give data=[batches]")
        res = prune_layers(model, data, self.blocks, example_inputs)
        if not res.removed:
            raise ConfigError(f"{type(model).__name__} has no block whose output has its input's shape; layer "
                              "pruning removes residual blocks (try resnet1d, resnet8 or resnet20)")
        plan = PrunePlan(replaced={name: "identity" for name in res.removed})
        return PruneResult(res.model, plan, measure(model, example_inputs), measure(res.model, example_inputs),
                           None, "", details={"removed_blocks": res.removed})
