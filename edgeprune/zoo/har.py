"""1-D models for inertial activity recognition (input: (batch, 6 channels, 128 samples))."""
from __future__ import annotations

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
