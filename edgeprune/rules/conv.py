"""Convolutions, 1-D/2-D/3-D, plain, grouped, depthwise and transposed (modules and functional).

Grouped convolutions keep their group count and shrink every group equally (a unit is the
same offset in every group); depthwise ones (one input channel per group) drop whole groups.
"""
from __future__ import annotations

import math

import numpy as np
from torch import nn

from edgeprune.opgraph import OpNode, Value
from edgeprune.rules.base import CouplingContext, LayerRule, register_op, register_rule


def couple_conv(ctx: CouplingContext, x: Value, y: Value, weight, bias, groups: int,
                spatial: int, transposed: bool) -> None:
    """`weight`/`bias`: slot builders (callables (dim, role) -> slot) or None."""
    cdim = x.ndim - spatial - 1
    for d in range(cdim):  # batch
        ctx.same(ctx.value(x, d), ctx.value(y, d))
    xs, ys = ctx.value(x, cdim), ctx.value(y, cdim)
    cin, cout = x.shape[cdim], y.shape[cdim]
    in_dim, out_dim = (0, 1) if transposed else (1, 0)
    w_in, w_out = weight(in_dim, "in"), weight(out_dim, "out")
    if groups == 1:
        ctx.same(xs, w_in)
        ctx.same(ys, w_out)
    elif cin == groups:  # depthwise: input channel c feeds outputs c*mult .. c*mult+mult-1
        mult = cout // groups
        ctx.link(xs, np.repeat(np.arange(cin), mult), ys, np.arange(cout))
        ctx.same(ys, w_out if not transposed else ys)
        if transposed:
            ctx.same(xs, w_in)
    else:  # grouped: the same offset in every group is one unit
        ig, og = cin // groups, cout // groups
        ctx.link(xs, np.arange(cin), xs, np.arange(cin) % ig)
        ctx.link(ys, np.arange(cout), ys, np.arange(cout) % og)
        if transposed:
            ctx.same(xs, w_in)
            ctx.link(ys, np.arange(cout), w_out, np.arange(cout) % og)
        else:
            ctx.link(xs, np.arange(cin), w_in, np.arange(cin) % ig)
            ctx.same(ys, w_out)
    if bias is not None:
        ctx.same(ys, bias(0, "bias"))


@register_rule(nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
class ConvRule(LayerRule):
    def kind_of(self, m):
        return "conv_transpose" if isinstance(m, nn.modules.conv._ConvTransposeNd) else "conv"

    def weight_axes(self, m):
        return (1, 0) if isinstance(m, nn.modules.conv._ConvTransposeNd) else (0, 1)

    def couple(self, ctx, node, prefix):
        m = node.module
        transposed = isinstance(m, nn.modules.conv._ConvTransposeNd)
        bias = (lambda d, r: ctx.param(prefix + "bias", d, r)) if m.bias is not None else None
        couple_conv(ctx, node.inputs[0], node.outputs[0], lambda d, r: ctx.param(prefix + "weight", d, r),
                    bias, m.groups, len(m.kernel_size), transposed)

    def update(self, m):
        w = m.weight
        transposed = isinstance(m, nn.modules.conv._ConvTransposeNd)
        mult = m.out_channels // m.groups
        if m.in_channels == m.groups and m.groups > 1:  # depthwise: whole groups went
            m.groups = (w.shape[1] * w.shape[0] // mult) if transposed else w.shape[0] // mult
        if transposed:
            m.in_channels, m.out_channels = w.shape[0], w.shape[1] * m.groups
        else:
            m.in_channels, m.out_channels = w.shape[1] * m.groups, w.shape[0]

    def macs(self, m, node):
        k = math.prod(m.kernel_size)
        if isinstance(m, nn.modules.conv._ConvTransposeNd):
            return node.inputs[0].numel * m.weight.shape[1] * k
        return node.outputs[0].numel * m.weight.shape[1] * k


def _functional_conv(spatial: int, transposed: bool):
    def rule(ctx: CouplingContext, node: OpNode) -> None:
        x, w = node.inputs[0], node.arg(1, "weight").value
        b = node.arg(2, "bias")
        groups = node.arg(6, "groups", 1)  # 7th argument of conv and conv_transpose alike
        couple_conv(ctx, x, node.outputs[0], lambda d, r: ctx.value(w, d, r),
                    (lambda d, r: ctx.value(b.value, d, r)) if b is not None else None, groups, spatial, transposed)
    return rule


for _k in (1, 2, 3):
    register_op(f"conv{_k}d")(_functional_conv(_k, False))
    register_op(f"conv_transpose{_k}d")(_functional_conv(_k, True))
