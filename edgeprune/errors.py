"""Typed errors. Each message says what is wrong and how to fix it."""
from __future__ import annotations


class EdgePruneError(Exception):
    """Base class of every error edgeprune raises on purpose."""


class UnsupportedLayerError(EdgePruneError):
    """A module or op the engine has no rule for touches a prunable channel."""

    def __init__(self, what: str, where: str):
        super().__init__(
            f"edgeprune has no pruning rule for {what} (at {where}).\n"
            "help: either register a rule for it with "
            "`edgeprune.register_rule(YourModule)` (see edgeprune/rules/base.py), "
            f"or leave it alone with `ignore=[{where!r}]` in PruneConfig."
        )
        self.what, self.where = what, where


class TraceError(EdgePruneError):
    """The model could not be run on the example inputs."""


class VerificationError(EdgePruneError):
    """The pruned model does not match the masked original."""


class ConfigError(EdgePruneError, ValueError):
    """A user-supplied option is invalid."""


class PlanMismatchError(EdgePruneError):
    """A saved pruning plan does not fit the model it is applied to."""
