"""Prune every torchvision classification model with one default config (50 % of the channels
of every group, L1) and check each result: it runs, its output shape is unchanged, it verifies
against the masked original (random weights, so every channel matters), MACs dropped, and its
ONNX export runs in ONNX Runtime with the same outputs. Each model runs in its own process.

    python -m benchmarks.sweep                      # all models -> docs/sweep.md
    python -m benchmarks.sweep --models resnet50 vit_b_16
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

FIXED_SIZE = {"vit": 224, "swin": 224, "maxvit": 224, "inception": 299}


def input_size(name: str) -> int:
    for prefix, size in FIXED_SIZE.items():
        if name.startswith(prefix):
            return size
    return 128


def check_one(name: str, ratio: float = 0.5) -> dict:
    import torch
    import torchvision

    import edgeprune as ep
    from edgeprune.testing import randomize_

    torch.manual_seed(0)
    row: dict = {"model": name, "ok": False}
    t0 = time.perf_counter()
    model = randomize_(torchvision.models.get_model(name).eval())
    x = torch.randn(1, 3, input_size(name), input_size(name))
    with torch.no_grad():
        ref_shape = tuple(model(x).shape)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t1 = time.perf_counter()
        result = ep.prune(model, ep.PruneConfig(prune_ratio=ratio), example_inputs=x)
        row["prune_s"] = round(time.perf_counter() - t1, 2)
    row["kept_by_checks"] = len(result.plan.meta.get("kept_by_checks", []))
    row["tracer"] = result.tracer
    with torch.no_grad():
        out_shape = tuple(result.model(x).shape)
    row.update(params=result.before.params, params_after=result.after.params, macs=result.before.macs,
               macs_after=result.after.macs, verify_error=result.verification.max_abs_error,
               verified=result.verification.ok, shape_ok=out_shape == ref_shape)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            ep.export_onnx(result.model, x, Path(tmp) / "m.onnx")
            row["onnx"] = True
        except Exception as exc:  # reported in the table, not hidden
            row["onnx"] = False
            row["onnx_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    row["ok"] = bool(row["verified"] and row["shape_ok"] and row["macs_after"] < row["macs"] and row["onnx"])
    row["total_s"] = round(time.perf_counter() - t0, 1)
    row["warnings"] = len(caught)
    return row


def all_models() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _fmt(row: dict) -> str:
    if "error" in row:
        return f"| {row['model']} | FAIL | | | | | | {row['error'][:120]} |"
    m = lambda a, b: f"{row[b] / row[a]:.3f}"  # noqa: E731
    note = [] if row["onnx"] else [row.get("onnx_error", "onnx failed")]
    if row["kept_by_checks"]:
        note.append(f"{row['kept_by_checks']} op site(s) kept by checks")
    if row["tracer"] != "fx":
        note.append(f"tracer {row['tracer']}")
    return (f"| {row['model']} | {'pass' if row['ok'] else 'FAIL'} | {row['params'] / 1e6:.2f} M | {m('params', 'params_after')} "
            f"| {m('macs', 'macs_after')} | {row['verify_error']:.1e} | {row['prune_s']:.1f} | {'; '.join(note)} |")


def run_sweep(out: str | Path, models: list[str] | None, ratio: float, timeout: int) -> int:
    models = models or all_models()
    rows = []
    for name in models:
        cmd = [sys.executable, "-m", "benchmarks.sweep", name, str(ratio)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  env={**os.environ, "PYTHONWARNINGS": "ignore"})
            line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
            row = json.loads(line) if line.startswith("{") else {
                "model": name, "error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
        except subprocess.TimeoutExpired:
            row = {"model": name, "error": f"timeout after {timeout} s"}
        rows.append(row)
        print(_fmt(row), flush=True)
    passed = sum(1 for r in rows if r.get("ok"))
    header = (f"# Torchvision sweep: {passed} of {len(rows)} models pass\n\n"
              f"Command: `python -m benchmarks.sweep` (prune ratio {ratio}, criterion l1, local scope, no per-model options; "
              "random weights so every channel matters; input 128x128, 224 for ViT/Swin/MaxViT, 299 for Inception).\n"
              "A model passes when the pruned model runs, its output shape is unchanged, it equals the masked "
              "original to 1e-6 relative error in float64, its MACs dropped, and its ONNX export gives the same "
              "outputs in ONNX Runtime. Times are wall-clock seconds on a 2-core machine for `prune()` "
              "(trace, grouping, plan checks, final verification, before/after measurement).\n\n"
              "| model | result | params | params kept | MACs kept | verify max error | prune s | notes |\n"
              "|---|---|---|---|---|---|---|---|\n")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(header + "\n".join(_fmt(r) for r in rows) + "\n")
    print(f"{passed}/{len(rows)} pass; table in {out}")
    return 0 if passed == len(rows) else 1


if __name__ == "__main__":
    import torch

    torch.set_num_threads(int(os.environ.get("EDGEPRUNE_THREADS", "2")))
    try:
        print(json.dumps(check_one(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0.5)))
    except Exception as exc:
        print(json.dumps({"model": sys.argv[1], "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}))
