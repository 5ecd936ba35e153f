"""Masks over weights, and magnitude pruning (Han, Pool, Tran, Dally, "Learning both Weights
and Connections for Efficient Neural Networks", NeurIPS 2015): remove the weights of smallest
magnitude, globally or per layer, then retrain with the masks held (iteratively, in steps)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from edgeprune.config import SparsifyConfig, option
from edgeprune.registry import register_method
from edgeprune.rules import layers_of_kind

_LAYERS = ("conv", "linear")  # layer kinds whose weights are masked


def prunable_weights(model: nn.Module, skip: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Weight matrices and kernels of conv/linear layers, by parameter name."""
    return {(f"{n}.weight" if n else "weight"): m.weight for n, m in layers_of_kind(model, _LAYERS, skip).items()}


@dataclass
class SparseMasks:
    """`masks[name]` is True where the weight is kept. `apply_` zeroes the others (call it after
    every optimiser step while training: momentum and weight decay would revive them)."""

    masks: dict[str, torch.Tensor] = field(default_factory=dict)

    @torch.no_grad()
    def apply_(self, model: nn.Module) -> nn.Module:
        params = dict(model.named_parameters())
        for name, m in self.masks.items():
            params[name].mul_(m.to(params[name].dtype))
        return model

    @torch.no_grad()
    def apply_keeping_dense(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Mask the weights for a forward/backward pass and return the dense ones, to be put
        back with `restore_dense` before the optimiser step (DNS, DPF: the sparse model's
        gradient updates the dense weights)."""
        params = dict(model.named_parameters())
        dense = {name: params[name].detach().clone() for name in self.masks}
        self.apply_(model)
        return dense

    def sparsity(self) -> float:
        total = sum(m.numel() for m in self.masks.values())
        return 1.0 - sum(int(m.sum()) for m in self.masks.values()) / max(total, 1)

    def layer_sparsity(self) -> dict[str, float]:
        return {n: 1.0 - float(m.float().mean()) for n, m in self.masks.items()}


def _kth_threshold(values: torch.Tensor, sparsity: float) -> float:
    k = int(round(sparsity * values.numel()))
    if k <= 0:
        return -float("inf")
    return float(values.flatten().kthvalue(k).values)


def global_magnitude(model: nn.Module, sparsity: float, skip: tuple[str, ...] = ()) -> SparseMasks:
    """One threshold on |w| for all layers: `sparsity` of all prunable weights removed."""
    weights = prunable_weights(model, skip)
    allw = torch.cat([w.detach().abs().flatten() for w in weights.values()])
    thr = _kth_threshold(allw, sparsity)
    return SparseMasks({n: w.detach().abs() > thr for n, w in weights.items()})


def layer_magnitude(model: nn.Module, sparsity: float, skip: tuple[str, ...] = ()) -> SparseMasks:
    """The same fraction removed in every layer."""
    return SparseMasks({n: w.detach().abs() > _kth_threshold(w.detach().abs(), sparsity)
                        for n, w in prunable_weights(model, skip).items()})


@torch.no_grad()
def restore_dense(model: nn.Module, dense: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    for name, t in dense.items():
        params[name].copy_(t)


@register_method("magnitude")
@dataclass(frozen=True)
class MagnitudeConfig(SparsifyConfig):
    """Magnitude pruning with one global threshold (Han et al., NeurIPS 2015)."""

    sparsity: float = option(0.9, "fraction of the prunable weights removed", low=0, high=1, high_open=True)
    ignore: tuple[str, ...] = option((), "modules whose weights stay dense (module names)", aliases=("--skip",))

    def masks(self, model: nn.Module, inputs) -> SparseMasks:
        return global_magnitude(model, self.sparsity, self.ignore)


@register_method("layer_magnitude")
@dataclass(frozen=True)
class LayerMagnitudeConfig(SparsifyConfig):
    """Magnitude pruning, the same fraction in every layer."""

    sparsity: float = option(0.9, "fraction of the prunable weights removed", low=0, high=1, high_open=True)
    ignore: tuple[str, ...] = option((), "modules whose weights stay dense (module names)", aliases=("--skip",))

    def masks(self, model: nn.Module, inputs) -> SparseMasks:
        return layer_magnitude(model, self.sparsity, self.ignore)
