"""`sparsify(model, config)`: unstructured or N:M sparsity by any registered method config
(edgeprune.registry.METHODS, verb "sparsify"), on a copy of the model, then fine-tuning that
holds the masks, and the storage each format would take.

    r = ep.sparsify(model, WandaConfig(sparsity=0.5), data=batches)
    r = ep.sparsify(model, GMPConfig(sparsity=0.9), task=task, finetune=TrainConfig(epochs=4))
    r.model, r.masks.sparsity(), r.details["storage_int8_bytes"]
"""
from __future__ import annotations

import copy
import itertools
from dataclasses import replace
from typing import Any, Iterable

from torch import nn

from edgeprune.api import PruneResult
from edgeprune.config import SparsifyConfig
from edgeprune.errors import ConfigError
from edgeprune.hooks import MaskHolder
from edgeprune.metrics import measure
from edgeprune.sparse import prunable_weights, storage_report
from edgeprune.sparse.base import SparsifyInputs
from edgeprune.surgery.plan import PrunePlan
from edgeprune.training import TrainConfig, train


def sparsify(model: nn.Module, config: SparsifyConfig, *, data: Iterable | None = None, task=None,
             finetune: TrainConfig | None = None, example_inputs: Any = None,
             calibration_batches: int = 8) -> PruneResult:
    """A masked copy of `model`. `data`: calibration batches for data-aware methods (default:
    the first `calibration_batches` of `task.train`); `task` + `finetune`: training data and
    the fine-tuning that methods pruning while training run, or that follows a one-shot method
    with the masks held. With `example_inputs`, figures before and after are measured."""
    if not isinstance(config, SparsifyConfig):
        raise ConfigError(f"sparsify takes a sparsify method's config, got {type(config).__name__}; "
                          "structured methods go through edgeprune.prune")
    work = copy.deepcopy(model).eval()
    calib = list(data) if data is not None else \
        (list(itertools.islice(task.train, calibration_batches)) if task is not None else None)
    tuning = finetune is not None and finetune.epochs > 0 and task is not None
    run = (lambda m, hooks: train(m, task.train, task.val, replace(finetune, keep_best=False), methods=hooks)) \
        if tuning else None
    inputs = SparsifyInputs(calib, run, finetune.epochs * len(task.train) if tuning else 0)
    masks = config.masks(work, inputs)
    masks.apply_(work)
    if run is not None and not config.trains:
        run(work, [MaskHolder(masks)])
        masks.apply_(work)
    weights = {k: v.detach() for k, v in prunable_weights(work, getattr(config, "ignore", ())).items()}
    total = sum(w.numel() for w in weights.values())
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    details = {"method": config.method, "sparsity": zeros / max(total, 1),
               "storage_int8_bytes": storage_report(weights, 1)}
    before = measure(model, example_inputs) if example_inputs is not None else None
    after = measure(work, example_inputs) if example_inputs is not None else None
    return PruneResult(work.eval(), PrunePlan(), before, after, None, "", masks=masks, details=details)


__all__ = ["sparsify"]
