"""Recovering accuracy after pruning: fine-tuning and distillation live in edgeprune.training;
this package holds the retraining-free path for devices that cannot train (survey sec. 4.2):
batch-norm re-calibration and least-squares reconstruction from a few calibration samples."""
from edgeprune.recovery.bn_recalibrate import bn_recalibrate
from edgeprune.recovery.reconstruct import reconstruct

__all__ = ["bn_recalibrate", "reconstruct"]
