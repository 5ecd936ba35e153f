"""edgeprune: pruning that makes PyTorch models fit IoT devices.

One verb per transformation, each taking a method's config (registered by name):
`prune` (structured, verified), `sparsify` (unstructured / N:M), `search` (per-layer widths
for a budget), `prune_while_training` (methods that act during training); `recover` brings
accuracy back. `list_methods()` and `method_config(name, **options)` reach the catalogue."""
from edgeprune import rules  # noqa: F401  (registers the layer rules)
from edgeprune.api import PruneConfig, PruneResult, prune
from edgeprune.config import config_from_dict
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
from edgeprune.methods.while_training import prune_while_training
from edgeprune.metrics import ModelStats, measure
from edgeprune.model_io import load_pruned, save_pruned
from edgeprune.recovery import RecoveryConfig, recover
from edgeprune.registry import list_methods, method_config, register_method
from edgeprune.rules import LayerRule, register_op, register_rule
from edgeprune.search.job import search
from edgeprune.sparsify import sparsify
from edgeprune.surgery import PrunePlan, apply_plan
from edgeprune.verify import VerifyReport, verify

__version__ = "0.1.0"
__all__ = ["ChannelGroup", "ConfigError", "EdgePruneError", "LayerRule", "ModelStats", "PlanMismatchError",
           "PruneConfig", "PrunePlan", "PruneResult", "RecoveryConfig", "TraceError", "UnsupportedLayerError",
           "VerificationError", "VerifyReport", "apply_plan", "build_groups", "config_from_dict", "export_onnx",
           "list_methods", "load_pruned", "measure", "method_config", "prune", "prune_while_training", "recover",
           "register_criterion", "register_method", "register_op", "register_rule", "save_pruned", "search",
           "sparsify", "trace", "verify"]
