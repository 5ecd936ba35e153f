"""int8 post-training quantization through ONNX Runtime (a maintained library): the float
model is exported to ONNX (checked against PyTorch), activation ranges are calibrated on real
samples (min-max), weights quantized per output channel, symmetric int8, activations int8, in
QDQ form. The quantized file is then run in ONNX Runtime to measure its accuracy and how far
its outputs are from the float model's."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn

from edgeprune.errors import ConfigError
from edgeprune.export.onnx import export_onnx


def _samples(data: Iterable, limit: int) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    for batch in data:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        out += list(x.split(1))
        if len(out) >= limit:
            break
    return out[:limit]


def quantize_int8(model: nn.Module, example: torch.Tensor, calibration: Iterable, float_path: str | os.PathLike,
                  int8_path: str | os.PathLike, samples: int = 500) -> Path:
    """Write `float_path` (checked float ONNX) and `int8_path` (static int8, QDQ) for `model`,
    calibrating activations on up to `samples` calibration samples. Batch size 1."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    float_path, int8_path = Path(float_path), Path(int8_path)
    export_onnx(model, example, float_path)
    xs = _samples(calibration, samples)
    if not xs:
        raise ConfigError("int8 calibration needs at least one sample")
    import onnxruntime as ort
    name = ort.InferenceSession(str(float_path), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(xs)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {name: x.numpy().astype(np.float32)}

    tmp = int8_path.with_suffix(".tmp.onnx")
    import logging

    class _NoPreprocessHint(logging.Filter):
        """ONNX Runtime's advice, printed on every call, to run its optional graph pre-processing
        first; not an error, and the int8 model's accuracy is measured right after (evaluate_onnx)."""

        def filter(self, record):
            return "pre-process" not in record.getMessage()

    hint = _NoPreprocessHint()
    logging.getLogger().addFilter(hint)
    try:
        quantize_static(str(float_path), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        os.replace(tmp, int8_path)
    finally:
        logging.getLogger().removeFilter(hint)
        if tmp.exists():
            tmp.unlink()
    return int8_path


@dataclass
class OnnxCheck:
    accuracy: float
    agreement: float  # fraction of samples where int8 and float PyTorch pick the same class
    max_abs_diff: float  # largest output difference to float PyTorch
    output_scale: float


def evaluate_onnx(path: str | os.PathLike, data: Iterable, reference: nn.Module | None = None) -> OnnxCheck:
    """Accuracy of an ONNX classifier over (x, y) batches, run one sample at a time (files are
    exported for batch 1), and, with `reference`, its agreement with that PyTorch model."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    correct = agree = total = 0
    diff = scale = 0.0
    for x, y in data:
        with torch.no_grad():
            ref = reference.eval()(x).numpy() if reference is not None else None
        for i in range(len(x)):
            out = sess.run(None, {name: x[i:i + 1].numpy().astype(np.float32)})[0][0]
            correct += int(out.argmax() == int(y[i]))
            if ref is not None:
                agree += int(out.argmax() == ref[i].argmax())
                diff = max(diff, float(np.abs(out - ref[i]).max()))
                scale = max(scale, float(np.abs(ref[i]).max()))
            total += 1
    return OnnxCheck(correct / max(total, 1), agree / max(total, 1) if reference is not None else float("nan"),
                     diff, scale)
