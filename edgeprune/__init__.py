"""edgeprune: pruning that makes PyTorch models fit IoT devices."""
from edgeprune import rules  # noqa: F401  (registers the layer rules)
from edgeprune.api import PruneConfig, PruneResult, prune
from edgeprune.criteria import register_criterion
from edgeprune.errors import (
                              ConfigError,
                              EdgePruneError,
                              PlanMismatchError,
                              TraceError,
                              UnsupportedLayerError,
                              VerificationError,
)
from edgeprune.export import export_onnx
from edgeprune.graph import trace
from edgeprune.graph.coupling import ChannelGroup, build_groups
from edgeprune.metrics import ModelStats, measure
from edgeprune.model_io import load_pruned, save_pruned
from edgeprune.rules import LayerRule, register_op, register_rule
from edgeprune.surgery import PrunePlan, apply_plan
from edgeprune.verify import VerifyReport, verify

__version__ = "0.1.0"
__all__ = ["ChannelGroup", "ConfigError", "EdgePruneError", "LayerRule", "ModelStats", "PlanMismatchError",
           "PruneConfig", "PrunePlan", "PruneResult", "TraceError", "UnsupportedLayerError", "VerificationError",
           "VerifyReport", "apply_plan", "build_groups", "export_onnx", "load_pruned", "measure", "prune",
           "register_criterion", "register_op", "register_rule", "save_pruned", "trace", "verify"]
