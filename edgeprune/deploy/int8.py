"""An int8 model for microcontrollers, and its Python reference.

The float model is traced into a list of ops the C kernels implement (convolution 1-D/2-D
with groups, linear, ReLU, max pooling, global average pooling, residual add, flatten); batch
norms are folded into the convolution before them and a ReLU into the op before it. A float
executor runs that op list and must reproduce the model (checked), then activation ranges are
calibrated on real samples (min-max, per tensor, asymmetric int8) and weights quantized per
output channel (symmetric int8, int32 biases). Rescaling between layers is integer only: a
32-bit multiplier and a right shift with rounding (floor((acc * m0 + 2^(r-1)) / 2^r)), the
arithmetic TFLite Micro and CMSIS-NN use. `Int8Model.run` is the reference the generated C
must equal bit for bit.

Simplification: one input and one output tensor, batch 1, the op set above; anything else is
refused with the op's name."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import torch
from torch import nn

from edgeprune.errors import ConfigError
from edgeprune.graph.trace import trace
from edgeprune.rules import layer_kind

_ALIASES = ("flatten", "view", "reshape", "dropout", "contiguous", "identity")


@dataclass
class QParams:
    scale: float
    zero: int


@dataclass
class Op:
    kind: str  # conv, linear, relu, maxpool, gap, add, alias
    inputs: list[int]
    output: int
    attrs: dict = field(default_factory=dict)  # float weights first, int8 tensors after quantization


def requant_params(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Real multipliers m (> 0) as int32 m0 in [2^30, 2^31) and right shifts r: x*m ~ x*m0 / 2^r."""
    m = np.atleast_1d(np.asarray(m, dtype=np.float64))
    frac, exp = np.frexp(m)
    m0 = np.round(frac * (1 << 31)).astype(np.int64)
    over = m0 == (1 << 31)
    m0[over] //= 2
    exp[over] += 1
    shift = 31 - exp
    if (shift < 1).any() or (shift > 62).any():
        raise ConfigError("a requantisation multiplier is out of the int32 fixed-point range (scales are degenerate)")
    return m0.astype(np.int64), shift.astype(np.int64)


def rshift_round(p: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """floor((p + 2^(shift-1)) / 2^shift) on int64, as the C kernels compute it."""
    return (p + (np.int64(1) << (shift - 1))) >> shift


class Int8Model:
    """Ops with int8 weights and integer rescaling; `run` is the bit-exact reference."""

    def __init__(self, ops: list[Op], shapes: dict[int, tuple[int, ...]], qparams: dict[int, QParams],
                 input_id: int, output_id: int):
        self.ops, self.shapes, self.q = ops, shapes, qparams
        self.input_id, self.output_id = input_id, output_id

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        q = self.q[self.input_id]
        return np.clip(np.round(np.asarray(x, dtype=np.float64) / q.scale) + q.zero, -128, 127).astype(np.int8)

    def dequantize_output(self, y: np.ndarray) -> np.ndarray:
        q = self.q[self.output_id]
        return (y.astype(np.float64) - q.zero) * q.scale

    def run(self, x_q: np.ndarray) -> np.ndarray:
        """int8 input (one sample, no batch dim) -> int8 output."""
        vals = {self.input_id: np.asarray(x_q, dtype=np.int64).reshape(self.shapes[self.input_id])}
        for op in self.ops:
            vals[op.output] = _run_int(op, [vals[i] for i in op.inputs], self)
        return vals[self.output_id].astype(np.int8)

    def weight_bytes(self) -> int:
        total = 0
        for op in self.ops:
            if op.kind in ("conv", "linear"):
                total += op.attrs["w_q"].size + 4 * op.attrs["b_q"].size + 8 * op.attrs["m0"].size
        return total


def _run_int(op: Op, xs: list[np.ndarray], model: Int8Model) -> np.ndarray:
    q = model.q
    a = op.attrs
    if op.kind == "alias":
        return xs[0].reshape(model.shapes[op.output])
    zi, zo = q[op.inputs[0]].zero, q[op.output].zero
    if op.kind in ("conv", "linear"):
        x = xs[0] - zi
        w = a["w_q"].astype(np.int64)
        if op.kind == "linear":
            acc = w @ x.reshape(-1) + a["b_q"]
            acc = acc[:, None]
        else:
            acc = _conv_int(x, w, a)
            acc = acc.reshape(acc.shape[0], -1) + a["b_q"][:, None]
        y = rshift_round(acc * a["m0"][:, None], a["shift"][:, None]) + zo
        if a["relu"]:
            y = np.maximum(y, zo)
        return np.clip(y, -128, 127).reshape(model.shapes[op.output])
    if op.kind == "relu":
        return np.maximum(xs[0], zi)
    if op.kind == "maxpool":
        return _maxpool_int(xs[0], a).reshape(model.shapes[op.output])
    if op.kind == "gap":
        x = xs[0] - zi
        acc = x.reshape(x.shape[0], -1).sum(1)
        y = rshift_round(acc * a["m0"][0], a["shift"][0]) + zo
        return np.clip(y, -128, 127).reshape(model.shapes[op.output])
    if op.kind == "add":
        z2 = q[op.inputs[1]].zero
        y = (rshift_round((xs[0] - zi) * a["m0"][0], a["shift"][0])
             + rshift_round((xs[1] - z2) * a["m0"][1], a["shift"][1]) + zo)
        if a["relu"]:
            y = np.maximum(y, zo)
        return np.clip(y, -128, 127)
    raise AssertionError(op.kind)


def _conv_int(x: np.ndarray, w: np.ndarray, a: dict) -> np.ndarray:
    """Direct convolution in integers; x already minus its zero point (so zero padding is exact)."""
    t = torch.from_numpy(x[None].astype(np.float64))
    wt = torch.from_numpy(w.astype(np.float64))
    f = torch.nn.functional.conv1d if a["dims"] == 1 else torch.nn.functional.conv2d
    out = f(t, wt, None, a["stride"], a["padding"], 1, a["groups"])[0]
    return np.round(out.numpy()).astype(np.int64)  # exact: integer sums far below 2^53


def _maxpool_int(x: np.ndarray, a: dict) -> np.ndarray:
    t = torch.from_numpy(x[None].astype(np.float64))
    f = torch.nn.functional.max_pool1d if a["dims"] == 1 else torch.nn.functional.max_pool2d
    pad = a["padding"]
    if (pad if isinstance(pad, int) else max(pad)) > 0:  # padding counts as -128, below every value
        t = torch.nn.functional.pad(t, [p for p in ([pad] * 2 if a["dims"] == 1 else
                                                    [pad[1], pad[1], pad[0], pad[0]])], value=-128.0)
    return f(t, a["kernel"], a["stride"], 0)[0].numpy().astype(np.int64)


# ---- building the op list ------------------------------------------------------------
def _tup(v, n: int) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


def build_ops(model: nn.Module, example: torch.Tensor) -> tuple[list[Op], dict, int, int]:
    model = model.eval()
    graph = trace(model, example)
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ConfigError("int8 deployment supports models with one input and one output tensor")
    consumers: dict[int, int] = {}
    for n in graph.nodes:
        for v in n.inputs:
            consumers[v.id] = consumers.get(v.id, 0) + 1
    shapes = {v.id: tuple(v.shape[1:]) for v in graph.values.values() if v.param is None}
    ops: list[Op] = []
    produced_by: dict[int, Op] = {}
    for node in graph.nodes:
        ins = [v for v in node.inputs if v.param is None]
        out = node.outputs[0] if node.outputs else None
        m = node.module
        t = node.target if node.kind == "function" else type(m).__name__
        kind = layer_kind(m) if node.kind == "module" else None
        if kind == "conv" and len(m.kernel_size) in (1, 2):
            if m.padding_mode != "zeros" or _tup(m.dilation, 1)[0] != 1 or isinstance(m.padding, str):
                raise ConfigError(f"{node.target}: only zero padding given as numbers, dilation 1, is deployed")
            dims = len(m.kernel_size)
            op = Op("conv", [ins[0].id], out.id, {
                "w": m.weight.detach().double().clone(),
                "b": (m.bias.detach().double().clone() if m.bias is not None else torch.zeros(m.out_channels, dtype=torch.float64)),
                "dims": dims, "stride": _tup(m.stride, dims)[0] if dims == 1 else _tup(m.stride, 2),
                "padding": _tup(m.padding, dims)[0] if dims == 1 else _tup(m.padding, 2), "groups": m.groups,
                "relu": False, "name": node.target})
        elif kind == "linear":
            op = Op("linear", [ins[0].id], out.id, {"w": m.weight.detach().double().clone(),
                    "b": (m.bias.detach().double().clone() if m.bias is not None else torch.zeros(m.out_features, dtype=torch.float64)),
                    "relu": False, "name": node.target})
        elif kind == "batch_norm":
            prev = produced_by.get(ins[0].id)
            if prev is None or prev.kind != "conv" or prev.attrs["relu"] or consumers.get(ins[0].id, 0) != 1:
                raise ConfigError(f"{node.target}: a batch norm is deployed only folded into the convolution before it")
            s = (m.weight.detach().double() if m.affine else 1.0) / torch.sqrt(m.running_var.double() + m.eps)
            shift = (m.bias.detach().double() if m.affine else 0.0) - m.running_mean.double() * s
            prev.attrs["w"] = prev.attrs["w"] * s.view(-1, *[1] * (prev.attrs["w"].ndim - 1))
            prev.attrs["b"] = prev.attrs["b"] * s + shift
            _rename(prev, out.id, produced_by)
            continue
        elif t in ("relu", "relu_", "ReLU"):
            prev = produced_by.get(ins[0].id)
            if prev is not None and prev.kind in ("conv", "linear", "add") and not prev.attrs.get("relu") \
                    and consumers.get(ins[0].id, 0) == 1:
                prev.attrs["relu"] = True  # fused
                _rename(prev, out.id, produced_by)
                continue
            op = Op("relu", [ins[0].id], out.id)
        elif t in ("max_pool1d", "max_pool2d"):
            dims = 1 if t.endswith("1d") else 2
            k = node.arg(1, "kernel_size")
            s = node.arg(2, "stride") or k
            p = node.arg(3, "padding", 0)
            if node.arg(4, "dilation", 1) not in (1, (1, 1), [1, 1]) or node.arg(5, "ceil_mode", False):
                raise ConfigError(f"{t}: dilation and ceil_mode are not deployed")
            op = Op("maxpool", [ins[0].id], out.id, {"dims": dims, "kernel": _tup(k, dims) if dims == 2 else _tup(k, 1)[0],
                                                     "stride": _tup(s, dims) if dims == 2 else _tup(s, 1)[0],
                                                     "padding": _tup(p, dims) if dims == 2 else _tup(p, 1)[0]})
        elif t in ("adaptive_avg_pool1d", "adaptive_avg_pool2d"):
            size = node.arg(1, "output_size")
            if any(s != 1 for s in _tup(size, 2 if t.endswith("2d") else 1)):
                raise ConfigError(f"{t}: only global average pooling (output size 1) is deployed")
            op = Op("gap", [ins[0].id], out.id)
        elif t in ("add", "add_", "iadd") and len(ins) == 2:
            op = Op("add", [ins[0].id, ins[1].id], out.id, {"relu": False})
        elif t in _ALIASES or type(m).__name__ in ("Flatten", "Dropout", "Identity"):
            op = Op("alias", [ins[0].id], out.id)
        else:
            raise ConfigError(f"op {t!r} ({node.site[0] if node.site else ''}) has no int8 C kernel; deployable: "
                              "Conv1d/2d (+BatchNorm, groups), Linear, ReLU, max pooling, global average pooling, "
                              "residual add, flatten/reshape")
        ops.append(op)
        produced_by[op.output] = op
    return ops, shapes, graph.inputs[0].id, graph.outputs[0].id


def _rename(op: Op, new_out: int, produced_by: dict) -> None:
    produced_by.pop(op.output, None)
    op.output = new_out
    produced_by[new_out] = op


def _run_float(ops: list[Op], shapes: dict, x: torch.Tensor, input_id: int, record: dict | None = None) -> dict:
    vals = {input_id: x.double().reshape(shapes[input_id])}
    F = torch.nn.functional
    for op in ops:
        a, xs = op.attrs, [vals[i] for i in op.inputs]
        if op.kind == "conv":
            f = F.conv1d if a["dims"] == 1 else F.conv2d
            y = f(xs[0][None], a["w"], a["b"], a["stride"], a["padding"], 1, a["groups"])[0]
        elif op.kind == "linear":
            y = a["w"] @ xs[0].reshape(-1) + a["b"]
        elif op.kind == "relu":
            y = xs[0].clamp_min(0)
        elif op.kind == "maxpool":
            f = F.max_pool1d if a["dims"] == 1 else F.max_pool2d
            y = f(xs[0][None], a["kernel"], a["stride"], a["padding"])[0]
        elif op.kind == "gap":
            y = xs[0].reshape(xs[0].shape[0], -1).mean(1)
        elif op.kind == "add":
            y = xs[0] + xs[1]
        else:
            y = xs[0]
        if a.get("relu"):
            y = y.clamp_min(0)
        vals[op.output] = y.reshape(shapes[op.output])
        if record is not None:
            for vid in (op.output,):
                lo, hi = record.get(vid, (math.inf, -math.inf))
                record[vid] = (min(lo, float(y.min())), max(hi, float(y.max())))
    return vals


def _qparams(lo: float, hi: float) -> QParams:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    zero = int(np.clip(round(-128 - lo / scale), -128, 127))
    return QParams(float(scale), zero)


def quantize_model(model: nn.Module, example: torch.Tensor, calibration: Iterable, samples: int = 500) -> Int8Model:
    """Trace, fold, check the float op list against `model`, calibrate, quantize."""
    ops, shapes, in_id, out_id = build_ops(model, example)
    with torch.no_grad():
        want = model.eval()(example).double().reshape(-1)
    got = _run_float(ops, shapes, example[0], in_id)[out_id].reshape(-1)
    if not torch.allclose(got, want, rtol=1e-4, atol=1e-5 * float(want.abs().max() + 1)):
        raise ConfigError("the deployable op list does not reproduce the model (an op was misread); "
                          f"max difference {float((got - want).abs().max()):.3g}")
    ranges: dict[int, tuple[float, float]] = {}
    seen = 0
    for batch in calibration:
        xb = batch[0] if isinstance(batch, (tuple, list)) else batch
        for x in xb:
            lo, hi = ranges.get(in_id, (math.inf, -math.inf))
            ranges[in_id] = (min(lo, float(x.min())), max(hi, float(x.max())))
            _run_float(ops, shapes, x, in_id, ranges)
            seen += 1
            if seen >= samples:
                break
        if seen >= samples:
            break
    if not seen:
        raise ConfigError("int8 calibration needs at least one sample")
    q: dict[int, QParams] = {in_id: _qparams(*ranges[in_id])}
    for op in ops:  # ops that do not rescale share their input's parameters
        if op.kind in ("relu", "maxpool", "alias"):
            q[op.output] = q[op.inputs[0]]
        else:
            q[op.output] = _qparams(*ranges[op.output])
    for op in ops:
        a, si, so = op.attrs, q[op.inputs[0]].scale, q[op.output].scale
        if op.kind in ("conv", "linear"):
            w = a["w"].numpy()
            wmax = np.abs(w.reshape(w.shape[0], -1)).max(1)
            sw = np.where(wmax > 0, wmax / 127.0, 1.0)
            a["w_q"] = np.clip(np.round(w / sw.reshape(-1, *[1] * (w.ndim - 1))), -127, 127).astype(np.int8)
            a["w_scale"] = sw  # per output channel (the .tflite export needs it)
            a["b_q"] = np.round(a["b"].numpy() / (si * sw)).astype(np.int64)
            a["m0"], a["shift"] = requant_params(si * sw / so)
        elif op.kind == "gap":
            count = int(np.prod(shapes[op.inputs[0]][1:]))
            a["m0"], a["shift"] = requant_params(np.array([si / (so * count)]))
        elif op.kind == "add":
            s2 = q[op.inputs[1]].scale
            a["m0"], a["shift"] = requant_params(np.array([si / so, s2 / so]))
    return Int8Model(ops, shapes, q, in_id, out_id)
