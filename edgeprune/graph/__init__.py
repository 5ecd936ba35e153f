"""Model -> OpGraph (trace) -> channel units and groups (coupling). Never mutates the model."""
from edgeprune.opgraph import OpGraph, OpNode, Value
from edgeprune.graph.trace import trace

__all__ = ["OpGraph", "OpNode", "Value", "trace"]
