"""Importance criteria: one file each, registered by name (found by edgeprune.registry
without a list here). A criterion scores the units of one ChannelGroup (higher = more
important) from a uniform units x features view of its tensors."""
from edgeprune.criteria.base import Criterion, get_criterion, register_criterion, unit_views
from edgeprune.registry import CRITERIA

__all__ = ["CRITERIA", "Criterion", "get_criterion", "register_criterion", "unit_views"]
