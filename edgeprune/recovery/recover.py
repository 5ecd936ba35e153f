"""`recover(original, pruned, plan, task, RecoveryConfig(...))`: accuracy back after pruning,
by a recovery registered by name (edgeprune.registry.RECOVERIES): fine-tuning, distillation
from the unpruned model, or, without training, least-squares reconstruction or batch-norm
re-calibration from calibration samples. The same names mean the same thing in every command
(`prune`, `sparsify`, `search`, `fit`)."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from edgeprune.errors import ConfigError
from edgeprune.registry import RECOVERIES


@dataclass(frozen=True)
class RecoveryConfig:
    method: str = "finetune"  # a RECOVERIES name ("bn-recalibrate" is accepted for "bn_recalibrate")
    epochs: int = 4  # fine-tuning / distillation epochs
    lr: float = 1e-3
    calibration: int = 1000  # training samples for the retraining-free recoveries
    least_squares_first: bool = False  # reconstruct before fine-tuning (fit does: training starts closer)
    distill_alpha: float = 0.7  # weight of the teacher's soft targets (distill)
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", self.method.replace("-", "_"))
        RECOVERIES.get(self.method)
        if self.epochs < 0 or self.lr <= 0 or self.calibration < 1:
            raise ConfigError("recovery: epochs must be >= 0, lr > 0 and calibration >= 1")
        if not 0.0 <= self.distill_alpha <= 1.0:
            raise ConfigError(f"recovery: distill_alpha must be in [0, 1], got {self.distill_alpha}")


def recover(original: nn.Module, pruned: nn.Module, plan, task, config: RecoveryConfig | None = None, *,
            data: list | None = None) -> nn.Module:
    """Recover `pruned` in place (and return it) by `config.method`; `original` is the model
    before pruning (the teacher, the least-squares target), `plan` what was removed; `data`:
    calibration batches to use (default: the first `config.calibration` training samples)."""
    from edgeprune.data import calibration_batches
    config = config or RecoveryConfig()
    calib = data
    if config.least_squares_first and config.method != "none":
        from edgeprune.recovery.reconstruct import reconstruct
        calib = calib or calibration_batches(task, config.calibration)
        reconstruct(original, pruned, plan, calib, samples=config.calibration)
    RECOVERIES.get(config.method).obj(original, pruned, plan, task, config, calib)
    return pruned.eval()


@RECOVERIES.register("none")
def no_recovery(original, pruned, plan, task, config, calib) -> None:
    """Nothing: the pruned model as it is."""


__all__ = ["RecoveryConfig", "recover"]
