"""Importance criteria: one file each, registered by name. A criterion scores the units of one
ChannelGroup (higher = more important) from a uniform units x features view of its tensors."""
from edgeprune.criteria import activation, bn_scale, fpgm, magnitude, random_, taylor  # noqa: F401
from edgeprune.criteria.base import (
    CRITERIA,
    Criterion,
    get_criterion,
    register_criterion,
    unit_views,
)

__all__ = ["CRITERIA", "Criterion", "get_criterion", "register_criterion", "unit_views"]
