"""Pruning methods of the survey, one file per paper. Training-time methods are objects the
user steps from their own loop (`regularizer.penalty(model)` added to the loss, or
`pruner.step(epoch)`), then `finalize()` removes channels physically through edgeprune.prune."""
from edgeprune.methods.fbs import FBSConv, add_fbs, dynamic_macs
from edgeprune.methods.group_lasso import GroupLasso
from edgeprune.methods.layer_pruning import block_scores, prune_layers
from edgeprune.methods.polarization import Polarization
from edgeprune.methods.red import merge_redundant
from edgeprune.methods.slimming import NetworkSlimming
from edgeprune.methods.soft_filter import SoftFilterPruning
from edgeprune.methods.taylor_reallocation import (
           TaylorReallocation,
           TaylorReallocationConfig,
           train_to_rate,
)

__all__ = ["FBSConv", "TaylorReallocation", "TaylorReallocationConfig", "add_fbs", "dynamic_macs", "train_to_rate", "GroupLasso", "NetworkSlimming", "Polarization", "SoftFilterPruning", "block_scores", "merge_redundant",
           "prune_layers"]
