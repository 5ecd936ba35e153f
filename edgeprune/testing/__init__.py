"""Helpers for tests and sweeps: random weights that make verification meaningful, toy nets."""
from edgeprune.testing.randomize import randomize_

__all__ = ["randomize_"]
