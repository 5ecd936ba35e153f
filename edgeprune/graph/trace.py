"""Record the ops a model runs on example inputs, at the level pruning rules understand.

Two mechanisms, tried in order:
1. ``fx``: ``torch.fx`` symbolic tracing (modules with a pruning rule stay leaves). When it
   succeeds the op sequence does not depend on the input, so the graph holds for any input.
2. ``runtime``: the model itself runs once under a ``TorchFunctionMode`` that records every
   top-level torch call, plus hooks on leaf modules. It handles data-dependent Python control
   flow (where fx fails), but the graph is the path taken for the example inputs.
Either way the graph is recorded by executing, so values carry real shapes.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

from edgeprune.errors import TraceError
from edgeprune.example_inputs import call_with
from edgeprune.opgraph import OpGraph, OpNode, Value, ValueRef

_ALIASES = {"iadd": "add", "radd": "add", "isub": "sub", "rmul": "mul", "imul": "mul",
            "truediv": "div", "itruediv": "div", "floordiv": "div", "true_divide": "div",
            "rtruediv": "rdiv", "rmatmul": "rmatmul", "multiply": "mul", "subtract": "sub",
            "divide": "div", "concat": "cat", "concatenate": "cat", "swapaxes": "transpose",
            "swapdims": "transpose", "moveaxis": "movedim", "neg": "neg", "absolute": "abs"}


def canonical_name(func: Callable) -> str:
    """`Tensor.__iadd__`, `Tensor.add_`, `operator.add`, `torch.add` -> 'add'."""
    name = getattr(func, "__name__", str(func))
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
    if name.endswith("_") and not name.startswith("_"):
        name = name[:-1]
    return _ALIASES.get(name, name)


class Recorder(TorchFunctionMode):
    def __init__(self, leaf_types: Callable[[nn.Module], bool], model: nn.Module):
        super().__init__()
        self.is_leaf = leaf_types
        self.module_names = {id(m): n for n, m in model.named_modules(remove_duplicate=False)}
        self.param_names: dict[int, str] = {}
        for n, t in list(model.named_parameters(remove_duplicate=False)) + list(
                model.named_buffers(remove_duplicate=False)):
            self.param_names.setdefault(id(t), n)
        self.nodes: list[OpNode] = []
        self.values: dict[int, Value] = {}
        self._by_tensor: dict[int, Value] = {}
        self._alive: list[torch.Tensor] = []  # keeps ids unique while tracing
        self.leaf_depth = 0
        self._pending: list[tuple[list[Value], tuple, dict]] = []
        self.size_reads: list[tuple[int, int]] = []  # (value id, index of the next op): shapes read by code
        self.keep_outputs = False
        self.node_outputs: list[list[torch.Tensor]] = []
        self._scope: list[list] = [[type(model).__name__, {}]]  # [module type, op counts in this call]

    # values ---------------------------------------------------------------
    def _new_value(self, t: torch.Tensor, producer: OpNode | None, param: str | None = None) -> Value:
        v = Value(len(self.values), tuple(t.shape), t.dtype, producer, param)
        self.values[v.id] = v
        self._by_tensor[id(t)] = v
        self._alive.append(t)
        return v

    def lookup(self, t: torch.Tensor) -> Value:
        v = self._by_tensor.get(id(t))
        if v is None:  # parameter used in a functional op, or a constant made outside the trace
            v = self._new_value(t, None, self.param_names.get(id(t)))
        return v

    def _refs(self, args: tuple, kwargs: dict) -> tuple[list[Value], tuple, dict]:
        leaves, _ = tree_flatten((args, kwargs))
        inputs = [self.lookup(t) for t in leaves if isinstance(t, torch.Tensor)]
        wrap = lambda a: ValueRef(self.lookup(a)) if isinstance(a, torch.Tensor) else a  # noqa: E731
        return inputs, tree_map(wrap, args), tree_map(wrap, kwargs)

    def _finish(self, kind: str, target: str, pending, out: Any, module: nn.Module | None) -> None:
        inputs, args, kwargs = pending
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if not outs:
            return
        node = OpNode(len(self.nodes), kind, target, inputs, [], args, kwargs, module)
        frame = self._scope[-1]
        what = target if kind == "function" else type(module).__name__
        node.site = (frame[0], what, frame[1].get(what, 0))  # the n-th such op in this module's code
        frame[1][what] = frame[1].get(what, 0) + 1
        node.outputs = [self._new_value(t, node) for t in outs]
        self.nodes.append(node)
        if self.keep_outputs:
            self.node_outputs.append([t.detach().clone() for t in outs])  # in-place ops follow

    # torch functions ------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.leaf_depth:
            return func(*args, **kwargs)
        pending = self._refs(args, kwargs)
        out = func(*args, **kwargs)
        if isinstance(out, (torch.Size, int)) and pending[0]:  # code read a shape: remember whose
            self.size_reads.append((pending[0][0].id, len(self.nodes)))
        self._finish("function", canonical_name(func), pending, out, None)
        return out

    # modules ---------------------------------------------------------------
    def enter(self, module: nn.Module, args: tuple) -> None:
        if self.leaf_depth == 0:
            self._scope.append([type(module).__name__, {}])

    def leave(self, module: nn.Module, args: tuple, out: Any) -> None:
        if self.leaf_depth == 0:
            self._scope.pop()

    def pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if self.leaf_depth == 0:
            with torch._C.DisableTorchFunction():
                self._pending.append(self._refs(args, kwargs))
        self.leaf_depth += 1

    def post_hook(self, module: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
        self.leaf_depth -= 1
        if self.leaf_depth == 0:
            with torch._C.DisableTorchFunction():
                self._finish("module", self.module_names[id(module)], self._pending.pop(), out, module)


def _fx_trace(model: nn.Module, is_leaf: Callable[[nn.Module], bool]) -> nn.Module:
    class _Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return is_leaf(m)

    graph = _Tracer().trace(model)
    return torch.fx.GraphModule(model, graph)


def run_recorded(rec: "Recorder", model: nn.Module, example_inputs: Any) -> Any:
    """Run `model` on `example_inputs` under `rec` (no grad, hooks removed afterwards)."""
    handles = []
    for m in model.modules():
        if m is model:
            continue
        if rec.is_leaf(m):
            handles.append(m.register_forward_pre_hook(rec.pre_hook, with_kwargs=True))
            handles.append(m.register_forward_hook(rec.post_hook, with_kwargs=True))
        else:
            handles.append(m.register_forward_pre_hook(rec.enter))
            handles.append(m.register_forward_hook(rec.leave))
    try:
        with torch.no_grad(), rec:
            for t in tree_flatten(example_inputs)[0]:
                if isinstance(t, torch.Tensor):
                    rec._new_value(t, None)
            return call_with(model, example_inputs)
    finally:
        for h in handles:
            h.remove()


def trace(model: nn.Module, example_inputs: Any, is_leaf: Callable[[nn.Module], bool] | None = None,
          mechanism: str = "auto") -> OpGraph:
    """Trace `model` on `example_inputs` (a tensor, a tuple of positional inputs, or a dict of
    keyword inputs). `mechanism` is "auto" (fx, then runtime), "fx" or "runtime".

    When torch.fx traces the model symbolically, its op sequence is static, so the ops recorded
    by running the model are the graph for every input (tracer "fx"). Otherwise the record is
    the path taken for these inputs (tracer "runtime", with a warning)."""
    from edgeprune.rules.base import has_rule

    is_leaf = is_leaf or has_rule
    used = "runtime"
    if mechanism in ("auto", "fx"):
        try:
            _fx_trace(model, is_leaf)
            used = "fx"
        except Exception as exc:  # fx raises many types; the reason is reported, not hidden
            if mechanism == "fx":
                raise TraceError(f"torch.fx could not trace {type(model).__name__}: {exc}") from exc
            warnings.warn(f"torch.fx could not trace {type(model).__name__} ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200]}); using the runtime trace, which records "
                          "the path taken for the example inputs only.", stacklevel=2)
    rec = Recorder(is_leaf, model)
    was_training = model.training
    model.eval()
    try:
        try:
            out = run_recorded(rec, model, example_inputs)
        except Exception as exc:
            raise TraceError(f"running {type(model).__name__} on the example inputs failed: "
                             f"{type(exc).__name__}: {exc}\nhelp: pass example inputs the model "
                             "accepts (a tensor, a tuple of positional inputs or a dict).") from exc
    finally:
        model.train(was_training)
    n_inputs = len([t for t in tree_flatten(example_inputs)[0] if isinstance(t, torch.Tensor)])
    inputs = [rec.values[i] for i in range(n_inputs)]  # run_recorded registers them first
    outputs = [rec.lookup(t) for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
    graph = OpGraph(rec.nodes, rec.values, inputs, outputs, used, rec.module_names, rec.param_names)
    graph.size_reads = rec.size_reads
    return graph
