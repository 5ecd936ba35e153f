"""Dynamic network surgery (Guo, Yao, Chen, NeurIPS 2016, arXiv 1608.04493).

Pruning and splicing: every weight keeps being updated (gradients flow to the dense weights,
the forward pass uses weights x mask), and the mask is revised from the magnitudes with two
thresholds a < b: |w| < a -> pruned, |w| > b -> kept (spliced back if it was pruned), in
between -> unchanged. The paper sets a and b per layer from the layer's mean and standard
deviation of |w| (a = 0.9 (mu + c sigma), b = 1.1 (mu + c sigma)); `c` sets the sparsity."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from edgeprune.config import SparsifyConfig, option
from edgeprune.hooks import TrainingHooks
from edgeprune.registry import register_method
from edgeprune.sparse.masks import SparseMasks, prunable_weights, restore_dense


class DynamicNetworkSurgery:
    """In the training loop: `dns.update(model)` every few steps (revises the masks),
    `dns.forward_weights(model)` before the forward pass (masks the weights, keeping the dense
    ones aside), `dns.restore(model)` after backward and before the optimiser step (dense
    weights back; the gradient of the masked forward updates them, pruned ones included)."""

    def __init__(self, c: float = 1.0, lower: float = 0.9, upper: float = 1.1, skip: tuple[str, ...] = ()):
        self.c, self.lower, self.upper, self.skip = c, lower, upper, skip
        self.masks = SparseMasks()
        self._dense: dict[str, torch.Tensor] = {}

    def thresholds(self, w: torch.Tensor) -> tuple[float, float]:
        a = w.detach().abs()
        base = float(a.mean() + self.c * a.std())
        return self.lower * base, self.upper * base

    @torch.no_grad()
    def update(self, model: nn.Module) -> SparseMasks:
        for name, w in prunable_weights(model, self.skip).items():
            dense = self._dense.get(name, w)
            a, b = self.thresholds(dense)
            mag = dense.abs()
            old = self.masks.masks.get(name, torch.ones_like(mag, dtype=torch.bool))
            self.masks.masks[name] = torch.where(mag < a, torch.zeros_like(old), torch.where(mag > b, torch.ones_like(old), old))
        return self.masks

    def forward_weights(self, model: nn.Module) -> None:
        self._dense = self.masks.apply_keeping_dense(model)

    def restore(self, model: nn.Module) -> None:
        """Dense weights back (their gradient, from the masked forward, stays in .grad)."""
        restore_dense(model, self._dense)
        self._dense = {}


class _DNSHooks(TrainingHooks):
    def __init__(self, dns: DynamicNetworkSurgery, every: int):
        self.dns, self.every = dns, every

    def before_forward(self, model: nn.Module, step: int) -> None:
        if step % self.every == 0:
            self.dns.update(model)
        self.dns.forward_weights(model)

    def after_backward(self, model: nn.Module, step: int) -> None:
        self.dns.restore(model)


def dns_for_sparsity(model: nn.Module, sparsity: float, skip: tuple[str, ...] = ()) -> DynamicNetworkSurgery:
    """DNS with its thresholds' c set by bisection so that the pretrained weights' masks reach
    about `sparsity` (the paper tunes c per network by hand)."""
    weights = list(prunable_weights(model, skip).values())
    total = sum(w.numel() for w in weights)
    lo, hi = -1.0, 4.0  # c: thresholds mu + c sigma; more c, more pruned
    for _ in range(30):
        mid = (lo + hi) / 2
        probe = DynamicNetworkSurgery(c=mid, skip=skip)
        pruned = sum(int((w.abs() < probe.thresholds(w)[0]).sum()) for w in weights)
        lo, hi = (mid, hi) if pruned < sparsity * total else (lo, mid)
    return DynamicNetworkSurgery(c=(lo + hi) / 2, skip=skip)


@register_method("dns")
@dataclass(frozen=True)
class DNSConfig(SparsifyConfig):
    """Dynamic network surgery: pruning and splicing while training (Guo et al., NeurIPS 2016)."""

    trains: ClassVar[bool] = True
    sparsity: float = option(0.9, "fraction of the prunable weights removed", low=0, high=1, high_open=True)
    every: int = option(10, "steps between mask revisions", low=1)
    ignore: tuple[str, ...] = option((), "modules whose weights stay dense (module names)", aliases=("--skip",))

    def masks(self, model: nn.Module, inputs) -> SparseMasks:
        train = inputs.training("dns")
        dns = dns_for_sparsity(model, self.sparsity, self.ignore)
        dns.update(model)
        train(model, [_DNSHooks(dns, self.every)])
        dns.masks.apply_(model)
        return dns.masks
