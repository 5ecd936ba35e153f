"""Per-unit gates on a model's channel groups, for methods that mask channels while training
(DSA, the Taylor reallocation of Qi et al.) before removing them physically.

Each group's channels are multiplied by a gate where they are produced: at the output of
its normalisation layers when it has any (a zero after batch norm is a real zero downstream),
otherwise at the output of the conv/linear layers that produce them. Every consumer then sees
zeros, which is exactly what removing the channels does (`ChannelSpace.finalize` checks it).

`straight_through=True` lets the loss gradient reach the gated activations as if the gate
were 1 (pruned channels keep learning and may come back, as in SFP and DPF); the gate still
receives d loss / d gate = sum(activation * upstream gradient), the first-order Taylor term."""
from __future__ import annotations

import torch
from torch import nn

from edgeprune.rules import layer_kind
from edgeprune.search.space import ChannelSpace

_NORMS = ("batch_norm", "instance_norm", "group_norm")  # per-channel normalisations (layer kinds)
_GATEABLE = _NORMS + ("conv", "conv_transpose", "linear")


class ChannelGates:
    def __init__(self, model: nn.Module, space: ChannelSpace, straight_through: bool = False):
        self.model, self.space, self.straight_through = model, space, straight_through
        self.values: list[torch.Tensor] = [torch.ones(len(g)) for g in space.groups]
        self._handles = []
        modules = dict(model.named_modules())
        for gi, g in enumerate(space.groups):
            producers = {}  # layers whose output carries the group's channels: producers, and norm scales
            for slot in g.param_slots:
                mname, pname = slot.key.rsplit(".", 1) if "." in slot.key else ("", slot.key)
                m = modules.get(mname)
                if m is not None and g.roles.get(slot) in ("out", "scale"):
                    producers[mname] = (m, g.slots[slot])
            norms = {k: v for k, v in producers.items() if layer_kind(v[0]) in _NORMS}
            for mname, (m, index) in (norms or producers).items():
                if layer_kind(m) in _GATEABLE:
                    self._handles.append(m.register_forward_hook(self._hook(gi, torch.as_tensor(index))))
        if not self._handles:
            raise ValueError("no gateable layer found (the groups' producers are not conv/linear/norm layers)")

    def _hook(self, gi: int, index: torch.Tensor):
        def hook(module, args, out):
            gate = self.values[gi]
            per_channel = torch.ones(out.shape[1], dtype=out.dtype).index_put(
                (index.reshape(-1),), gate.to(out.dtype).repeat_interleave(index.shape[1]))
            per_channel = per_channel.view(1, -1, *[1] * (out.ndim - 2))
            if self.straight_through:
                return out + out.detach() * (per_channel - 1)
            return out * per_channel
        return hook

    def set(self, gi: int, values: torch.Tensor) -> None:
        self.values[gi] = values

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> "ChannelGates":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()
