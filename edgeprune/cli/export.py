"""`edgeprune export`: ONNX (checked in ONNX Runtime) or a fully-integer .tflite (checked in LiteRT)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from edgeprune.cli.common import (
    COUNT,
    add_data,
    example,
    task,
)


def cmd_export(a) -> int:
    if a.format == "tflite":
        return _export_tflite(a)
    from edgeprune.export.onnx import export_onnx

    model, _, x = example(a.model, finite=True)
    path = export_onnx(model, x, a.out)
    print(f"wrote {path} (checked in ONNX Runtime)")
    return 0


def _export_tflite(a) -> int:
    from edgeprune.data import calibration_batches
    from edgeprune.deploy import quantize_model
    from edgeprune.export.tflite import check_tflite, export_tflite

    model, _, x = example(a.model, finite=True)
    t = task(a)
    qm = quantize_model(model, x, calibration_batches(t, a.calibration), samples=a.calibration)
    path = export_tflite(qm, a.out)
    xs, ys = zip(*[(xb, yb) for xb, yb in t.test])
    xs, ys = torch.cat(xs).numpy()[:a.check_samples], torch.cat(ys).numpy()[:a.check_samples]
    c = check_tflite(qm, path, xs, ys)
    if a.json:
        print(json.dumps({"path": str(path), **c.__dict__}))
    else:
        print(f"wrote {path}: in LiteRT (reference kernels) on {c.samples} test inputs, accuracy "
              f"{100 * c.accuracy:.2f} %, predicted class equal to edgeprune's int8 reference on "
              f"{100 * c.argmax_agreement:.1f} %, outputs within {c.max_step_diff} int8 steps of it "
              f"(mean {c.mean_step_diff:.2f})")
    return 0


def add(sub) -> None:
    s = sub.add_parser("export", help="export ONNX (checked in ONNX Runtime) or a fully-integer .tflite "
                       "(checked in LiteRT)")
    s.add_argument("model", type=Path)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--format", choices=["onnx", "tflite"], default="onnx",
                   help="tflite: int8, calibrated on --data, for TFLite Micro / STM32Cube.AI / Edge Impulse / eIQ")
    s.add_argument("--calibration", type=COUNT, default=500, help="tflite: calibration samples")
    s.add_argument("--check-samples", type=COUNT, default=1000, help="tflite: test inputs run in LiteRT")
    add_data(s)
    s.set_defaults(fn=cmd_export)
