"""Feature boosting and suppression (Gao, Zhao, Dudziak, Mullins, Xu, "Dynamic Channel Pruning:
Feature Boosting and Suppression", ICLR 2019, arXiv 1810.05331).

A small saliency predictor reads the layer's input (global average pooling, a linear layer,
ReLU) and, for each input, keeps only the k = ceil(density x C) output channels with the
highest saliency (winner-take-all); their outputs are scaled by the saliency (boosting), the
others are zero and need not be computed (suppression). Which channels run differs per input;
the MACs saved are measured per input. The saliencies are trained with the network, with an
L1 penalty on them (`penalty`). Here a wrapper, `FBSConv`, gates one convolution (+ its batch
norm); put it where the convolution was."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from edgeprune.config import TrainingMethodConfig, option
from edgeprune.hooks import TrainingHooks
from edgeprune.registry import register_method
from edgeprune.rules import layer_kind


class FBSConv(nn.Module):
    def __init__(self, conv: nn.Module, norm: nn.Module | None = None, density: float = 0.5):
        super().__init__()
        self.conv, self.norm, self.density = conv, norm or nn.Identity(), density
        self.saliency = nn.Linear(conv.in_channels, conv.out_channels)
        nn.init.constant_(self.saliency.bias, 1.0)  # start with every channel on
        self.last_active: torch.Tensor | None = None  # (N, C) bool of the last forward
        self.last_saliency: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=tuple(range(2, x.ndim)))
        s = torch.relu(self.saliency(pooled))  # (N, C)
        k = max(1, math.ceil(self.density * s.shape[1]))
        keep = torch.zeros_like(s, dtype=torch.bool).scatter_(1, s.topk(k, dim=1).indices, True)
        gate = s * keep
        self.last_active, self.last_saliency = keep & (s > 0), s
        # input channels that are zero for a sample (suppressed upstream) need not be read either
        self.last_input_active = x.detach().flatten(2).abs().sum(-1) > 0
        y = self.norm(self.conv(x))
        return y * gate.view(*gate.shape, *[1] * (y.ndim - 2))

    def dense_macs(self, y_shape: torch.Size) -> int:
        per_position = self.conv.in_channels // self.conv.groups * math.prod(self.conv.kernel_size)
        return int(math.prod(y_shape[1:]) * per_position)


def penalty(model: nn.Module, strength: float = 1e-8) -> torch.Tensor:
    """L1 on the saliencies of the last forward pass (add to the loss)."""
    terms = [m.last_saliency.abs().sum() for m in model.modules() if isinstance(m, FBSConv) and m.last_saliency is not None]
    return strength * sum(terms) if terms else torch.zeros(())


@torch.no_grad()
def dynamic_macs(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Per input: MACs of the gated convolutions actually needed (only active output channels
    are computed, and only from input channels that are not all zero, e.g. suppressed by the
    previous gate), and their dense MACs."""
    shapes = {}
    hooks = [m.register_forward_hook(lambda mod, a, out: shapes.__setitem__(mod, out.shape))
             for m in model.modules() if isinstance(m, FBSConv)]
    try:
        model.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    used = torch.zeros(x.shape[0])
    dense = 0
    for m, shape in shapes.items():
        full = m.dense_macs(shape)
        dense += full
        in_frac = m.last_input_active.float().mean(1) if m.conv.groups == 1 else 1.0
        used += full * m.last_active.float().mean(1) * in_frac
    return used, dense


def add_fbs(model: nn.Module, density: float = 0.5) -> nn.Module:
    """Gate, in place, every convolution followed by a batch norm inside an nn.Sequential:
    the pair becomes one FBSConv (the norm moves inside, an Identity keeps the indices).
    Returns `model`; raises when nothing could be gated."""
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density is the fraction of channels computed per input, in (0, 1]; got {density}")
    count = 0
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        items = list(seq._modules.items())
        for (name, conv), (norm_name, norm) in zip(items, items[1:]):
            if layer_kind(conv) == "conv" and len(conv.kernel_size) <= 2 and layer_kind(norm) == "batch_norm":
                seq._modules[name] = FBSConv(conv, norm, density)
                seq._modules[norm_name] = nn.Identity()
                count += 1
    if count == 0:
        raise ValueError(f"{type(model).__name__} has no conv + batch-norm pair inside an nn.Sequential to gate")
    return model


class FBS(TrainingHooks):
    """Gates added before training (`prepare`), the saliencies' L1 term in the loss."""

    def __init__(self, density: float, strength: float):
        self.density, self.strength = density, strength

    def prepare(self, model: nn.Module) -> nn.Module:
        return add_fbs(model, self.density)

    def regularize(self, loss: torch.Tensor, model: nn.Module) -> torch.Tensor:
        return loss + penalty(model, self.strength) if self.strength else loss


@register_method("fbs")
@dataclass(frozen=True)
class FBSConfig(TrainingMethodConfig):
    """Feature boosting and suppression: per input, only the most salient channels of each gated convolution run (Gao et al., ICLR 2019)."""

    replay_on_load: ClassVar[bool] = True  # a saved model is gated again when it is loaded
    shortcuts: ClassVar[dict] = {"--fbs": "density"}
    density: float = option(0.5, "fraction of each gated convolution's channels computed per input",
                            low=0, high=1, low_open=True)
    strength: float = option(0.0, "L1 on the saliencies (the paper's term; 0: off)", low=0)

    def build(self, model: nn.Module, example_inputs: Any, steps: int) -> FBS:
        return FBS(self.density, self.strength)

    def finalize(self, hooks: FBS, model: nn.Module, example_inputs: Any, task=None):
        """No channel leaves the model: the result reports the MACs each test input needs."""
        from edgeprune.api import PruneResult
        from edgeprune.surgery.plan import PrunePlan
        x = torch.cat([xb for xb, _ in task.test]) if task is not None else example_inputs
        used, dense = dynamic_macs(model, x)
        details = {"fbs_macs_per_input": {"mean": float(used.mean()), "min": float(used.min()),
                                          "max": float(used.max()), "dense": dense}}
        return PruneResult(model, PrunePlan(), None, None, None, "", details=details)
