"""Building blocks shared by the 1-D and 2-D models."""
from __future__ import annotations

from torch import nn


class BasicBlock(nn.Module):
    """ResNet basic block (two 3-wide convs), 1-D or 2-D, with a projection shortcut (option B,
    prunable, unlike zero-padding) when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int, dims: int = 2):
        super().__init__()
        Conv = nn.Conv1d if dims == 1 else nn.Conv2d
        BN = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
        self.conv1 = Conv(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = BN(cout)
        self.conv2 = Conv(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = BN(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(Conv(cin, cout, 1, stride, bias=False), BN(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def residual_stages(c: int, widths, blocks: int, dims: int) -> tuple[nn.Sequential, int]:
    """Stages of `blocks` basic blocks; every stage after the first halves the resolution."""
    layers = []
    for i, w in enumerate(widths):
        for b in range(blocks):
            layers.append(BasicBlock(c, w, 2 if (b == 0 and i > 0) else 1, dims))
            c = w
    return nn.Sequential(*layers), c
