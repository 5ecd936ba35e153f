"""PruneFL: adaptive unstructured pruning during federated learning (Jiang, Wang, Valls, Ko, Lee,
Leung, Tassiulas, IEEE TNNLS 2022, arXiv 1909.12326), after its official code's adaptive step.

The server keeps one mask over the conv/linear weights. Every `interval` rounds the devices
also send the squared gradients they accumulated (of every weight, pruned ones included); the
server then drops up to `max_drop` (30 %) of the kept weights with the smallest magnitude and
re-adds weights in decreasing order of g^2 / t while that ratio exceeds the current objective
sum_kept g^2 / (c + sum_kept t): the estimated loss reduction per unit of round time. As in the
official code, t is per layer: computation seconds per weight (here: the layer's MACs per
weight x 3 (forward + backward) x samples per round x seconds per MAC, the last measured from
the devices' reported training time and MACs) plus communication seconds per weight (4 bytes
down and up over a `link_mbps` link: an assumed figure). c, the fixed cost of a round, is
`overhead` times the round time of the dense model. Once the density is below 0.9, weights
travel as their kept values only (the mask, as packed bits, only when it changed).

Initial pruning (the paper's first stage, on one selected device before federated training):
that device trains on its own data, accumulates squared gradients, and from the iteration at
which its training accuracy reaches 1.5 / classes adjusts the mask every `interval` passes;
it stops when five adjustments in a row changed the density by at most 10 % (the official
defaults: ADJ_THR_FACTOR, IP_THR) or after `max_iterations` passes.

Simplifications: a pass over the device's data stands for the official code's batch group;
the max-drop half-life is not applied (it is 10,000 rounds there)."""
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
           max_drop: float = 0.3, overhead: float = 0.1, times: list[float] | None = None) -> dict[int, np.ndarray]:
    """One adaptive step (see the module docstring); returns the new masks. `times`: seconds
    per weight of each prunable tensor (uniform when None)."""
    w = np.concatenate([np.abs(weights[i]).reshape(-1) for i in idx])
    g = np.concatenate([grad2[k].reshape(-1) for k in range(len(idx))])
    t = np.concatenate([np.full(weights[i].size, 1.0 if times is None else float(times[k]))
                        for k, i in enumerate(idx)])
    m = np.concatenate([masks[i].reshape(-1) for i in idx]) if masks else np.ones_like(w, dtype=bool)
    kept = np.nonzero(m)[0]
    drop = kept[np.argsort(w[kept], kind="stable")[: int(max_drop * len(kept))]]
    m = m.copy()
    m[drop] = False
    c = overhead * float(t.sum())
    gain, time_ = float(g[m].sum()), float(t[m].sum())
    for j in np.argsort(-g / t, kind="stable"):
        if m[j]:
            continue
        if g[j] / t[j] <= gain / (c + time_):
            break
        m[j] = True
        gain += float(g[j])
        time_ += float(t[j])
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


def macs_per_weight(model, example, keys: list[str], idx: list[int]) -> list[float]:
    """MACs per sample each weight of the prunable tensors takes part in (a conv weight once per
    output position, a linear weight once per output row)."""
    import torch

    from edgeprune.rules import layer_kind
    modules = dict(model.named_modules())
    out: dict[str, float] = {}
    hooks = []
    for i in idx:
        name = keys[i].rsplit(".", 1)[0]

        def hook(mod, inp, res, name=name):
            positions = res[0].numel() // res.shape[1] if layer_kind(mod) in ("conv", "conv_transpose") else \
                res[0].numel() // res.shape[-1]
            out[name] = float(positions)
        hooks.append(modules[name].register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.eval()(example[:1])
    finally:
        for h in hooks:
            h.remove()
    return [out[keys[i].rsplit(".", 1)[0]] for i in idx]


def weight_times(macs_per_w: list[float], samples: int, seconds_per_mac: float, link_mbps: float) -> list[float]:
    """Seconds a round spends per weight of each prunable tensor: 3 x MACs (forward + backward)
    over the round's samples, plus 4 bytes down and 4 up over the link."""
    comm = 8 * 8 / (link_mbps * 1e6)
    return [3 * m * samples * seconds_per_mac + comm for m in macs_per_w]


def initial_pruning(model, x, y, idx: list[int], lr: float = 0.05, batch_size: int = 32, interval: int = 5,
                    max_iterations: int = 100, threshold: float = 0.1, patience: int = 5, seed: int = 0,
                    times: list[float] | None = None) -> tuple[dict[int, np.ndarray], int]:
    """PruneFL's first stage on one device's data (see the module docstring); trains `model` in
    place and returns (masks, passes over the data)."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    keys = list(model.state_dict())
    named = dict(model.named_parameters())
    prunable = [keys[i] for i in idx]
    classes = int(y.max()) + 1
    loader = DataLoader(TensorDataset(x, y), batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    masks: dict[int, np.ndarray] = {}
    grad2 = {k: torch.zeros_like(named[k]) for k in prunable}
    start, history, it = None, [], 0
    for it in range(1, max_iterations + 1):
        model.train()
        correct = 0
        for xb, yb in loader:
            out = model(xb)
            loss = torch.nn.functional.cross_entropy(out, yb)
            opt.zero_grad()
            loss.backward()
            for k in prunable:
                grad2[k] += named[k].grad.detach() ** 2
            opt.step()
            with torch.no_grad():
                for i, m in masks.items():
                    named[keys[i]].mul_(torch.from_numpy(m))
            correct += int((out.argmax(1) == yb).sum())
        if start is None and correct / len(y) >= 1.5 / classes:
            start = it
        if start is not None and (it - start) % interval == 0:
            weights = [v.detach().numpy() for v in model.state_dict().values()]
            before = density(masks)
            masks = adjust(weights, [grad2[k].numpy() for k in prunable], masks, idx, times=times)
            grad2 = {k: torch.zeros_like(named[k]) for k in prunable}
            with torch.no_grad():
                for i, m in masks.items():
                    named[keys[i]].mul_(torch.from_numpy(m))
            history.append(abs(density(masks) / before - 1) <= threshold)
            if len(history) >= patience and all(history[-patience:]):
                break
    return masks, it
