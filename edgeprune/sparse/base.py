"""What an unstructured / N:M method receives from `edgeprune.sparsify`: calibration batches
for data-aware methods, and for methods that prune while training (GMP, iterative pruning,
DNS, DPF) a `train` callable that runs the fine-tuning with the method's hooks (so this
package never imports the training loop)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from edgeprune.errors import ConfigError
from edgeprune.hooks import TrainingHooks


@dataclass
class SparsifyInputs:
    data: list | None = None  # calibration batches: inputs, or (inputs, targets)
    train: Callable[[nn.Module, list[TrainingHooks]], None] | None = None  # fine-tuning with hooks
    steps: int = 0  # optimiser steps that `train` takes (for schedules)

    def calibration(self, method: str) -> list:
        if not self.data:
            raise ConfigError(f"{method} needs calibration data (data=[batches]; on the command line, --data)")
        return self.data

    def training(self, method: str) -> Callable[[nn.Module, list[TrainingHooks]], None]:
        if self.train is None or self.steps < 1:
            raise ConfigError(f"{method} prunes while training: give training data and at least one fine-tuning "
                              "epoch (--finetune-epochs 1 or more)")
        return self.train
