from edgeprune.export.onnx import export_onnx
from edgeprune.export.safe import load_pruned, save_pruned

__all__ = ["export_onnx", "load_pruned", "save_pruned"]
