"""ONNX export, checked by running the file in ONNX Runtime against PyTorch."""
from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from edgeprune.errors import ConfigError, VerificationError
from edgeprune.example_inputs import call_with
from edgeprune.outputs import recover, temp_sibling

_MARK = "written_by"


def written_by_edgeprune(path: str | os.PathLike) -> bool:
    """True for an ONNX file edgeprune exported (its metadata says so)."""
    import onnx
    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception:  # not ONNX at all  # noqa: BLE001
        return False
    return any(p.key == _MARK and p.value == "edgeprune" for p in m.metadata_props)


def _mark(path: str) -> None:
    import onnx
    m = onnx.load(path)
    m.metadata_props.add(key=_MARK, value="edgeprune")
    onnx.save(m, path)


def export_onnx(model: nn.Module, example_inputs: Any, path: str | os.PathLike, *, check: bool = True,
                opset: int = 18, rtol: float = 1e-3, atol: float = 1e-4) -> Path:
    """Export `model` to `path` (written atomically). With `check`, run it in ONNX Runtime and
    compare with PyTorch; raise VerificationError when they differ."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give the .onnx file to write")
    if path.exists() and not written_by_edgeprune(path):
        raise ConfigError(f"{path} exists and edgeprune did not write it; it is kept.\n"
                          "help: name another file (edgeprune replaces only ONNX files it exported)")
    model = model.eval()
    args = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    kwargs = example_inputs if isinstance(example_inputs, dict) else None
    path.parent.mkdir(parents=True, exist_ok=True)
    recover(path)
    tmp = str(temp_sibling(path, "edgeprune-tmp"))
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
                want = [t.numpy() for t in tree_flatten(call_with(model, example_inputs))[0] if isinstance(t, torch.Tensor)]
            for g, w in zip(got, want):
                if g.shape != w.shape or not np.allclose(g, w, rtol=rtol, atol=atol):
                    raise VerificationError(f"ONNX Runtime output differs from PyTorch "
                                            f"(max diff {np.abs(g - w).max() if g.shape == w.shape else 'shape'})")
        _mark(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
