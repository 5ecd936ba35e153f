"""Wanda, pruning by weights and activations (Sun, Liu, Bair, Kolter, "A Simple and Effective
Pruning Approach for Large Language Models", ICLR 2024, arXiv 2306.11695).

Weight W_ij scores |W_ij| * ||X_j||_2, the norm of its input feature j over calibration tokens;
within every output row i the lowest-scoring fraction is removed (the paper's per-output
comparison group), or the lowest n of every m inputs for N:M. No weight update, no gradient.
The paper prunes Linear layers of LLMs; convolutions are handled the same way here, an input
channel's norm (over batch and positions) weighting every kernel tap that reads it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn

from edgeprune.config import SparsifyConfig, option
from edgeprune.errors import ConfigError
from edgeprune.registry import register_method
from edgeprune.rules import layer_kind, layers_of_kind
from edgeprune.sparse.masks import SparseMasks
from edgeprune.sparse.nm import check_nm


@torch.no_grad()
def input_norms(model: nn.Module, data: Iterable, skip: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """||X_j||_2 over all calibration tokens, per input feature of every Linear layer."""
    sums: dict[str, torch.Tensor] = {}
    hooks = []
    for name, m in layers_of_kind(model, ("linear", "conv"), skip).items():
        if layer_kind(m) == "linear" or len(m.kernel_size) <= 2:
            def hook(mod, args, out, key=f"{name}.weight" if name else "weight", linear=layer_kind(m) == "linear"):
                x = args[0].detach().float()
                x = x.reshape(-1, x.shape[-1]) if linear else x.movedim(1, -1).reshape(-1, x.shape[1])
                sums[key] = sums.get(key, 0) + (x * x).sum(0)
            hooks.append(m.register_forward_hook(hook))
    model.eval()
    try:
        for batch in data:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(**x) if isinstance(x, dict) else model(x)
    finally:
        for h in hooks:
            h.remove()
    return {k: v.sqrt() for k, v in sums.items()}


def wanda_masks(model: nn.Module, data: Iterable, sparsity: float = 0.5, n: int | None = None, m: int | None = None,
                skip: tuple[str, ...] = ()) -> SparseMasks:
    """Per-row unstructured masks at `sparsity`, or N:M masks when `n` and `m` are given."""
    norms = input_norms(model, data, skip)
    params = dict(model.named_parameters())
    out = {}
    for name, norm in norms.items():
        w = params[name].detach()
        score = (w.abs().float() * norm.view(1, -1, *[1] * (w.ndim - 2))).reshape(w.shape[0], -1)
        if n is not None and m is not None:
            if score.shape[1] % m:
                continue
            blocks = score.reshape(w.shape[0], -1, m)
            keep = torch.zeros_like(blocks, dtype=torch.bool).scatter_(2, blocks.topk(n, dim=2).indices, True)
            out[name] = keep.reshape(w.shape)
        else:
            k = int(round(sparsity * score.shape[1]))
            keep = torch.ones_like(score, dtype=torch.bool)
            if k:
                keep.scatter_(1, score.topk(k, dim=1, largest=False).indices, False)
            out[name] = keep.reshape(w.shape)
    return SparseMasks(out)


@register_method("wanda")
@dataclass(frozen=True)
class WandaConfig(SparsifyConfig):
    """Wanda: |weight| x input-activation norm, per output row (Sun et al., ICLR 2024)."""

    sparsity: float = option(0.5, "fraction of the prunable weights removed", low=0, high=1, high_open=True)
    n: int | None = option(None, "N of N:M (with --m): N:M masks instead of a per-row fraction", low=1, high=64)
    m: int | None = option(None, "M of N:M", low=2, high=64)
    ignore: tuple[str, ...] = option((), "modules whose weights stay dense (module names)", aliases=("--skip",))

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.n is None) != (self.m is None):
            raise ConfigError("wanda: give both n and m for N:M masks, or neither")
        if self.n is not None:
            check_nm(self.n, self.m)

    def masks(self, model: nn.Module, inputs) -> SparseMasks:
        return wanda_masks(model, inputs.calibration("wanda"), self.sparsity, self.n, self.m, skip=self.ignore)
