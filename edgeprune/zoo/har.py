"""1-D models for inertial activity recognition (input: (batch, 6 channels, 128 samples))."""
from __future__ import annotations

import torch
from torch import nn

from edgeprune.zoo.blocks import residual_stages
from edgeprune.zoo.registry import register_model


def _block(cin: int, cout: int, k: int, pool: bool = True) -> list[nn.Module]:
    layers = [nn.Conv1d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm1d(cout), nn.ReLU(inplace=True)]
    return layers + ([nn.MaxPool1d(2)] if pool else [])


class HARCNN(nn.Module):
    """Four conv blocks (conv-BN-ReLU-maxpool), global average pooling, a linear classifier."""

    def __init__(self, in_channels: int = 6, num_classes: int = 6, widths=(64, 128, 128, 256), kernel: int = 5):
        super().__init__()
        layers, c = [], in_channels
        for w in widths:
            layers += _block(c, w, kernel)
            c = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


@register_model("har_cnn", (6, 128), "hapt")
def har_cnn(num_classes: int = 6, in_channels: int = 6, widths=(64, 128, 128, 256), kernel: int = 5) -> nn.Module:
    """4-block 1-D CNN for HAPT (290k parameters, 8.1M MACs): the default model."""
    return HARCNN(in_channels, num_classes, tuple(widths), kernel)


class DSCNN(nn.Module):
    """Depthwise-separable CNN in the style of DS-CNN (Zhang et al. 2017, "Hello Edge"):
    a plain first conv, then depthwise + pointwise blocks, average pooling, a classifier."""

    def __init__(self, in_channels: int, num_classes: int, width: int, blocks: int, dims: int):
        super().__init__()
        Conv = nn.Conv1d if dims == 1 else nn.Conv2d
        BN = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
        layers = [Conv(in_channels, width, 9 if dims == 1 else 3, stride=2, padding=4 if dims == 1 else 1, bias=False),
                  BN(width), nn.ReLU(inplace=True)]
        for _ in range(blocks):
            layers += [Conv(width, width, 3, padding=1, groups=width, bias=False), BN(width), nn.ReLU(inplace=True),
                       Conv(width, width, 1, bias=False), BN(width), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool1d(1) if dims == 1 else nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


@register_model("ds_cnn", (6, 128), "hapt")
def ds_cnn(num_classes: int = 6, in_channels: int = 6, width: int = 64, blocks: int = 4, dims: int = 1) -> nn.Module:
    """Depthwise-separable CNN (DS-CNN style), 1-D by default (dims=2 for spectrograms/images)."""
    return DSCNN(in_channels, num_classes, width, blocks, dims)


class ResNet1d(nn.Module):
    """A 1-D ResNet: stem conv, three stages of basic blocks, average pooling, classifier."""

    def __init__(self, in_channels: int, num_classes: int, widths=(32, 64, 128), blocks: int = 2):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(in_channels, widths[0], 7, 2, 3, bias=False),
                                  nn.BatchNorm1d(widths[0]), nn.ReLU(inplace=True))
        self.layers, c = residual_stages(widths[0], widths, blocks, dims=1)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))


@register_model("resnet1d", (6, 128), "hapt")
def resnet1d(num_classes: int = 6, in_channels: int = 6, widths=(32, 64, 128), blocks: int = 2) -> nn.Module:
    """1-D ResNet with three stages of two basic blocks for sensor time series."""
    return ResNet1d(in_channels, num_classes, tuple(widths), blocks)


class _SelfAttention(nn.Module):
    """Multi-head self-attention with separate q/k/v/output projections and a fixed head size,
    the number of heads inferred from the width (as Hugging Face models write it), so that
    pruning can remove whole heads per layer."""

    def __init__(self, dim: int, head_size: int):
        super().__init__()
        self.head_size = head_size
        self.q, self.k, self.v, self.out = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n = x.shape[0], x.shape[1]
        q = self.q(x).view(b, n, -1, self.head_size).transpose(1, 2)
        k = self.k(x).view(b, n, -1, self.head_size).transpose(1, 2)
        v = self.v(x).view(b, n, -1, self.head_size).transpose(1, 2)
        a = nn.functional.scaled_dot_product_attention(q, k, v, scale=self.head_size ** -0.5)
        return self.out(a.transpose(1, 2).reshape(b, n, -1))


class _EncoderBlock(nn.Module):
    def __init__(self, dim: int, head_size: int, mlp: int):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), _SelfAttention(dim, head_size)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class HARTransformer(nn.Module):
    """Patches of the window (a strided conv) as tokens, learned positions, pre-norm encoder
    blocks, mean over tokens, a linear classifier."""

    def __init__(self, in_channels: int, num_classes: int, dim: int, depth: int, head_size: int, patch: int,
                 length: int = 128):
        super().__init__()
        self.patch = nn.Conv1d(in_channels, dim, patch, stride=patch)
        self.pos = nn.Parameter(torch.zeros(1, length // patch, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.Sequential(*[_EncoderBlock(dim, head_size, 4 * dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, x):
        tokens = self.patch(x).transpose(1, 2) + self.pos
        return self.classifier(self.norm(self.blocks(tokens)).mean(1))


@register_model("har_transformer", (6, 128), "hapt")
def har_transformer(num_classes: int = 6, in_channels: int = 6, dim: int = 64, depth: int = 2, head_size: int = 16,
                    patch: int = 8) -> nn.Module:
    """Small transformer for HAPT (16 tokens of 8 samples, 2 blocks, 4 heads of 16): heads,
    MLP width and the embedding can all be pruned."""
    return HARTransformer(in_channels, num_classes, dim, depth, head_size, patch)
