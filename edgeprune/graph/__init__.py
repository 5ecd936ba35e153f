"""Model -> OpGraph (trace) -> channel units and groups (coupling). Never mutates the model."""
from edgeprune.graph.trace import trace
from edgeprune.opgraph import OpGraph, OpNode, Value

__all__ = ["OpGraph", "OpNode", "Value", "trace"]
