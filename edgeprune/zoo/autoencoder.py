"""Fully connected autoencoder for anomaly detection, shaped like MLPerf Tiny's (DCASE 2020
machine-sound) reference: 640 inputs, four 128-unit layers, an 8-unit bottleneck, mirrored."""
from __future__ import annotations

from torch import nn

from edgeprune.zoo.registry import register_model


class FCAutoencoder(nn.Module):
    def __init__(self, in_features: int = 640, hidden: int = 128, bottleneck: int = 8, depth: int = 4):
        super().__init__()

        def stack(sizes):
            layers = []
            for a, b in zip(sizes[:-1], sizes[1:]):
                layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
            return layers
        self.encoder = nn.Sequential(*stack([in_features] + [hidden] * depth + [bottleneck]))
        self.decoder = nn.Sequential(*stack([bottleneck] + [hidden] * depth), nn.Linear(hidden, in_features))

    def forward(self, x):
        return self.decoder(self.encoder(x))


@register_model("autoencoder", (640,), "anomaly")
def autoencoder(in_features: int = 640, hidden: int = 128, bottleneck: int = 8, depth: int = 4) -> nn.Module:
    """FC autoencoder for anomaly detection (reconstruction error is the anomaly score)."""
    return FCAutoencoder(in_features, hidden, bottleneck, depth)
