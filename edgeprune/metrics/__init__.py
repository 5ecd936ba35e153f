"""Measuring a model: parameters, MACs, bytes, peak activation memory, measured latency."""
from edgeprune.metrics.measure import (
    ModelStats,
    count_macs,
    count_params,
    measure,
    peak_activation_bytes,
)

__all__ = ["ModelStats", "count_macs", "count_params", "measure", "peak_activation_bytes"]
