"""What a model is called with: one tensor, a tuple of positional arguments, or a dict of
keyword arguments (the `example_inputs` every entry point takes)."""
from __future__ import annotations

from typing import Any, Callable


def call_with(fn: Callable, example_inputs: Any) -> Any:
    """`fn(**inputs)` for a dict, `fn(*inputs)` for a tuple or list, else `fn(inputs)`."""
    if isinstance(example_inputs, dict):
        return fn(**example_inputs)
    if isinstance(example_inputs, (tuple, list)):
        return fn(*example_inputs)
    return fn(example_inputs)
