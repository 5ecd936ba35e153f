"""Small image models: LeNet-5, LeNet-300-100 / MLP, CIFAR ResNets (ResNet-8 of MLPerf Tiny,
ResNet-20 of He et al. 2016) and a small MobileNetV2."""
from __future__ import annotations

from torch import nn

from edgeprune.zoo.blocks import residual_stages
from edgeprune.zoo.registry import register_model


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) for 28x28 inputs: two 5x5 convs (6, 16), FC 120-84-classes."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Linear(16 * 5 * 5, 120), nn.ReLU(inplace=True),
                                        nn.Linear(120, 84), nn.ReLU(inplace=True), nn.Linear(84, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


@register_model("lenet5", (1, 28, 28), "mnist")
def lenet5(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """LeNet-5 for MNIST / Fashion-MNIST (61.7k parameters)."""
    return LeNet5(in_channels, num_classes)


class MLP(nn.Module):
    """Fully connected network on flattened inputs."""

    def __init__(self, in_features: int, hidden=(300, 100), num_classes: int = 10):
        super().__init__()
        layers, c = [nn.Flatten()], in_features
        for h in hidden:
            layers += [nn.Linear(c, h), nn.ReLU(inplace=True)]
            c = h
        layers.append(nn.Linear(c, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


@register_model("lenet_300_100", (1, 28, 28), "mnist")
def lenet_300_100(num_classes: int = 10) -> nn.Module:
    """LeNet-300-100 (266k parameters), the classic MLP of Han et al. 2015."""
    return MLP(784, (300, 100), num_classes)


@register_model("mlp", (6, 128), "hapt")
def mlp(num_classes: int = 6, in_features: int = 6 * 128, hidden=(256, 128)) -> nn.Module:
    """A plain MLP (flattened input)."""
    return MLP(in_features, tuple(hidden), num_classes)


class CifarResNet(nn.Module):
    def __init__(self, blocks_per_stage: int, widths=(16, 32, 64), num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        self.layers, c = residual_stages(widths[0], widths, blocks_per_stage, dims=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))


@register_model("resnet8", (3, 32, 32), "cifar10")
def resnet8(num_classes: int = 10) -> nn.Module:
    """ResNet-8 of MLPerf Tiny image classification (3 stages x 1 block, 16/32/64 channels)."""
    return CifarResNet(1, (16, 32, 64), num_classes)


@register_model("resnet20", (3, 32, 32), "cifar10")
def resnet20(num_classes: int = 10) -> nn.Module:
    """ResNet-20 for CIFAR (He et al. 2016), with projection shortcuts."""
    return CifarResNet(3, (16, 32, 64), num_classes)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                   nn.ReLU6(inplace=True), nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2Small(nn.Module):
    """MobileNetV2 (Sandler et al. 2018) scaled down for 32x32-96x96 inputs."""

    CFG = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 2, 2), (6, 96, 1, 1)]

    def __init__(self, num_classes: int = 10, width: float = 0.5, in_channels: int = 3):
        super().__init__()
        c = max(8, int(32 * width))
        layers = [nn.Conv2d(in_channels, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU6(inplace=True)]
        for t, ch, n, s in self.CFG:
            out = max(8, int(ch * width))
            for i in range(n):
                layers.append(InvertedResidual(c, out, s if i == 0 else 1, t))
                c = out
        last = max(64, int(320 * width))
        layers += [nn.Conv2d(c, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU6(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


@register_model("mobilenetv2_small", (3, 32, 32), "cifar10")
def mobilenetv2_small(num_classes: int = 10, width: float = 0.5) -> nn.Module:
    """A small MobileNetV2 (width 0.5, 9 inverted-residual blocks)."""
    return MobileNetV2Small(num_classes, width)
