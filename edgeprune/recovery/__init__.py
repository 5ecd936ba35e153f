"""Recovering accuracy after pruning, one recovery per file, registered by name:
fine-tuning and distillation (finetune.py), and the retraining-free path for devices that
cannot train (survey sec. 4.2): least-squares reconstruction and batch-norm re-calibration
from a few calibration samples. `recover(...)` runs any of them (recover.py)."""
from edgeprune.recovery.bn_recalibrate import bn_recalibrate
from edgeprune.recovery.reconstruct import reconstruct
from edgeprune.recovery.recover import RecoveryConfig, recover

__all__ = ["RecoveryConfig", "bn_recalibrate", "reconstruct", "recover"]
