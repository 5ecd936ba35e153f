"""Membership inference against federated models, and the MemDefense idea.

The attack is the loss-threshold attack (Yeom, Giacomelli, Fredrikson, Jha, CSF 2018): a sample
whose loss under the model is low is guessed to be a training member. Its strength is the area
under the ROC curve of -loss separating members from non-members: 0.5 = no better than chance.
A curious server can run it on the global model or, much more effectively, on each device's
upload (the local model after training on that device's few samples).

Non-members must not overlap members: HAPT windows overlap by half, so a random split of windows
leaks (a held-out window shares half its samples with its neighbours). `block_split` holds out
blocks of consecutive windows and drops the training windows next to them.

MemDefense (Shen, Meng, Xu, Yu, Zhu, IEEE Trans. Big Data 2024) adds crafted pruning
perturbations to each local model every round: a parameter filter picks parameters that matter
little for accuracy but much for the attack, and a noise generator searches the pruning that
lowers the attack while keeping accuracy. Only its abstract is available; `memdefense` is a
RECONSTRUCTION of that outline. The device keeps a few of its samples out of training as a
reference (non-member) set. The filter takes the conv/linear weights whose pruning costs
little accuracy (first-order Taylor score on the reference loss below its median) and ranks
them by how much pruning each narrows the gap between the reference and the member loss (what
the attack measures; first order). The search tries growing numbers of the top-ranked weights
and keeps the pruning whose local attack AUC is closest to 0.5 while the reference accuracy
drops by at most `tolerance`. In federated use a weight is pruned back to the value the device
received (its local update is pruned), which bounds the damage; zeroing weights reaches lower
attack AUCs but at a steep accuracy cost. Measured (docs/federated.md, docs/memdefense): this
lowers the attack on uploads, but on CIFAR-10 resetting the same number of RANDOM weights of the
update gave a better accuracy for the same attack AUC: the reconstruction does not beat that
control."""
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


def calibrated_membership_auc(model: nn.Module, before: nn.Module, members: tuple[torch.Tensor, torch.Tensor],
                              nonmembers: tuple[torch.Tensor, torch.Tensor]) -> float:
    """The attack on an upload by a server that knows the model it sent (`before`): the score is
    how much local training lowered a sample's loss (difficulty calibration, Watson, Guo, Cormode,
    Sablayrolles, ICLR 2022), so samples that are merely easy do not look like members."""
    def drop(x, y):
        return sample_losses(before, x, y) - sample_losses(model, x, y)
    return auc(drop(*members), drop(*nonmembers))


def block_split(n: int, fraction: float, generator: torch.Generator, block: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Split positions 0..n-1 of time-ordered, half-overlapping windows into (kept, held):
    `fraction` of the blocks of `block` consecutive windows are held, and kept windows adjacent to
    a held one are dropped, so no kept window shares a sample with a held one."""
    blocks = max(1, -(-n // block))
    nheld = int(round(fraction * blocks))
    if fraction <= 0 or nheld == 0:
        return torch.arange(n), torch.zeros(0, dtype=torch.long)
    chosen = torch.randperm(blocks, generator=generator)[:nheld]
    held_mask = torch.zeros(n, dtype=torch.bool)
    for b in chosen.tolist():
        held_mask[b * block:(b + 1) * block] = True
    near = held_mask.clone()
    near[1:] |= held_mask[:-1]
    near[:-1] |= held_mask[1:]
    return torch.nonzero(~near).flatten(), torch.nonzero(held_mask).flatten()


def kernel_weights(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.ndim > 1]  # conv and linear kernels


def _grads(model: nn.Module, loss: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, kernel_weights(model)))


def _mean_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(model(x), y)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model(x).argmax(1) == y).float().mean())


def memdefense(model: nn.Module, members: tuple[torch.Tensor, torch.Tensor],
               reference: tuple[torch.Tensor, torch.Tensor], max_fraction: float = 0.1, tolerance: float = 0.01,
               steps: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0), quantile: float = 0.5,
               start: nn.Module | None = None, search: bool = True, members_per_reference: int = 2) -> dict:
    """Prune `model` in place against membership inference (reconstruction, see the module text).
    Returns what was chosen: {"fraction", "auc_before", "auc_after", "acc_before", "acc_after"} and
    "passes", the forward-pass equivalents spent (a backward counts as two forwards). With
    `search=False` the top `max_fraction` of the ranking is pruned without the search (to map
    the trade-off). At most `members_per_reference` members per reference sample are used."""
    model.eval()
    rx, ry = reference
    if len(ry) == 0:
        raise ValueError("memdefense needs a non-empty reference set of samples the model was not trained on")
    if len(members[1]) > members_per_reference * len(ry):  # a fixed sample of the members keeps the cost down
        pick = torch.randperm(len(members[1]), generator=torch.Generator().manual_seed(0))
        pick = pick[:members_per_reference * len(ry)]
        members = (members[0][pick], members[1][pick])
    mx, my = members
    weights = kernel_weights(model)
    # what "pruning" a weight sets it to: zero, or with `start` (the model the device received) its
    # value there, which prunes the local update of that weight rather than the weight
    floor = [torch.zeros_like(w) for w in weights] if start is None else [w.detach().clone() for w in kernel_weights(start)]
    with torch.enable_grad():
        g_acc = _grads(model, _mean_loss(model, rx, ry))
        g_gap = _grads(model, _mean_loss(model, rx, ry) - _mean_loss(model, mx, my))
    with torch.no_grad():
        change = [w - f for w, f in zip(weights, floor)]  # pruning moves each weight by -change
        acc_cost = torch.cat([(d * g).abs().flatten() for d, g in zip(change, g_acc)])
        gap_drop = torch.cat([(d * g).flatten() for d, g in zip(change, g_gap)])  # pruning lowers the gap by ~this
        # the filter: among weights that matter little for accuracy (below the `quantile` of the
        # accuracy scores), those whose removal narrows the member/reference gap the most
        score = gap_drop.clone()
        cut = acc_cost.kthvalue(max(1, min(len(acc_cost), int(round(quantile * len(acc_cost)))))).values
        score[(gap_drop <= 0) | (acc_cost > cut)] = -float("inf")
        order = torch.argsort(score, descending=True)
        useful = int(torch.isfinite(score).sum())
        flat = torch.cat([w.detach().flatten() for w in weights])
        flat_floor = torch.cat([f.flatten() for f in floor])

        def apply(k: int) -> None:
            values = flat.clone()
            values[order[:k]] = flat_floor[order[:k]]
            pos = 0
            for w in weights:
                w.copy_(values[pos:pos + w.numel()].view_as(w))
                pos += w.numel()

        auc0, acc0 = membership_auc(model, members, reference), accuracy(model, rx, ry)
        best = (abs(auc0 - 0.5), 0, auc0, acc0)
        passes = 3 * (2 * len(ry) + len(my)) + 2 * len(ry) + len(my)
        for s in steps:
            k = min(useful, int(round(s * max_fraction * flat.numel())))
            if k == 0:
                continue
            apply(k)
            passes += 2 * len(ry) + len(my)
            a, acc = membership_auc(model, members, reference), accuracy(model, rx, ry)
            if not search or (acc >= acc0 - tolerance and abs(a - 0.5) < best[0]):
                best = (abs(a - 0.5), k, a, acc)
        apply(best[1])
    return {"fraction": best[1] / flat.numel(), "auc_before": auc0, "auc_after": best[2], "acc_before": acc0,
            "acc_after": best[3], "passes": passes}
