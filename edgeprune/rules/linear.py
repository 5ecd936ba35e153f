"""Linear layers (module and functional) and PReLU."""
from __future__ import annotations

from torch import nn

from edgeprune.opgraph import OpNode, Value
from edgeprune.rules.base import CouplingContext, LayerRule, register_op, register_rule


def couple_linear(ctx: CouplingContext, x: Value, y: Value, weight, bias) -> None:
    for d in range(x.ndim - 1):
        ctx.same(ctx.value(x, d), ctx.value(y, d))
    ctx.same(ctx.value(x, -1), weight(1, "in"))
    ys = ctx.value(y, -1)
    ctx.same(ys, weight(0, "out"))
    if bias is not None:
        ctx.same(ys, bias(0, "bias"))


@register_rule(nn.Linear)
class LinearRule(LayerRule):
    kind = "linear"

    def weight_axes(self, m):
        return (0, 1)

    def couple(self, ctx, node, prefix):
        bias = (lambda d, r: ctx.param(prefix + "bias", d, r)) if node.module.bias is not None else None
        couple_linear(ctx, node.inputs[0], node.outputs[0], lambda d, r: ctx.param(prefix + "weight", d, r), bias)

    def update(self, m):
        m.out_features, m.in_features = m.weight.shape

    def macs(self, m, node):
        return node.outputs[0].numel * m.weight.shape[1]


@register_op("linear")
def _linear(ctx: CouplingContext, node: OpNode) -> None:
    w, b = node.arg(1, "weight").value, node.arg(2, "bias")
    couple_linear(ctx, node.inputs[0], node.outputs[0], lambda d, r: ctx.value(w, d, r),
                  (lambda d, r: ctx.value(b.value, d, r)) if b is not None else None)


@register_rule(nn.PReLU)
class PReLURule(LayerRule):
    kind = "prelu"

    def couple(self, ctx, node, prefix):
        x, y = node.inputs[0], node.outputs[0]
        for d in range(x.ndim):
            ctx.same(ctx.value(x, d), ctx.value(y, d))
        if node.module.num_parameters > 1:
            ctx.same(ctx.value(x, 1 if x.ndim > 1 else 0), ctx.param(prefix + "weight", 0, "act"))

    def update(self, m):
        m.num_parameters = m.weight.shape[0]
