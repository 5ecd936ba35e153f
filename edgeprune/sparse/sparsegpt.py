"""SparseGPT (Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be Accurately Pruned
in One-Shot", ICML 2023, arXiv 2301.00774).

For each Linear layer, with H = 2 X X^T from calibration inputs X (dampened by 1 % of its mean
diagonal, the paper's default), columns are processed left to right in blocks of 128: inside a
block, the weights with the smallest w^2 / [H^-1]_jj^2 are masked (the optimal-brain-surgeon
saliency, chosen per block, or the smallest n of every m for N:M), and every pruned weight's
error is spread onto the not-yet-processed columns through the Cholesky factor of H^-1 —
the remaining weights are updated, not just masked. Layers are done one after another, each
seeing inputs produced by the already-pruned layers before it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn

from edgeprune.config import SparsifyConfig, option
from edgeprune.errors import ConfigError
from edgeprune.registry import register_method
from edgeprune.rules import layers_of_kind
from edgeprune.sparse.masks import SparseMasks
from edgeprune.sparse.nm import check_nm


@torch.no_grad()
def sparsegpt_layer(w: torch.Tensor, h: torch.Tensor, sparsity: float, n: int | None = None, m: int | None = None,
                    blocksize: int = 128, percdamp: float = 0.01) -> torch.Tensor:
    """Prune `w` (out, in) given H = 2 X X^T (in, in); returns the updated weights (masked ones 0)."""
    w = w.clone().double()
    h = h.clone().double()
    cols = w.shape[1]
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    h += percdamp * torch.mean(torch.diag(h)) * torch.eye(cols, dtype=h.dtype)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        w1 = w[:, i1:i2].clone()
        q1 = torch.zeros_like(w1)
        err1 = torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]
        if n is None:
            sal = w1 ** 2 / torch.diag(hinv1).reshape(1, -1) ** 2
            k = int(sal.numel() * sparsity)
            mask1 = torch.zeros_like(w1, dtype=torch.bool)
            if k:
                mask1.view(-1)[torch.topk(sal.flatten(), k, largest=False).indices] = True
        else:
            mask1 = torch.zeros_like(w1, dtype=torch.bool)
        for j in range(i2 - i1):
            wcol = w1[:, j]
            d = hinv1[j, j]
            if n is not None and j % m == 0:
                sal = w1[:, j:j + m] ** 2 / torch.diag(hinv1)[j:j + m].reshape(1, -1) ** 2
                mask1.scatter_(1, j + torch.topk(sal, m - n, dim=1, largest=False).indices, True)
            q = wcol.clone()
            q[mask1[:, j]] = 0
            q1[:, j] = q
            e = (wcol - q) / d
            w1[:, j:] -= e.unsqueeze(1) @ hinv1[j, j:].unsqueeze(0)
            err1[:, j] = e
        w[:, i1:i2] = q1
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    return w


@torch.no_grad()
def sparsegpt(model: nn.Module, data: Iterable, sparsity: float = 0.5, n: int | None = None, m: int | None = None,
              skip: tuple[str, ...] = (), blocksize: int = 128) -> SparseMasks:
    """Prune every Linear layer of `model` in place, in forward order, from calibration `data`."""
    batches = [b[0] if isinstance(b, (tuple, list)) else b for b in data]
    names = list(layers_of_kind(model, ("linear",), skip))
    masks = {}
    model.eval()
    for name in names:
        layer = model.get_submodule(name)
        h = torch.zeros(layer.in_features, layer.in_features, dtype=torch.float64)
        count = [0]

        def hook(mod, args, out):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).double()
            nonlocal h
            h = h * (count[0] / (count[0] + len(x))) + (2.0 / (count[0] + len(x))) * (x.T @ x)
            count[0] += len(x)
        handle = layer.register_forward_hook(hook)
        try:
            for x in batches:
                model(**x) if isinstance(x, dict) else model(x)
        finally:
            handle.remove()
        new = sparsegpt_layer(layer.weight, h, sparsity, n, m, blocksize)
        layer.weight.copy_(new.to(layer.weight.dtype))
        masks[f"{name}.weight" if name else "weight"] = layer.weight != 0
    return SparseMasks(masks)


@register_method("sparsegpt")
@dataclass(frozen=True)
class SparseGPTConfig(SparsifyConfig):
    """SparseGPT: one-shot OBS-style pruning with weight updates, Linear layers (Frantar & Alistarh, ICML 2023)."""

    sparsity: float = option(0.5, "fraction of the prunable weights removed", low=0, high=1, high_open=True)
    n: int | None = option(None, "N of N:M (with --m): N:M masks instead of a fraction", low=1, high=64)
    m: int | None = option(None, "M of N:M", low=2, high=64)
    blocksize: int = option(128, "columns solved at once (the paper's lazy batch updates)", low=1)
    ignore: tuple[str, ...] = option((), "modules whose weights stay dense (module names)", aliases=("--skip",))

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.n is None) != (self.m is None):
            raise ConfigError("sparsegpt: give both n and m for N:M masks, or neither")
        if self.n is not None:
            check_nm(self.n, self.m)

    def masks(self, model: nn.Module, inputs) -> SparseMasks:
        return sparsegpt(model, inputs.calibration("sparsegpt"), self.sparsity, self.n, self.m, skip=self.ignore,
                         blocksize=self.blocksize)
