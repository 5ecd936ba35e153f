"""Unstructured and semi-structured (N:M) sparsity: masks over weights (the model keeps its
shapes), the methods that choose them, and storage formats that make the zeros pay off."""
from edgeprune.sparse.dns import DynamicNetworkSurgery
from edgeprune.sparse.dpf import DynamicPruningFeedback
from edgeprune.sparse.iterative import iterative_magnitude
from edgeprune.sparse.lamp import lamp_masks, lamp_scores
from edgeprune.sparse.masks import (
           SparseMasks,
           global_magnitude,
           layer_magnitude,
           prunable_weights,
)
from edgeprune.sparse.nm import nm_masks
from edgeprune.sparse.schedules import GradualMagnitudePruning, cubic_sparsity
from edgeprune.sparse.sparsegpt import sparsegpt, sparsegpt_layer
from edgeprune.sparse.storage import bitmask_bytes, csr_bytes, storage_report
from edgeprune.sparse.wanda import input_norms, wanda_masks

__all__ = ["DynamicNetworkSurgery", "DynamicPruningFeedback", "GradualMagnitudePruning", "SparseMasks", "bitmask_bytes", "csr_bytes",
           "cubic_sparsity", "global_magnitude", "iterative_magnitude", "lamp_masks", "lamp_scores", "layer_magnitude", "nm_masks",
           "prunable_weights", "storage_report", "input_norms", "wanda_masks", "sparsegpt", "sparsegpt_layer"]
