"""Read-only records of one traced execution: tensor values, the ops between them, and the
slots (axes) that can carry channels. The bottom of the engine: rules, the tracer and the
coupling all read these records; nothing here imports them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

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


class Slot(NamedTuple):
    """One axis that can carry channels: dim `dim` of a traced value (kind "v", key = value id)
    or of a parameter or buffer (kind "p", key = its qualified name)."""

    kind: str
    key: int | str
    dim: int

    @classmethod
    def of(cls, v: Value, dim: int) -> "Slot":
        """Axis `dim` of a traced value; a parameter used outside a leaf module is named by its tensor."""
        return cls("p", v.param, dim) if v.param else cls("v", v.id, dim)

    @classmethod
    def param(cls, name: str, dim: int) -> "Slot":
        return cls("p", name, dim)
