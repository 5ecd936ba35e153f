"""Give every parameter and normalisation statistic random, non-degenerate values.

Fresh models are often initialised so that a check on their output says little (zero-init
classifier heads give all-zero outputs; zero-init residual scales hide whole branches).
Verification on randomized weights exercises every channel."""
from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if not t.is_floating_point():
            continue
        fan_in = t[0].numel() if t.ndim > 1 else 1
        r = torch.randn(t.shape, generator=gen, dtype=torch.float32) / max(fan_in, 1) ** 0.5
        if name.endswith("running_var"):
            r = r.abs() + 0.5
        elif t.ndim == 1 and name.endswith("weight"):
            r = 1.0 + 0.5 * r.abs() * torch.sign(torch.randn(t.shape, generator=gen))
        t.copy_(r.to(t.dtype))
    return model
