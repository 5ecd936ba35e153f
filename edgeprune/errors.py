"""Typed errors. Each message says what is wrong and how to fix it."""
from __future__ import annotations


class EdgePruneError(Exception):
    """Base class of every error edgeprune raises on purpose."""


class UnsupportedLayerError(EdgePruneError):
    """A module or op the engine has no rule for touches a prunable channel."""

    def __init__(self, op: str, where: str):
        super().__init__(
            f"edgeprune has no pruning rule for op '{op}' ({where}), and it touches channels that "
            "could otherwise be pruned.\n"
            f"help: register a rule for it, `@edgeprune.register_op('{op}')` for a torch op or "
            "`@edgeprune.register_rule(ModuleType)` for a module (see edgeprune/rules/base.py), "
            "or keep the channels it touches with PruneConfig(strict=False)."
        )
        self.op, self.where = op, where


class TraceError(EdgePruneError):
    """The model could not be run on the example inputs."""


class VerificationError(EdgePruneError):
    """The pruned model does not match the masked original."""


class ConfigError(EdgePruneError, ValueError):
    """A user-supplied option is invalid."""


class PlanMismatchError(EdgePruneError):
    """A saved pruning plan does not fit the model it is applied to."""
