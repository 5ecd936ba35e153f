"""Random architectures for property-based tests: a spec (list of block tuples) -> nn.Module.

Blocks: ("conv", out, kernel, mode) with mode plain/depthwise/grouped; ("norm", bn|gn|in);
("act", relu|gelu|hardswish); ("res",) a residual block; ("cat", extra) two branches
concatenated; ("chunk",) split in halves, one half transformed, re-joined; ("se",)
squeeze-and-excitation. The head is ("flatten",) or ("pool",), then linear layers (with a
LayerNorm when `ln`)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class _Res(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c, 1))

    def forward(self, x):
        return F.relu(x + self.body(x))


class _Cat(nn.Module):
    def __init__(self, c, extra):
        super().__init__()
        self.a, self.b = nn.Conv2d(c, extra, 1), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return torch.cat([self.a(x), F.relu(self.b(x))], 1)


class _Chunk(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.f = nn.Conv2d(c // 2, c // 2, 3, padding=1)

    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        return torch.cat([a, self.f(b)], 1)


class _SE(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, max(1, c // 2), 1), nn.Conv2d(max(1, c // 2), c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


class RandomNet(nn.Module):
    def __init__(self, spec: list[tuple], head: str = "pool", ln: bool = False, in_ch: int = 3, size: int = 6,
                 classes: int = 3):
        super().__init__()
        layers, c = [nn.Conv2d(in_ch, 8, 3, padding=1)], 8
        for block in spec:
            kind = block[0]
            if kind == "conv":
                _, out, k, mode = block
                if mode == "depthwise":
                    layers.append(nn.Conv2d(c, c, k, padding=k // 2, groups=c))
                    out = c
                elif mode == "grouped":
                    g = math.gcd(c, out)
                    g = 2 if g % 2 == 0 else 1
                    layers.append(nn.Conv2d(c, out, k, padding=k // 2, groups=g))
                else:
                    layers.append(nn.Conv2d(c, out, k, padding=k // 2))
                c = out
            elif kind == "norm":
                layers.append({"bn": nn.BatchNorm2d(c), "gn": nn.GroupNorm(2 if c % 2 == 0 else 1, c),
                               "in": nn.InstanceNorm2d(c, affine=True)}[block[1]])
            elif kind == "act":
                layers.append({"relu": nn.ReLU(), "gelu": nn.GELU(), "hardswish": nn.Hardswish()}[block[1]])
            elif kind == "res":
                layers.append(_Res(c))
            elif kind == "cat":
                layers.append(_Cat(c, block[1]))
                c += block[1]
            elif kind == "chunk" and c % 2 == 0:
                layers.append(_Chunk(c))
            elif kind == "se":
                layers.append(_SE(c))
        self.features = nn.Sequential(*layers)
        self.head_kind = head
        feat = c * size * size if head == "flatten" else c
        tail = [nn.Linear(feat, 16)] + ([nn.LayerNorm(16)] if ln else []) + [nn.ReLU(), nn.Linear(16, classes)]
        self.head = nn.Sequential(*tail)

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(x, 1) if self.head_kind == "flatten" else x.mean((2, 3))
        return self.head(x)
