"""Filterlet pruning (Han, Xiao, Li, "DTMM: Deploying TinyML Models on Extremely Weak IoT
Devices with Pruning", INFOCOM 2024, arXiv 2401.09068).

The pruning unit is a *filterlet*: one 1 x 1 x C_in column of a convolution's kernel, i.e. the
weights of every input channel at one spatial position of one filter. Pruning whole columns
keeps the inner loop of a microcontroller convolution (over input channels) dense and
contiguous, so the sparse model can run with SIMD, unlike single-weight sparsity. Here the
columns with the smallest L2 norm go, at one fraction per layer or by one global ranking;
linear layers (no spatial position) are left dense. Simplified: DTMM's compact storage
(FWCS) and its search for per-layer filterlet / filter ratios under flash and RAM limits are
not implemented, and the norm is our choice of importance (the stored sources do not give
DTMM's)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgeprune.config import SparsifyConfig, option
from edgeprune.registry import register_method
from edgeprune.rules import layers_of_kind, weight_axes
from edgeprune.sparse.masks import SparseMasks


def filterlet_norms(w: torch.Tensor, in_axis: int) -> torch.Tensor:
    """L2 norm of every filterlet of a kernel: the weight with its input-channel axis reduced."""
    return w.detach().float().pow(2).sum(in_axis).sqrt()


def filterlet_masks(model: nn.Module, sparsity: float, scope: str = "layer",
                    skip: tuple[str, ...] = ()) -> SparseMasks:
    """Masks that remove `sparsity` of the filterlets of every convolution (or of all of them
    together, `scope="global"`), each mask constant along the input channels."""
    convs = {n: m for n, m in layers_of_kind(model, ("conv",), skip).items() if m.weight.ndim > 2}
    norms = {n: filterlet_norms(m.weight, weight_axes(m)[1]) for n, m in convs.items()}
    if scope == "global" and norms:
        flat = torch.cat([v.flatten() for v in norms.values()])
        k = int(round(sparsity * flat.numel()))
        thr = flat.kthvalue(k).values if k else flat.min() - 1
        keep = {n: v > thr for n, v in norms.items()}
    else:
        keep = {}
        for n, v in norms.items():
            k = int(round(sparsity * v.numel()))
            order = torch.argsort(v.flatten(), stable=True)
            flat = torch.ones(v.numel(), dtype=torch.bool)
            flat[order[:k]] = False
            keep[n] = flat.view_as(v)
    out = {}
    for n, m in convs.items():
        axis = weight_axes(m)[1]
        out[f"{n}.weight" if n else "weight"] = keep[n].unsqueeze(axis).expand_as(m.weight).clone()
    return SparseMasks(out)


@register_method("filterlet")
@dataclass(frozen=True)
class FilterletConfig(SparsifyConfig):
    """Filterlet pruning: whole 1x1xC_in kernel columns removed, so MCU kernels stay dense inside (DTMM, Han et al., INFOCOM 2024)."""

    sparsity: float = option(0.5, "fraction of each convolution's filterlets removed", low=0, high=1, high_open=True)
    scope: str = option("layer", "the same fraction in every layer, or one global ranking of the norms",
                        choices=("layer", "global"))
    ignore: tuple[str, ...] = option((), "modules whose weights stay dense (module names)", aliases=("--skip",))

    def masks(self, model: nn.Module, inputs) -> SparseMasks:
        return filterlet_masks(model, self.sparsity, self.scope, self.ignore)
