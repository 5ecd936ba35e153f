"""Exports for deployment: ONNX (checked in ONNX Runtime), fully-integer .tflite (tflite.py),
int8 calibration in ONNX Runtime (quantize.py). Saving a pruned model: edgeprune.model_io."""
from edgeprune.export.onnx import export_onnx

__all__ = ["export_onnx"]
