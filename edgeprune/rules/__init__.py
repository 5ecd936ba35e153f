"""Pruning rules, one file per family. Importing this package registers them all."""
from edgeprune.rules import attention, conv, embedding, linear, norm, ops, recurrent  # noqa: F401
from edgeprune.rules.base import (
                                  LayerRule,
                                  has_rule,
                                  layer_kind,
                                  layers_of_kind,
                                  register_op,
                                  register_rule,
                                  rule_for,
                                  weight_axes,
)

__all__ = ["LayerRule", "has_rule", "layer_kind", "layers_of_kind", "register_op", "register_rule", "rule_for",
           "weight_axes"]
