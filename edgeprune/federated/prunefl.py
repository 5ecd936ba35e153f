"""PruneFL: adaptive unstructured pruning during federated learning (Jiang, Wang, Valls, Ko, Lee,
Leung, Tassiulas, IEEE TNNLS 2022, arXiv 1909.12326), after its official code's adaptive step.

The server keeps one mask over the conv/linear weights. Every `interval` rounds the devices
also send the squared gradients they accumulated (of every weight, pruned ones included); the
server then drops up to `max_drop` (30 %) of the kept weights with the smallest magnitude and
re-adds weights in decreasing order of g^2 / t while that ratio exceeds the current objective
sum_kept g^2 / (c + sum_kept t): the estimated loss reduction per unit of round time. Here t is
the same for every weight (one unit of compute and traffic) and c, the fixed cost of a round,
is `overhead` times the number of prunable weights. Once the density is below 0.9, weights
travel as their kept values only (the mask, as packed bits, only when it changed).

Simplifications: no initial pruning on a powerful client (training starts dense; the first
adjustment prunes); per-parameter times are uniform instead of measured."""
from __future__ import annotations

import numpy as np

SPARSE_BELOW = 0.9  # TO_SPARSE_THR of the official code


def prunable_indices(keys: list[str], shapes: list[tuple[int, ...]]) -> list[int]:
    return [i for i, (k, s) in enumerate(zip(keys, shapes)) if k.endswith("weight") and len(s) >= 2]


def pack(arrays: list[np.ndarray], masks: dict[int, np.ndarray] | None, send_masks: bool) -> list[np.ndarray]:
    """Kept values of masked tensors (dense otherwise), then the packed masks if `send_masks`."""
    out = []
    for i, a in enumerate(arrays):
        out.append(a[masks[i]].astype(np.float32) if masks and i in masks else a.astype(np.float32))
    if masks and send_masks:
        out += [np.packbits(masks[i].reshape(-1)) for i in sorted(masks)]
    return out


def unpack(arrays: list[np.ndarray], shapes: list[tuple[int, ...]], masks: dict[int, np.ndarray] | None
           ) -> list[np.ndarray]:
    out = []
    for i, (a, s) in enumerate(zip(arrays, shapes)):
        if masks and i in masks:
            if a.size != int(masks[i].sum()):
                raise ValueError(f"tensor {i}: {a.size} values for {int(masks[i].sum())} kept weights")
            dense = np.zeros(s, dtype=np.float32)
            dense[masks[i]] = a
            out.append(dense)
        else:
            if tuple(a.shape) != tuple(s):
                raise ValueError(f"tensor {i}: shape {a.shape}, expected {s}")
            out.append(a.astype(np.float32))
    return out


def read_masks(tail: list[np.ndarray], shapes: list[tuple[int, ...]], idx: list[int]) -> dict[int, np.ndarray]:
    return {i: np.unpackbits(b)[:int(np.prod(shapes[i]))].astype(bool).reshape(shapes[i]) for i, b in zip(idx, tail)}


def adjust(weights: list[np.ndarray], grad2: list[np.ndarray], masks: dict[int, np.ndarray], idx: list[int],
           max_drop: float = 0.3, overhead: float = 0.1) -> dict[int, np.ndarray]:
    """One adaptive step (see the module docstring); returns the new masks."""
    w = np.concatenate([np.abs(weights[i]).reshape(-1) for i in idx])
    g = np.concatenate([grad2[k].reshape(-1) for k in range(len(idx))])
    m = np.concatenate([masks[i].reshape(-1) for i in idx]) if masks else np.ones_like(w, dtype=bool)
    kept = np.nonzero(m)[0]
    drop = kept[np.argsort(w[kept], kind="stable")[: int(max_drop * len(kept))]]
    m = m.copy()
    m[drop] = False
    c = overhead * len(w)
    gain, time_ = float(g[m].sum()), float(m.sum())
    for j in np.argsort(-g, kind="stable"):
        if m[j]:
            continue
        if g[j] <= gain / (c + time_):
            break
        m[j] = True
        gain += float(g[j])
        time_ += 1.0
    out, pos = {}, 0
    for i in idx:
        n = weights[i].size
        out[i] = m[pos:pos + n].reshape(weights[i].shape)
        pos += n
    return out


def density(masks: dict[int, np.ndarray]) -> float:
    if not masks:
        return 1.0
    return float(sum(m.sum() for m in masks.values()) / sum(m.size for m in masks.values()))
