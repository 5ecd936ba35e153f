"""A small learnable task for tests of every method: a 1-D conv net with batch norms and a
residual block, and a synthetic 4-class task (the class sets the frequency of a sine the
inputs carry) that it learns in one epoch. Deterministic from the seed."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from edgeprune.data.tasks import Task


class _Block(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(c, c, 3, padding=1), nn.BatchNorm1d(c), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def tiny_net(classes: int = 4) -> nn.Module:
    return nn.Sequential(nn.Conv1d(2, 16, 5, padding=2), nn.BatchNorm1d(16), nn.ReLU(), _Block(16),
                         nn.Conv1d(16, 24, 3, padding=1), nn.BatchNorm1d(24), nn.ReLU(), nn.AdaptiveAvgPool1d(4),
                         nn.Flatten(), nn.Linear(96, 32), nn.ReLU(), nn.Linear(32, classes))


def tiny_task(n: int = 512, length: int = 32, classes: int = 4, seed: int = 0) -> Task:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    t = torch.arange(length, dtype=torch.float32)
    freq = (y.float() + 1)[:, None] * 0.2
    x = torch.stack([torch.sin(freq * t), torch.cos(freq * t)], 1) + 0.3 * torch.randn(n, 2, length, generator=g)
    cut = [int(n * 0.7), int(n * 0.85)]
    tr = DataLoader(TensorDataset(x[:cut[0]], y[:cut[0]]), 32, shuffle=True, generator=g)
    va = DataLoader(TensorDataset(x[cut[0]:cut[1]], y[cut[0]:cut[1]]), 128)
    te = DataLoader(TensorDataset(x[cut[1]:], y[cut[1]:]), 128)
    return Task("tiny", tr, va, te, classes, (2, length))


__all__ = ["tiny_net", "tiny_task"]
