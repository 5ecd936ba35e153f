"""One function, `measure`, returns every figure; the others are its parts."""
from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from edgeprune.example_inputs import call_with
from edgeprune.graph.trace import trace
from edgeprune.opgraph import OpGraph, OpNode
from edgeprune.rules.base import rule_for


@dataclass
class ModelStats:
    params: int
    macs: int
    fp32_bytes: int
    int8_bytes: int
    peak_activation_bytes: int
    latency_ms: float | None = None  # PyTorch, batch 1, one thread, median
    onnx_latency_ms: float | None = None  # ONNX Runtime, same conditions

    def to_dict(self) -> dict:
        return asdict(self)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _function_macs(node: OpNode) -> int:
    t = node.target
    if t in ("matmul", "bmm", "mm", "rmatmul") and len(node.inputs) >= 2:
        a = node.inputs[0] if t != "rmatmul" else node.inputs[1]
        return node.outputs[0].numel * a.shape[-1]
    if t == "linear":
        return node.outputs[0].numel * node.inputs[0].shape[-1]
    if t.startswith("conv") and len(node.inputs) >= 2:
        w = node.inputs[1]
        k = math.prod(w.shape[2:])
        if "transpose" in t:
            return node.inputs[0].numel * w.shape[1] * k
        return node.outputs[0].numel * w.shape[1] * k
    if t == "scaled_dot_product_attention":
        q, k, v = node.inputs[:3]
        return q.numel * k.shape[-2] + node.outputs[0].numel * v.shape[-2]
    return 0


def count_macs(model: nn.Module, example_inputs: Any, graph: OpGraph | None = None) -> int:
    """Multiply-accumulates of one forward pass on `example_inputs` (use batch size 1)."""
    graph = graph or trace(model, example_inputs)
    total = 0
    for node in graph.nodes:
        if node.kind == "module":
            total += rule_for(node.module).macs(node.module, node)
        else:
            total += _function_macs(node)
    return int(total)


def activation_timeline(graph: OpGraph, element_bytes: int | None = None) -> tuple[int, list[int]]:
    """Bytes of the inputs, and of the activations alive just after each op, when the ops run
    one after another in the traced order (a value lives from its producer to its last
    consumer). With `element_bytes`, floating-point values count that many bytes per element."""
    last_use: dict[int, int] = {}
    for node in graph.nodes:
        for v in node.inputs:
            last_use[v.id] = node.index
    for v in graph.outputs:
        last_use[v.id] = len(graph.nodes)

    def nbytes(v) -> int:
        if v.dtype.is_floating_point:
            return v.numel * (element_bytes or torch.finfo(v.dtype).bits // 8)
        return v.numel * 8
    live = start = sum(nbytes(v) for v in graph.inputs)
    frees: dict[int, int] = {}
    for v in graph.values.values():
        if v.param is None and v.id in last_use:
            frees[last_use[v.id]] = frees.get(last_use[v.id], 0) + nbytes(v)
    out = []
    for node in graph.nodes:
        live += sum(nbytes(v) for v in node.outputs)
        out.append(live)
        live -= frees.get(node.index, 0)
    return start, out


def peak_activation_bytes(graph: OpGraph, element_bytes: int | None = None) -> int:
    """Largest total size of the activations alive at once (see activation_timeline)."""
    start, timeline = activation_timeline(graph, element_bytes)
    return int(max([start] + timeline))


def _bytes(model: nn.Module) -> tuple[int, int]:
    fp32 = int8 = 0
    for t in list(model.parameters()) + list(model.buffers()):
        if not t.is_floating_point():
            continue
        fp32 += t.numel() * 4
        # int8 weights (matrices and kernels); vectors (biases, norms) stay 32-bit
        int8 += t.numel() if t.ndim >= 2 else t.numel() * 4
    return fp32, int8


def _median_ms(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def torch_latency_ms(model: nn.Module, example_inputs: Any, repeats: int = 30) -> float:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    was = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return _median_ms(lambda: call_with(model, example_inputs), repeats)
    finally:
        torch.set_num_threads(threads)
        model.train(was)


def onnx_latency_ms(model: nn.Module, example_inputs: Any, repeats: int = 30) -> float:
    import onnxruntime as ort

    from edgeprune.export.onnx import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.onnx")
        export_onnx(model, example_inputs, path, check=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        flat = [t for t in tree_flatten(example_inputs)[0] if isinstance(t, torch.Tensor)]
        feed = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), flat)}
        return _median_ms(lambda: sess.run(None, feed), repeats)


def measure(model: nn.Module, example_inputs: Any, *, latency: bool = False, onnx: bool = False,
            repeats: int = 30) -> ModelStats:
    """All figures for `model` on `example_inputs` (batch 1). Latency is measured by running
    the model (PyTorch, and ONNX Runtime when `onnx`), one thread, median of `repeats`."""
    graph = trace(model, example_inputs)
    fp32, int8 = _bytes(model)
    stats = ModelStats(count_params(model), count_macs(model, example_inputs, graph), fp32, int8,
                       peak_activation_bytes(graph))
    if latency:
        stats.latency_ms = torch_latency_ms(model, example_inputs, repeats)
    if onnx:
        stats.onnx_latency_ms = onnx_latency_ms(model, example_inputs, repeats)
    return stats
