"""Read-only records of one traced execution: tensor values and the ops between them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass(eq=False)
class Value:
    """One tensor seen during the trace. `param` is set when it is a parameter/buffer."""

    id: int
    shape: tuple[int, ...]
    dtype: torch.dtype
    producer: "OpNode | None" = None
    param: str | None = None  # qualified name, for parameters used outside leaf modules

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


class ValueRef:
    """Stands in for a tensor inside an op's recorded args/kwargs."""

    __slots__ = ("value",)

    def __init__(self, value: Value):
        self.value = value

    def __repr__(self) -> str:
        return f"%{self.value.id}{list(self.value.shape)}"


@dataclass(eq=False)
class OpNode:
    """One call: a leaf module (kind='module') or a torch function/method (kind='function')."""

    index: int
    kind: str  # "module" | "function"
    target: str  # module qualified name, or canonical op name ("add", "cat", ...)
    inputs: list[Value]
    outputs: list[Value]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    module: nn.Module | None = None
    site: tuple = ()  # (enclosing module type, op, ordinal in that call): same code, same site

    def arg(self, position: int, name: str, default: Any = None) -> Any:
        """Positional-or-keyword argument after the call (position counts `self` for methods)."""
        if name in self.kwargs:
            return self.kwargs[name]
        if position < len(self.args):
            return self.args[position]
        return default

    def __repr__(self) -> str:
        ins = ", ".join(f"%{v.id}" for v in self.inputs)
        outs = ", ".join(f"%{v.id}" for v in self.outputs)
        return f"[{self.index}] {outs} = {self.target}({ins})"


@dataclass
class OpGraph:
    """Ops in execution order, with the model's input and output values."""

    nodes: list[OpNode]
    values: dict[int, Value]
    inputs: list[Value]
    outputs: list[Value]
    tracer: str  # "fx" or "runtime": which mechanism produced the op sequence
    module_names: dict[int, str]  # id(module) -> qualified name
    param_names: dict[int, str]  # id(tensor) -> qualified name
    size_reads: list[tuple[int, int]] = field(default_factory=list)  # (value id, next op index)

    def module_nodes(self) -> list[OpNode]:
        return [n for n in self.nodes if n.kind == "module"]

    def __repr__(self) -> str:
        return f"OpGraph({len(self.nodes)} ops, tracer={self.tracer})\n" + "\n".join(map(repr, self.nodes))
