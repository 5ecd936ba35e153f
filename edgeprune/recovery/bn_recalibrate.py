"""Batch-norm re-calibration: after channels are removed, the statistics a batch norm saw in
training no longer describe its input. Re-estimate running mean and variance on a few
calibration batches (forward passes only, no gradients, no labels)."""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from edgeprune.example_inputs import call_with
from edgeprune.registry import RECOVERIES
from edgeprune.rules import layers_of_kind


@torch.no_grad()
def bn_recalibrate(model: nn.Module, data: Iterable, batches: int | None = None) -> nn.Module:
    """Reset every batch norm's running statistics and re-estimate them (cumulative average)
    on `data` (tensors, or (inputs, targets) pairs). Returns `model` in eval mode."""
    norms = [m for m in layers_of_kind(model, ("batch_norm",)).values() if m.track_running_stats]
    if not norms:
        return model.eval()
    momenta = {m: m.momentum for m in norms}
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch counts the same
    model.train()
    try:
        for i, batch in enumerate(data):
            if batches is not None and i >= batches:
                break
            call_with(model, batch[0] if isinstance(batch, (tuple, list)) else batch)
    finally:
        for m, mom in momenta.items():
            m.momentum = mom
        model.eval()
    return model


@RECOVERIES.register("bn_recalibrate")
def bn_recalibrate_recovery(original, pruned, plan, task, config, calib) -> None:
    """Batch-norm statistics re-estimated on calibration samples, no training."""
    from edgeprune.data import calibration_batches
    bn_recalibrate(pruned, calib or calibration_batches(task, config.calibration))
