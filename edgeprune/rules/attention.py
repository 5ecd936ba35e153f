"""nn.MultiheadAttention: whole heads are removed.

PyTorch's module uses one `embed_dim` for its input, its q/k/v width and its output, so a
removed head h also removes the embedding channels [h*head_dim, (h+1)*head_dim) of the
residual stream it reads and writes. The softmax scale (1/sqrt(head_dim)) is unchanged, so
the pruned module computes exactly what the original computes with those heads masked.
"""
from __future__ import annotations

import numpy as np
from torch import nn

from edgeprune.rules.base import LayerRule, register_rule, silenced_copy


@register_rule(nn.MultiheadAttention)
class MultiheadAttentionRule(LayerRule):
    kind = "attention"

    def couple(self, ctx, node, prefix):
        m = node.module
        if not m._qkv_same_embed_dim:
            return  # separate k/v widths: left whole (blocked)
        E, H = m.embed_dim, m.num_heads
        hd = E // H
        c = np.arange(E)
        w = ctx.param(prefix + "in_proj_weight", 0, "out")
        ctx.link(w, c, w, (c // hd) * hd)  # a unit is a whole head
        for k in (1, 2):  # the same head in q, k and v
            ctx.same(w, w, 0, k * E, E)
        ctx.same(w, ctx.param(prefix + "in_proj_weight", 1, "in"), 0, 0, E)
        if m.in_proj_bias is not None:
            ctx.same(w, ctx.param(prefix + "in_proj_bias", 0, "bias"))
        ctx.same(w, ctx.param(prefix + "out_proj.weight", 1, "in"), 0, 0, E)
        ctx.same(w, ctx.param(prefix + "out_proj.weight", 0, "out"), 0, 0, E)
        if m.out_proj.bias is not None:
            ctx.same(w, ctx.param(prefix + "out_proj.bias", 0, "bias"), 0, 0, E)
        for v in ("bias_k", "bias_v"):
            if getattr(m, v) is not None:
                ctx.same(w, ctx.param(prefix + v, 2, "bias"), 0, 0, E)
        q, out = node.inputs[0], node.outputs[0]
        for x in node.inputs[:3]:
            if x.ndim == q.ndim and x.shape[-1] == E:
                ctx.same(ctx.value(x, -1), w, 0, 0, E)
        ctx.same(ctx.value(out, -1), w, 0, 0, E)
        for d in range(q.ndim - 1):  # tokens and batch pass through
            ctx.same(ctx.value(q, d), ctx.value(out, d))

    def update(self, m):
        hd = m.head_dim
        E = m.out_proj.weight.shape[0]
        m.embed_dim = m.kdim = m.vdim = E
        m.num_heads = E // hd
        m.out_proj.in_features = m.out_proj.out_features = E

    def masked_call(self, m, args, kwargs, removed, removed_params):
        """The original module with the removed heads silenced (their q/k/v rows zeroed)."""
        if not removed_params:
            return None
        return silenced_copy(m, {k: v for k, v in removed_params.items() if k.startswith("in_proj")})(*args, **kwargs)

    def macs(self, m, node):
        q, k = node.inputs[0], node.inputs[1]
        E = m.embed_dim
        lq = q.numel // E
        lk = k.numel // E
        return 3 * lq * E * E if lq == lk else (lq + 2 * lk) * E * E  # + attention below
