"""The rule API: the only place that knows layer types.

A rule says, for one op in the traced graph, which channel axes of its inputs, outputs and
parameters are tied index-to-index. Everything a rule does not mention is *blocked*: it can
not change size through this op. So an op the engine does not understand can only make the
model prune less, never break it (and an error says so when it costs prunable channels).

Module rules (``LayerRule`` subclasses, registered per module type) also fix the module's
attributes after its tensors were sliced, and may give a masked forward for verification.
Op rules (plain functions, registered per canonical op name) only couple.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from edgeprune.opgraph import OpNode, Slot, Value


class CouplingContext:
    """What rules call. Implemented by edgeprune.graph.coupling.Coupler.

    `role` tags an axis of a layer's weight as it is tied: "out" (the axis that indexes the
    channels the layer produces: a filter, a row of a linear layer), "in" (the axis that reads
    input channels); per-channel terms: "bias", and for normalisations "scale" (gamma),
    "shift" (beta) and "stat" (running statistics), "act" for a per-channel activation
    parameter (PReLU). Criteria rank a group by its "out" axes; code outside rules/ never
    guesses them from shapes."""

    def value(self, v: Value, dim: int, role: str | None = None) -> Slot: ...
    def param(self, name: str, dim: int, role: str | None = None) -> Slot: ...
    def same(self, a: Slot, b: Slot, a_start: int = 0, b_start: int = 0, length: int | None = None) -> None: ...
    def link(self, a: Slot, a_idx: np.ndarray, b: Slot, b_idx: np.ndarray) -> None: ...
    def reshape(self, src: Value, dst: Value) -> None: ...
    def size(self, slot: Slot) -> int: ...


class LayerRule:
    """Knowledge about one module type. Subclass, then ``@register_rule(ModuleType)``.

    `kind` names what the layer is for code outside rules/ ("conv", "linear", "batch_norm",
    ...: see `layer_kind`), which asks instead of testing types."""

    kind: str = ""

    def kind_of(self, module: nn.Module) -> str:
        """The layer's kind (a rule for several types may tell them apart)."""
        return self.kind

    def weight_axes(self, module: nn.Module) -> tuple[int, int | None] | None:
        """(output-channel axis, input-channel axis) of `module.weight` for layers whose weight
        maps input channels to output channels; None for others."""
        return None

    def couple(self, ctx: CouplingContext, node: OpNode, prefix: str) -> None:
        """Tie axes: `node.inputs`/`node.outputs` are Values, params are `prefix + name`."""
        raise NotImplementedError

    def update(self, module: nn.Module) -> None:
        """Fix attributes (in_channels, num_heads...) after its tensors were sliced."""

    def masked_call(self, module: nn.Module, args: tuple, kwargs: dict, removed: dict,
                    removed_params: dict) -> Any:
        """Output of the original module as if the removed channels were absent:
        `removed[input_position][dim]` and `removed_params[tensor_name][dim]` = indices.
        None when zeroing the removed input channels is enough, which is the case for all but
        normalisations over the channel axis and layers with internal units (heads, RNNs)."""
        return None

    def macs(self, module: nn.Module, node: OpNode) -> int:
        return 0


_MODULE_RULES: dict[type, LayerRule] = {}
OpRule = Callable[[CouplingContext, OpNode], None]
_OP_RULES: dict[str, OpRule] = {}


def register_rule(*module_types: type) -> Callable:
    """Class decorator: ``@register_rule(MyLayer) class MyRule(LayerRule): ...``."""
    def wrap(rule_cls: type[LayerRule]) -> type[LayerRule]:
        for t in module_types:
            _MODULE_RULES[t] = rule_cls()
        return rule_cls
    return wrap


def register_op(*names: str) -> Callable[[OpRule], OpRule]:
    """Function decorator for op rules, keyed by canonical op name ('add', 'cat', ...)."""
    def wrap(fn: OpRule) -> OpRule:
        for n in names:
            _OP_RULES[n] = fn
        return fn
    return wrap


def rule_for(module: nn.Module) -> LayerRule | None:
    for t in type(module).__mro__:
        if t in _MODULE_RULES:
            # subclasses inherit a rule only when they keep the parent's forward
            if t is type(module) or type(module).forward is t.forward:
                return _MODULE_RULES[t]
            return None
    return None


def attribute_rule(module: nn.Module) -> LayerRule | None:
    """The rule that fixes `module`'s attributes after its tensors were sliced: its type's, or
    an ancestor type's (a subclass that overrides forward still keeps the parent's attributes)."""
    for t in type(module).__mro__:
        if t in _MODULE_RULES:
            return _MODULE_RULES[t]
    return None


def layer_kind(module: nn.Module) -> str | None:
    """What `module` is, as its rule says ("conv", "conv_transpose", "linear", "batch_norm",
    "instance_norm", "group_norm", "layer_norm", "rms_norm", "embedding", "attention",
    "recurrent", "prelu"), or None for a module no rule knows."""
    rule = attribute_rule(module)
    return rule.kind_of(module) if rule is not None else None


def weight_axes(module: nn.Module) -> tuple[int, int | None] | None:
    """(output-channel axis, input-channel axis) of `module.weight`, or None (see LayerRule)."""
    rule = attribute_rule(module)
    return rule.weight_axes(module) if rule is not None else None


def layers_of_kind(model: nn.Module, kinds: Iterable[str], skip: Iterable[str] = ()) -> dict[str, nn.Module]:
    """Qualified name -> module for every submodule whose kind is in `kinds` (names in `skip` left out)."""
    kinds, skip = set(kinds), set(skip)
    return {n: m for n, m in model.named_modules() if n not in skip and layer_kind(m) in kinds}


def has_rule(module: nn.Module) -> bool:
    return rule_for(module) is not None


def op_rule(name: str) -> OpRule | None:
    return _OP_RULES.get(name)


def known_ops() -> Iterable[str]:
    return _OP_RULES.keys()


MaskedOp = Callable[[tuple, dict, dict], Any]
_MASKED_OPS: dict[str, MaskedOp] = {}


def register_masked_op(name: str) -> Callable[[MaskedOp], MaskedOp]:
    """For verification: how op `name` computes when removed input channels are absent
    (not just zero). Only needed for ops that normalise over a channel axis."""
    def wrap(fn: MaskedOp) -> MaskedOp:
        _MASKED_OPS[name] = fn
        return fn
    return wrap


def masked_op(name: str) -> MaskedOp | None:
    return _MASKED_OPS.get(name)


def silenced_copy(module: nn.Module, removed_params: dict, dims: tuple[int, ...] = (0,)) -> nn.Module:
    """A copy of `module` whose removed rows (along `dims`) are zero: internal units go quiet."""
    import copy

    # hooks hold the recorder (and through it the whole model): never copy them
    hook_attrs = ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs",
                  "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called")
    saved = [(m, a, getattr(m, a)) for m in module.modules() for a in hook_attrs if hasattr(m, a)]
    try:
        for m, a, v in saved:
            setattr(m, a, type(v)())
        quiet = copy.deepcopy(module)
    finally:
        for m, a, v in saved:
            setattr(m, a, v)
    with torch.no_grad():
        for name, per_dim in removed_params.items():
            t = quiet.get_parameter(name) if name in dict(quiet.named_parameters()) else None
            if t is None:
                continue
            for d, idx in per_dim.items():
                if d in dims and len(idx):
                    t.index_fill_(d, torch.as_tensor(idx, dtype=torch.long, device=t.device), 0)
    return quiet
