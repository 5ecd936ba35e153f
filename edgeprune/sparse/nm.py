"""N:M semi-structured sparsity (NVIDIA ASP, Mishra et al. 2021, arXiv 2104.08378): in every
block of M consecutive weights along a row's input dimension, keep the N largest in magnitude
(2:4 is what sparse tensor cores run at twice the dense speed)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgeprune.config import SparsifyConfig, option
from edgeprune.errors import ConfigError
from edgeprune.registry import register_method
from edgeprune.sparse.masks import SparseMasks, prunable_weights


def check_nm(n: int, m: int) -> None:
    """N:M keeps N of every M weights: 1 <= N < M."""
    ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (n, m)) and 1 <= n < m <= 64
    if not ok:
        raise ConfigError(f"N:M sparsity keeps N of every M weights and needs 1 <= N < M <= 64 (e.g. 2:4), "
                          f"got {n}:{m}")


def nm_mask(w: torch.Tensor, n: int = 2, m: int = 4) -> torch.Tensor:
    check_nm(n, m)
    rows = w.detach().reshape(w.shape[0], -1)
    if rows.shape[1] % m:
        raise ConfigError(f"an N:M mask needs a row width divisible by {m}, got {rows.shape[1]}")
    blocks = rows.abs().reshape(rows.shape[0], -1, m)
    keep = torch.zeros_like(blocks, dtype=torch.bool)
    keep.scatter_(2, blocks.topk(n, dim=2).indices, True)
    return keep.reshape(w.shape)


def nm_masks(model: nn.Module, n: int = 2, m: int = 4, skip: tuple[str, ...] = ()) -> SparseMasks:
    """N:M masks for every layer whose rows divide into blocks of M (others are left dense)."""
    out = {}
    for name, w in prunable_weights(model, skip).items():
        if w[0].numel() % m == 0:
            out[name] = nm_mask(w, n, m)
    return SparseMasks(out)


@register_method("nm")
@dataclass(frozen=True)
class NMConfig(SparsifyConfig):
    """N:M semi-structured sparsity: the N largest of every M weights kept (NVIDIA ASP)."""

    n: int = option(2, "N of N:M: weights kept in every block", low=1, high=64)
    m: int = option(4, "M of N:M: the block length along a row", low=2, high=64)
    ignore: tuple[str, ...] = option((), "modules whose weights stay dense (module names)", aliases=("--skip",))

    def __post_init__(self) -> None:
        super().__post_init__()
        check_nm(self.n, self.m)

    def masks(self, model: nn.Module, inputs) -> SparseMasks:
        return nm_masks(model, self.n, self.m, self.ignore)
