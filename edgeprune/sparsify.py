"""Unstructured / N:M sparsification by method name (the CLI's `sparsify`), with fine-tuning
that holds the masks, and the storage each format would take."""
from __future__ import annotations

from torch import nn

from edgeprune.errors import ConfigError
from edgeprune.sparse import (
    DynamicNetworkSurgery,
    DynamicPruningFeedback,
    SparseMasks,
    cubic_sparsity,
    global_magnitude,
    iterative_magnitude,
    lamp_masks,
    layer_magnitude,
    nm_masks,
    prunable_weights,
    sparsegpt,
    storage_report,
    wanda_masks,
)
from edgeprune.training import TrainConfig, train

SPARSE_METHODS = ("magnitude", "layer_magnitude", "lamp", "nm", "wanda", "sparsegpt", "gmp", "iterative", "dns", "dpf")


def sparsify(model: nn.Module, method: str, sparsity: float, task=None, finetune_epochs: int = 0,
             n: int = 2, m: int = 4, lr: float = 1e-3, seed: int = 0, skip: tuple[str, ...] = (),
             rounds: int = 3) -> tuple[SparseMasks, dict]:
    """Mask `model` in place by `method`; fine-tune with the masks held when `task` and epochs
    are given (`gmp` prunes gradually over the first two thirds of them; `iterative` runs
    `rounds` prune-retrain rounds of `finetune_epochs` each; `dns` and `dpf` train with a
    masked forward and dense updates, `dns` with its thresholds' `c` set by bisection on the
    pretrained weights to reach about `sparsity`). Returns the masks and a report (sparsity,
    storage in bytes for int8 values)."""
    if method not in SPARSE_METHODS:
        raise ConfigError(f"unknown sparsity method {method!r}; choose one of {SPARSE_METHODS}")
    if not 0.0 <= sparsity < 1.0:
        raise ConfigError("sparsity must be in [0, 1)")
    if method == "nm":
        from edgeprune.sparse.nm import check_nm
        check_nm(n, m)
    choose = {"magnitude": lambda mod, s: global_magnitude(mod, s, skip),
              "layer_magnitude": lambda mod, s: layer_magnitude(mod, s, skip),
              "lamp": lambda mod, s: lamp_masks(mod, s, skip),
              "gmp": lambda mod, s: layer_magnitude(mod, s, skip)}
    if method == "iterative":
        def retrain(mod, masks):
            if task is not None and finetune_epochs > 0:
                train(mod, task.train, task.val, TrainConfig(epochs=finetune_epochs, lr=lr, seed=seed, keep_best=False),
                      on_step=lambda mm, step: masks.apply_(mm))
        masks = iterative_magnitude(model, sparsity, rounds, retrain, skip=skip)
    elif method in ("dns", "dpf"):
        masks = _train_dense_sparse(model, method, sparsity, task, finetune_epochs, lr, seed, skip)
    elif method == "gmp":
        if task is None or finetune_epochs < 1:
            raise ConfigError("gmp prunes while training: give data and finetune_epochs >= 1")
        end = max(1, (2 * finetune_epochs * len(task.train)) // 3)
        state = {"masks": SparseMasks()}

        def on_step(mod, step):
            if step <= end and (step % 20 == 0 or step == end):
                state["masks"] = choose["gmp"](mod, cubic_sparsity(step, sparsity, 0, end))
            state["masks"].apply_(mod)
        train(model, task.train, task.val, TrainConfig(epochs=finetune_epochs, lr=lr, seed=seed, keep_best=False),
              on_step=on_step)
        masks = state["masks"]
    else:
        if method == "nm":
            masks = nm_masks(model, n, m, skip)
        elif method == "wanda":
            if task is None:
                raise ConfigError("wanda needs calibration data")
            batches = [b for _, b in zip(range(8), task.train)]
            masks = wanda_masks(model, batches, sparsity, skip=skip)
        elif method == "sparsegpt":
            if task is None:
                raise ConfigError("sparsegpt needs calibration data")
            batches = [b for _, b in zip(range(8), task.train)]
            masks = sparsegpt(model, batches, sparsity, skip=skip)  # Linear layers only
        else:
            masks = choose[method](model, sparsity)
        masks.apply_(model)
        if task is not None and finetune_epochs > 0:
            train(model, task.train, task.val, TrainConfig(epochs=finetune_epochs, lr=lr, seed=seed, keep_best=False),
                  on_step=lambda mod, step: masks.apply_(mod))
    masks.apply_(model)
    weights = {k: v.detach() for k, v in prunable_weights(model, skip).items()}
    total = sum(w.numel() for w in weights.values())
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    return masks, {"sparsity": zeros / max(total, 1), "storage_int8_bytes": storage_report(weights, 1)}


def _train_dense_sparse(model: nn.Module, method: str, sparsity: float, task, epochs: int, lr: float, seed: int,
                        skip: tuple[str, ...]) -> SparseMasks:
    if task is None or epochs < 1:
        raise ConfigError(f"{method} prunes while training: give data and finetune_epochs >= 1")
    cfg = TrainConfig(epochs=epochs, lr=lr, seed=seed, keep_best=False)
    if method == "dpf":
        dpf = DynamicPruningFeedback(sparsity, end=max(1, (2 * epochs * len(task.train)) // 3), skip=skip)
        train(model, task.train, task.val, cfg, before_forward=dpf.before_forward, after_backward=dpf.after_backward)
        return dpf.finalize(model)
    weights = list(prunable_weights(model, skip).values())
    lo, hi = -1.0, 4.0  # c: thresholds mu + c sigma; more c, more pruned
    for _ in range(30):
        mid = (lo + hi) / 2
        probe = DynamicNetworkSurgery(c=mid, skip=skip)
        pruned = sum(int((w.abs() < probe.thresholds(w)[0]).sum()) for w in weights)
        lo, hi = (mid, hi) if pruned < sparsity * sum(w.numel() for w in weights) else (lo, mid)
    dns = DynamicNetworkSurgery(c=(lo + hi) / 2, skip=skip)
    dns.update(model)
    every = 10

    def before(mod, step):
        if step % every == 0:
            dns.update(mod)
        dns.forward_weights(mod)
    train(model, task.train, task.val, cfg, before_forward=before, after_backward=dns.restore)
    dns.masks.apply_(model)
    return dns.masks
