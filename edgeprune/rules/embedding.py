"""Embedding tables: the embedding dimension is prunable, token ids are not."""
from __future__ import annotations

from torch import nn

from edgeprune.rules.base import LayerRule, register_op, register_rule


@register_rule(nn.Embedding)
class EmbeddingRule(LayerRule):
    kind = "embedding"

    def weight_axes(self, m):
        return (1, None)  # the table produces the embedding dimension; token ids are no channel

    def couple(self, ctx, node, prefix):
        ids, y = node.inputs[0], node.outputs[0]
        for d in range(ids.ndim):
            ctx.same(ctx.value(ids, d), ctx.value(y, d))
        ctx.same(ctx.value(y, -1), ctx.param(prefix + "weight", 1, "out"))

    def update(self, m):
        m.embedding_dim = m.weight.shape[1]


@register_op("embedding")
def _embedding(ctx, node):
    ids, w, y = node.inputs[0], node.arg(1, "weight").value, node.outputs[0]
    for d in range(ids.ndim):
        ctx.same(ctx.value(ids, d), ctx.value(y, d))
    ctx.same(ctx.value(y, -1), ctx.value(w, 1, "out"))
