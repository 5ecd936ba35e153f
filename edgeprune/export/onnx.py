"""ONNX export, checked by running the file in ONNX Runtime against PyTorch."""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from edgeprune.errors import VerificationError
from edgeprune.graph.trace import _call


def export_onnx(model: nn.Module, example_inputs: Any, path: str | os.PathLike, *, check: bool = True,
                opset: int = 18, rtol: float = 1e-3, atol: float = 1e-4) -> Path:
    """Export `model` to `path` (written atomically). With `check`, run it in ONNX Runtime and
    compare with PyTorch; raise VerificationError when they differ."""
    path = Path(path)
    model = model.eval()
    args = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    kwargs = example_inputs if isinstance(example_inputs, dict) else None
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx")
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:  # the TorchScript-based exporter: fast, and enough for most models
                torch.onnx.export(model, () if kwargs else args, tmp, kwargs=kwargs, opset_version=opset,
                                  dynamo=False)
            except Exception as legacy_error:  # some ops only the torch.export-based exporter handles
                try:
                    with contextlib.redirect_stdout(io.StringIO()):
                        torch.onnx.export(model, () if kwargs else args, tmp, kwargs=kwargs, opset_version=opset,
                                          dynamo=True, verbose=False)
                except Exception as exc:
                    raise RuntimeError(f"ONNX export failed with both exporters: {legacy_error}; {exc}") from exc
        if check:
            import onnxruntime as ort

            sess = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
            flat = [t for t in tree_flatten(example_inputs)[0] if isinstance(t, torch.Tensor)]
            feed = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), flat)}
            got = sess.run(None, feed)
            with torch.no_grad():
                want = [t.numpy() for t in tree_flatten(_call(model, example_inputs))[0] if isinstance(t, torch.Tensor)]
            for g, w in zip(got, want):
                if g.shape != w.shape or not np.allclose(g, w, rtol=rtol, atol=atol):
                    raise VerificationError(f"ONNX Runtime output differs from PyTorch "
                                            f"(max diff {np.abs(g - w).max() if g.shape == w.shape else 'shape'})")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
