"""A fully-integer .tflite flatbuffer from edgeprune's int8 model, the format TensorFlow Lite
Micro, STM32Cube.AI, Edge Impulse and NXP eIQ take, checked in the LiteRT interpreter.

Written directly against the TFLite schema (the object API LiteRT ships as
`ai_edge_litert.schema_py_generated`; `pip install edgeprune[tflite]`), not through a converter:
the int8 weights, per-channel scales, biases and activation scales/zero points are exactly
those of `Int8Model`, so the exported model is the one the C kernels run. Layout is TFLite's
NHWC: a 1-D convolution becomes a CONV_2D of height 1 ([1, 1, L, C]), explicit zero padding a
PAD op (TFLite pads int8 with the zero point, as the reference does), a flatten before a
fully-connected layer is absorbed by permuting that layer's weight columns (PyTorch flattens
C, H, W; TFLite H, W, C).

Rounding differs: TFLite requantises with a doubling high multiply and a rounding shift, the
reference with one rounding shift; its MEAN and ADD rescale differently again. Outputs may
differ by a step or two; `check_tflite` reports how far, and how often the predicted class
agrees. Ops: conv 1-D/2-D (groups 1, or depthwise), linear, ReLU, max pooling without padding,
global average pooling, add."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeprune.deploy.int8 import Int8Model
from edgeprune.errors import ConfigError

DESCRIPTION = "written by edgeprune"  # marks the files edgeprune may replace


def _schema():
    try:
        import ai_edge_litert.schema_py_generated as s
        import flatbuffers
    except ImportError:
        raise ConfigError("writing .tflite needs LiteRT's schema: pip install 'edgeprune[tflite]' "
                          "(ai-edge-litert)") from None
    return s, flatbuffers


def _nhwc(shape: tuple[int, ...]) -> list[int]:
    if len(shape) == 1:
        return [1, shape[0]]
    if len(shape) == 2:  # (C, L): a row of height 1
        return [1, 1, shape[1], shape[0]]
    return [1, shape[1], shape[2], shape[0]]


class _Writer:
    def __init__(self, s):
        self.s = s
        self.tensors, self.buffers, self.ops, self.codes = [], [s.BufferT()], [], {}

    def tensor(self, shape, ttype, name, scale=None, zero=None, qdim=0, data: np.ndarray | None = None) -> int:
        s = self.s
        t = s.TensorT()
        t.shape, t.type, t.name = list(int(v) for v in shape), ttype, name
        t.buffer = 0
        if data is not None:
            b = s.BufferT()
            b.data = np.ascontiguousarray(data).view(np.uint8).reshape(-1).tolist()
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        if scale is not None:
            q = s.QuantizationParametersT()
            q.scale = [float(v) for v in np.atleast_1d(scale)]
            q.zeroPoint = [int(v) for v in np.atleast_1d(zero)]
            q.quantizedDimension = qdim
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, code: int, inputs, outputs, options_type=0, options=None) -> None:
        s = self.s
        if code not in self.codes:
            c = s.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
            self.codes[code] = len(self.codes)
        o = s.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self.codes[code], list(inputs), list(outputs)
        o.builtinOptionsType, o.builtinOptions = options_type, options
        self.ops.append(o)

    def opcodes(self):
        out = []
        for code in sorted(self.codes, key=self.codes.get):
            c = self.s.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
            out.append(c)
        return out


def tflite_bytes(model: Int8Model) -> bytes:
    """The flatbuffer of `model` (see the module docstring)."""
    s, flatbuffers = _schema()
    B, T = s.BuiltinOperator, s.TensorType
    w = _Writer(s)
    q = model.q
    tid: dict[int, int] = {}
    chw_of: dict[int, tuple[int, ...]] = {}  # values that are a flattened feature map: its (C, H, W)

    def act(vid: int, name: str) -> int:
        return w.tensor(_nhwc(model.shapes[vid]), T.INT8, name, q[vid].scale, q[vid].zero)

    tid[model.input_id] = act(model.input_id, "input")
    for k, op in enumerate(model.ops):
        a, x = op.attrs, tid[op.inputs[0]]
        name = str(a.get("name") or f"{op.kind}{k}")
        if op.kind == "alias":
            src = model.shapes[op.inputs[0]]
            if len(model.shapes[op.output]) == 1 and len(src) > 1:
                tid[op.output] = x  # FULLY_CONNECTED flattens; the weights are permuted instead
                chw_of[op.output] = src
                continue
            if model.shapes[op.output] == src:
                tid[op.output] = x
                continue
            raise ConfigError(f"{name}: a reshape other than a flatten is not exported to .tflite")
        y = act(op.output, name)
        fused = s.ActivationFunctionType.RELU if a.get("relu") else s.ActivationFunctionType.NONE
        zi, si = q[op.inputs[0]].zero, q[op.inputs[0]].scale
        if op.kind == "conv":
            wq = a["w_q"]
            if a["dims"] == 1:
                wq = wq[:, :, None, :]  # (Co, Ci, 1, K)
                stride, pad = (1, a["stride"]), (0, a["padding"])
            else:
                stride, pad = tuple(a["stride"]), tuple(a["padding"])
            co, cig = wq.shape[0], wq.shape[1]
            cin = model.shapes[op.inputs[0]][0]
            if any(pad):
                ishape = _nhwc(model.shapes[op.inputs[0]])
                padded = [ishape[0], ishape[1] + 2 * pad[0], ishape[2] + 2 * pad[1], ishape[3]]
                pads = w.tensor([4, 2], T.INT32, f"{name}/paddings",
                                data=np.array([[0, 0], [pad[0], pad[0]], [pad[1], pad[1]], [0, 0]], np.int32))
                xp = w.tensor(padded, T.INT8, f"{name}/padded", si, zi)
                w.op(B.PAD, [x, pads], [xp], s.BuiltinOptions.PadOptions, s.PadOptionsT())
                x = xp
            sw = a["w_scale"]
            bias = w.tensor([co], T.INT32, f"{name}/bias", si * sw, np.zeros(co, np.int64), 0,
                            a["b_q"].astype(np.int32))
            if a["groups"] == 1:
                wt = w.tensor([co, wq.shape[2], wq.shape[3], cig], T.INT8, f"{name}/weights", sw,
                              np.zeros(co, np.int64), 0, np.transpose(wq, (0, 2, 3, 1)).astype(np.int8))
                opt = s.Conv2DOptionsT()
                opt.padding, opt.strideH, opt.strideW, opt.fusedActivationFunction = s.Padding.VALID, *stride, fused
                opt.dilationHFactor = opt.dilationWFactor = 1
                w.op(B.CONV_2D, [x, wt, bias], [y], s.BuiltinOptions.Conv2DOptions, opt)
            elif a["groups"] == cin == co and cig == 1:
                wt = w.tensor([1, wq.shape[2], wq.shape[3], co], T.INT8, f"{name}/weights", sw,
                              np.zeros(co, np.int64), 3, np.transpose(wq, (1, 2, 3, 0)).astype(np.int8))
                opt = s.DepthwiseConv2DOptionsT()
                opt.padding, opt.strideH, opt.strideW, opt.fusedActivationFunction = s.Padding.VALID, *stride, fused
                opt.depthMultiplier, opt.dilationHFactor, opt.dilationWFactor = 1, 1, 1
                w.op(B.DEPTHWISE_CONV_2D, [x, wt, bias], [y], s.BuiltinOptions.DepthwiseConv2DOptions, opt)
            else:
                raise ConfigError(f"{name}: grouped convolution (groups={a['groups']}) is not exported to .tflite; "
                                  "only groups 1 and depthwise")
        elif op.kind == "linear":
            wq, sw = a["w_q"], a["w_scale"]
            src = chw_of.get(op.inputs[0])
            if src is not None:  # columns in TFLite's flatten order (H, W, C) instead of (C, H, W)
                cols = np.arange(int(np.prod(src))).reshape(src)
                cols = np.transpose(cols, (1, 0) if len(src) == 2 else (1, 2, 0)).reshape(-1)
                wq = wq[:, cols]
            co = wq.shape[0]
            wt = w.tensor(list(wq.shape), T.INT8, f"{name}/weights", sw, np.zeros(co, np.int64), 0, wq.astype(np.int8))
            bias = w.tensor([co], T.INT32, f"{name}/bias", si * sw, np.zeros(co, np.int64), 0,
                            a["b_q"].astype(np.int32))
            opt = s.FullyConnectedOptionsT()
            opt.fusedActivationFunction = fused
            w.op(B.FULLY_CONNECTED, [x, wt, bias], [y], s.BuiltinOptions.FullyConnectedOptions, opt)
        elif op.kind == "relu":
            w.op(B.RELU, [x], [y])
        elif op.kind == "maxpool":
            kern = (1, a["kernel"]) if a["dims"] == 1 else tuple(a["kernel"])
            stride = (1, a["stride"]) if a["dims"] == 1 else tuple(a["stride"])
            if any(np.atleast_1d(a["padding"])):
                raise ConfigError(f"{name}: max pooling with padding is not exported to .tflite")
            opt = s.Pool2DOptionsT()
            opt.padding, opt.strideH, opt.strideW = s.Padding.VALID, *stride
            opt.filterHeight, opt.filterWidth = kern
            w.op(B.MAX_POOL_2D, [x], [y], s.BuiltinOptions.Pool2DOptions, opt)
        elif op.kind == "gap":
            axes = w.tensor([2], T.INT32, f"{name}/axes", data=np.array([1, 2], np.int32))
            opt = s.ReducerOptionsT()
            opt.keepDims = False
            w.op(B.MEAN, [x, axes], [y], s.BuiltinOptions.ReducerOptions, opt)
        elif op.kind == "add":
            opt = s.AddOptionsT()
            opt.fusedActivationFunction = fused
            w.op(B.ADD, [x, tid[op.inputs[1]]], [y], s.BuiltinOptions.AddOptions, opt)
        else:
            raise ConfigError(f"op {op.kind!r} is not exported to .tflite")
        tid[op.output] = y
    sub = s.SubGraphT()
    sub.tensors, sub.operators, sub.name = w.tensors, w.ops, "main"
    sub.inputs, sub.outputs = [tid[model.input_id]], [tid[model.output_id]]
    m = s.ModelT()
    m.version, m.description, m.subgraphs, m.buffers = 3, DESCRIPTION, [sub], w.buffers
    m.operatorCodes = w.opcodes()
    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def export_tflite(model: Int8Model, path: str | os.PathLike) -> Path:
    """Write the .tflite file atomically. An existing file is replaced only when edgeprune
    wrote it (its description says so), as for ONNX exports; any other is kept."""
    from edgeprune.outputs import write_file
    target = Path(path).expanduser()
    data = tflite_bytes(model)
    return write_file(target, data, force=True, owned=_written_by_edgeprune(target))


def _written_by_edgeprune(path: Path) -> bool:
    """Whether `path` is a .tflite file whose description says edgeprune wrote it."""
    if not path.is_file() or path.is_symlink() or path.stat().st_size > 1 << 30:
        return False
    s, _ = _schema()
    data = path.read_bytes()
    try:
        if data[4:8] != b"TFL3":
            return False
        return (s.Model.GetRootAs(data, 0).Description() or b"") == DESCRIPTION.encode()
    except Exception:  # noqa: BLE001 - a damaged or foreign file is simply not ours
        return False


@dataclass
class TFLiteCheck:
    samples: int
    max_step_diff: int  # largest output difference from the Python int8 reference, in int8 steps
    mean_step_diff: float
    argmax_agreement: float  # fraction of inputs whose predicted class matches the reference
    accuracy: float | None = None


def _nhwc_input(model: Int8Model, xq: np.ndarray) -> np.ndarray:
    shape = model.shapes[model.input_id]
    x = xq.reshape(shape)
    if len(shape) == 2:
        x = x.T[None, None]
    elif len(shape) == 3:
        x = np.transpose(x, (1, 2, 0))[None]
    else:
        x = x[None]
    return np.ascontiguousarray(x, dtype=np.int8)


def run_tflite(model: Int8Model, path: str | os.PathLike, inputs_q: np.ndarray, reference: bool = True) -> np.ndarray:
    """Outputs (int8, flattened, one row per input) of the .tflite file in LiteRT's interpreter;
    with `reference`, its reference kernels (the arithmetic TFLite Micro's follow), otherwise
    the optimised ones and XNNPACK."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise ConfigError("checking .tflite needs LiteRT: pip install 'edgeprune[tflite]' (ai-edge-litert)") from None
    kind = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    it = Interpreter(model_path=str(path), num_threads=1, experimental_op_resolver_type=kind)
    it.allocate_tensors()
    i_in, i_out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    out = []
    for xq in inputs_q:
        it.set_tensor(i_in, _nhwc_input(model, xq))
        it.invoke()
        y = it.get_tensor(i_out)
        oshape = model.shapes[model.output_id]
        if len(oshape) == 3:
            y = np.transpose(y[0], (2, 0, 1))
        elif len(oshape) == 2:
            y = y[0, 0].T
        out.append(np.asarray(y, np.int8).reshape(-1))
    return np.stack(out)


def check_tflite(model: Int8Model, path: str | os.PathLike, inputs: np.ndarray,
                 labels: np.ndarray | None = None, reference: bool = True) -> TFLiteCheck:
    """Run the .tflite on `inputs` (float samples) in LiteRT and compare with the reference."""
    xq = np.stack([model.quantize_input(x) for x in inputs]).astype(np.int8)
    got = run_tflite(model, path, xq, reference).astype(np.int32)
    want = np.stack([model.run(x).reshape(-1) for x in xq]).astype(np.int32)
    diff = np.abs(got - want)
    acc = float((got.argmax(1) == labels).mean()) if labels is not None else None
    return TFLiteCheck(len(xq), int(diff.max()), float(diff.mean()), float((got.argmax(1) == want.argmax(1)).mean()),
                       acc)
