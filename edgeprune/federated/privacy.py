"""Membership inference against a federated model, and the MemDefense idea.

The attack is the loss-threshold attack (Yeom, Giacomelli, Fredrikson, Jha, CSF 2018): a sample
whose loss under the model is low is guessed to be a training member. Its strength is the area
under the ROC curve of -loss separating members (windows of the training devices) from
non-members (windows of the held-out users): 0.5 = no better than chance.

MemDefense (Shen, Meng, Xu, Yu, Zhu, IEEE Trans. Big Data 2024) adds pruning perturbations to
each local model every round: parameters that matter little for accuracy but much for the
attack are pruned. Only its abstract is available; this is a RECONSTRUCTION: before uploading,
a device withholds (resets to the global value) the fraction `perturb` of its parameters whose
local change is largest relative to their size, the changes most specific to its own samples."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


@torch.no_grad()
def sample_losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> np.ndarray:
    model.eval()
    out = [torch.nn.functional.cross_entropy(model(x[i:i + batch]), y[i:i + batch], reduction="none")
           for i in range(0, len(y), batch)]
    return torch.cat(out).numpy()


def auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """P(score of a random member > score of a random non-member), ties counted half."""
    s = np.concatenate([member_scores, nonmember_scores])
    ranks = np.empty(len(s))
    order = np.argsort(s, kind="mergesort")
    ranks[order] = np.arange(1, len(s) + 1)
    for v in np.unique(s[np.diff(np.sort(s), prepend=np.nan) == 0]):  # average ranks of ties
        ranks[s == v] = ranks[s == v].mean()
    m = len(member_scores)
    return float((ranks[:m].sum() - m * (m + 1) / 2) / (m * len(nonmember_scores)))


def membership_auc(model: nn.Module, members: tuple[torch.Tensor, torch.Tensor],
                   nonmembers: tuple[torch.Tensor, torch.Tensor]) -> float:
    return auc(-sample_losses(model, *members), -sample_losses(model, *nonmembers))


def perturb_update(local: list[np.ndarray], global_: list[np.ndarray], fraction: float) -> list[np.ndarray]:
    """MemDefense reconstruction: reset the `fraction` of entries with the largest
    |local - global| / (|global| + mean |global|) to their global value, tensor by tensor."""
    out = []
    for w, g in zip(local, global_):
        if w.ndim == 0 or fraction <= 0:
            out.append(w)
            continue
        rel = np.abs(w - g) / (np.abs(g) + np.abs(g).mean() + 1e-12)
        k = int(round(fraction * w.size))
        w = w.copy()
        if k:
            idx = np.argpartition(rel.reshape(-1), -k)[-k:]
            w.reshape(-1)[idx] = g.reshape(-1)[idx]
        out.append(w)
    return out
