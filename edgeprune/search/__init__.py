"""Searching per-layer widths under a budget: the channel space with its cost model, and the
search methods of the survey (AMC's DDPG agent, ABCPruner's bee colony, DSA's differentiable
allocation), each in its own file."""
from edgeprune.search.space import (
    BilinearCost,
    ChannelSpace,
    check_reachable,
    scale_to_budget,
)

__all__ = ["BilinearCost", "ChannelSpace", "check_reachable", "scale_to_budget"]
