"""Quantization-aware fine-tuning, matching edgeprune's int8 scheme: while training, each
conv/linear weight is replaced in the forward pass by its per-output-channel symmetric int8
rounding, and the outputs of conv, linear and batch-norm layers by their per-tensor asymmetric
int8 rounding (ranges tracked as running min/max, momentum 0.9); gradients pass straight
through the rounding. `remove()` leaves ordinary float weights, which the int8 conversion then
quantizes. Simplification: a conv's output is rounded even where a batch norm follows it
(deployment folds the two and rounds once)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from edgeprune.rules import layer_kind

_LAYERS = ("linear", "conv", "conv_transpose")  # layer kinds whose weights are fake-quantised


class _WeightFQ(nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        flat = w.reshape(w.shape[0], -1)
        scale = (flat.abs().amax(1).clamp_min(1e-12) / 127.0).view(-1, *[1] * (w.ndim - 1))
        q = torch.clamp(torch.round(w / scale), -127, 127) * scale
        return w + (q - w).detach()


class FakeQuant:
    def __init__(self, model: nn.Module, momentum: float = 0.9):
        self.model, self.momentum = model, momentum
        self.ranges: dict[nn.Module, tuple[float, float]] = {}
        self._hooks = []
        self._params = []
        for m in model.modules():
            if layer_kind(m) in _LAYERS:
                parametrize.register_parametrization(m, "weight", _WeightFQ())
                self._params.append(m)
            if layer_kind(m) in _LAYERS + ("batch_norm",):
                self._hooks.append(m.register_forward_hook(self._act))

    def _act(self, module: nn.Module, args, out: torch.Tensor) -> torch.Tensor:
        lo, hi = float(out.detach().min()), float(out.detach().max())
        if module.training or module not in self.ranges:
            old = self.ranges.get(module)
            if old is not None:
                lo = self.momentum * old[0] + (1 - self.momentum) * lo
                hi = self.momentum * old[1] + (1 - self.momentum) * hi
            self.ranges[module] = (lo, hi)
        lo, hi = self.ranges[module]
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        scale = max(hi - lo, 1e-12) / 255.0
        zero = round(-128 - lo / scale)
        q = (torch.clamp(torch.round(out / scale) + zero, -128, 127) - zero) * scale
        return out + (q - out).detach()

    def remove(self) -> nn.Module:
        for h in self._hooks:
            h.remove()
        for m in self._params:
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
        self._hooks, self._params = [], []
        return self.model
