"""Normalisation layers. Batch/instance norm are per channel; group norm drops whole groups
(so the kept groups' statistics are unchanged); layer norm ties its normalised dims to its
affine tensors and, for verification, normalises over the kept channels only."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgeprune.rules.base import (
    LayerRule,
    register_masked_op,
    register_op,
    register_rule,
)

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
       nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


def _passthrough(ctx, x, y, skip=()):
    for d in range(x.ndim):
        if d not in skip:
            ctx.same(ctx.value(x, d), ctx.value(y, d))


@register_rule(*_BN)
class BatchNormRule(LayerRule):
    def kind_of(self, m):
        return "instance_norm" if isinstance(m, nn.modules.instancenorm._InstanceNorm) else "batch_norm"

    def couple(self, ctx, node, prefix):
        m, x, y = node.module, node.inputs[0], node.outputs[0]
        unbatched = isinstance(m, nn.modules.instancenorm._InstanceNorm) and x.ndim == m._get_no_batch_dim()
        cdim = 0 if unbatched or x.ndim == 1 else 1
        _passthrough(ctx, x, y)
        xs = ctx.value(x, cdim)
        for name, role in (("weight", "scale"), ("bias", "shift"), ("running_mean", "stat"), ("running_var", "stat")):
            if getattr(m, name, None) is not None:
                ctx.same(xs, ctx.param(prefix + name, 0, role))

    def update(self, m):
        t = m.weight if m.weight is not None else m.running_mean
        if t is not None:
            m.num_features = t.shape[0]


@register_rule(nn.GroupNorm)
class GroupNormRule(LayerRule):
    kind = "group_norm"

    def couple(self, ctx, node, prefix):
        m, x, y = node.module, node.inputs[0], node.outputs[0]
        if not m.affine:  # nothing records the new width: keep the channel axis as it is
            return _passthrough(ctx, x, y, skip=(1,))
        _passthrough(ctx, x, y)
        xs, per = ctx.value(x, 1), m.num_channels // m.num_groups
        c = np.arange(m.num_channels)
        ctx.link(xs, c, xs, (c // per) * per)
        ctx.same(xs, ctx.param(prefix + "weight", 0, "scale"))
        ctx.same(xs, ctx.param(prefix + "bias", 0, "shift"))

    def update(self, m):
        per = m.num_channels // m.num_groups
        m.num_channels = m.weight.shape[0]
        m.num_groups = m.num_channels // per


def _couple_layer_norm(ctx, x, y, weight, bias, ndims):
    _passthrough(ctx, x, y)
    for k in range(1, ndims + 1):
        xs = ctx.value(x, -k)
        for t, role in ((weight, "scale"), (bias, "shift")):
            if t is not None:
                ctx.same(xs, t(-k, role))


@register_rule(nn.LayerNorm, nn.RMSNorm)
class LayerNormRule(LayerRule):
    def kind_of(self, m):
        return "rms_norm" if isinstance(m, nn.RMSNorm) else "layer_norm"

    def couple(self, ctx, node, prefix):
        m, x, y = node.module, node.inputs[0], node.outputs[0]
        affine = getattr(m, "elementwise_affine", True) and m.weight is not None
        if not affine:
            return _passthrough(ctx, x, y, skip=tuple(range(x.ndim - len(m.normalized_shape), x.ndim)))
        has_bias = getattr(m, "bias", None) is not None
        _couple_layer_norm(ctx, x, y, lambda d, r: ctx.param(prefix + "weight", d, r),
                           (lambda d, r: ctx.param(prefix + "bias", d, r)) if has_bias else None,
                           len(m.normalized_shape))

    def update(self, m):
        m.normalized_shape = tuple(m.weight.shape)

    def masked_call(self, m, args, kwargs, removed, removed_params):
        bias = getattr(m, "bias", None)
        rms = isinstance(m, nn.RMSNorm)
        return masked_layer_norm(args[0], len(m.normalized_shape), m.weight, bias, m.eps, removed.get(0, {}), rms)


def masked_layer_norm(x: torch.Tensor, ndims: int, weight, bias, eps, removed: dict[int, np.ndarray],
                      rms: bool = False) -> torch.Tensor:
    """Layer norm of `x` over its last `ndims` dims, as if the `removed` indices were absent."""
    keep = torch.ones(x.shape[-ndims:], dtype=torch.bool, device=x.device)
    for d, idx in removed.items():
        d = d % x.ndim - (x.ndim - ndims)
        if d >= 0 and len(idx):
            sl = [slice(None)] * ndims
            sl[d] = torch.as_tensor(idx, dtype=torch.long, device=x.device)
            keep[tuple(sl)] = False
    dims = tuple(range(-ndims, 0))
    n = keep.sum()
    k = keep.to(x.dtype)
    xk = x * k
    if rms:
        var = (xk * xk).sum(dims, keepdim=True) / n
        out = xk * torch.rsqrt(var + (eps if eps is not None else torch.finfo(x.dtype).eps))
    else:
        mean = xk.sum(dims, keepdim=True) / n
        var = (((x - mean) * k) ** 2).sum(dims, keepdim=True) / n
        out = (x - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out * k


@register_op("layer_norm")
def _layer_norm(ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    shape = node.arg(1, "normalized_shape")
    w, b = node.arg(2, "weight"), node.arg(3, "bias")
    if w is None:
        return _passthrough(ctx, x, y, skip=tuple(range(x.ndim - len(shape), x.ndim)))
    _couple_layer_norm(ctx, x, y, lambda d, r: ctx.value(w.value, d, r),
                       (lambda d, r: ctx.value(b.value, d, r)) if b is not None else None, len(shape))


@register_masked_op("layer_norm")
def masked_layer_norm_op(args, kwargs, removed):
    x, shape = args[0], args[1] if len(args) > 1 else kwargs["normalized_shape"]
    w = args[2] if len(args) > 2 else kwargs.get("weight")
    b = args[3] if len(args) > 3 else kwargs.get("bias")
    eps = args[4] if len(args) > 4 else kwargs.get("eps", 1e-5)
    return masked_layer_norm(x, len(shape), w, b, eps, removed.get(0, {}))


@register_op("batch_norm", "instance_norm")
def _batch_norm(ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    _passthrough(ctx, x, y)
    xs = ctx.value(x, 1)
    for v in node.inputs[1:]:  # running statistics, scale, shift: per channel (their order is the op's)
        if v.ndim == 1 and v.shape[0] == x.shape[1]:
            ctx.same(xs, ctx.value(v, 0))


@register_op("group_norm")
def _group_norm(ctx, node):
    # num_groups is a constant of the calling code: the channel axis can not change here
    _passthrough(ctx, node.inputs[0], node.outputs[0], skip=(1,))
