"""LSTM/GRU/RNN: hidden units are prunable (unit h = its rows in every gate, in every layer,
and its column in the recurrent weights). The input width is tied to layer 0's input columns."""
from __future__ import annotations

import numpy as np
from torch import nn

from edgeprune.rules.base import LayerRule, register_rule, silenced_copy

_GATES = {nn.LSTM: 4, nn.GRU: 3, nn.RNN: 1}


@register_rule(nn.LSTM, nn.GRU, nn.RNN)
class RecurrentRule(LayerRule):
    kind = "recurrent"

    def couple(self, ctx, node, prefix):
        m = node.module
        if getattr(m, "proj_size", 0):
            return
        H, G = m.hidden_size, _GATES[type(m)]
        D = 2 if m.bidirectional else 1
        hid = ctx.param(prefix + "weight_hh_l0", 1, "in")  # the hidden-unit axis, one for all layers
        h = np.arange(H)
        for layer in range(m.num_layers):
            for sfx in ([""] + (["_reverse"] if m.bidirectional else [])):
                n = f"l{layer}{sfx}"
                for t in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    if hasattr(m, f"{t}_{n}"):
                        role = "out" if t.startswith("weight") else "bias"
                        for g in range(G):
                            ctx.link(hid, h, ctx.param(f"{prefix}{t}_{n}", 0, role), h + g * H)
                ctx.same(hid, ctx.param(f"{prefix}weight_hh_{n}", 1, "in"))
                if layer > 0:
                    for k in range(D):
                        ctx.link(hid, h, ctx.param(f"{prefix}weight_ih_{n}", 1, "in"), h + k * H)
        x = node.inputs[0]
        ctx.same(ctx.value(x, -1), ctx.param(prefix + "weight_ih_l0", 1, "in"))
        if m.bidirectional:
            ctx.same(ctx.value(x, -1), ctx.param(prefix + "weight_ih_l0_reverse", 1, "in"))
        for d in range(x.ndim - 1):
            ctx.same(ctx.value(x, d), ctx.value(node.outputs[0], d))
        for k in range(D):
            ctx.link(hid, h, ctx.value(node.outputs[0], -1), h + k * H)
        for state in node.outputs[1:]:  # h_n (and c_n): (layers*D, batch, H)
            ctx.same(ctx.value(state, -1), hid)
        for state in node.inputs[1:]:
            ctx.same(ctx.value(state, -1), hid)

    def update(self, m):
        m.hidden_size = m.weight_hh_l0.shape[1]
        m.input_size = m.weight_ih_l0.shape[1]
        m._flat_weights = [getattr(m, n) if hasattr(m, n) else None for n in m._flat_weights_names]
        m.flatten_parameters()

    def masked_call(self, m, args, kwargs, removed, removed_params):
        """Removed hidden units get zero gate rows: they stay at zero and feed nothing back."""
        if not removed_params:
            return None
        quiet = silenced_copy(m, removed_params, dims=(0,))
        quiet.flatten_parameters()
        return quiet(*args, **kwargs)

    def macs(self, m, node):
        x = node.inputs[0]
        steps = x.numel // x.shape[-1]
        G = _GATES[type(m)]
        total = 0
        for layer in range(m.num_layers):
            inp = m.input_size if layer == 0 else m.hidden_size * (2 if m.bidirectional else 1)
            total += steps * G * m.hidden_size * (inp + m.hidden_size)
        return total * (2 if m.bidirectional else 1)
