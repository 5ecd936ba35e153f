"""Plain-text before/after tables (no dependency; the CLI prints them)."""
from __future__ import annotations

from edgeprune.metrics import ModelStats


def _fmt(v, kind: str) -> str:
    if v is None:
        return "-"
    if kind == "bytes":
        return f"{v / 1024:.1f} KiB" if v < 1024 ** 2 else f"{v / 1024 ** 2:.2f} MiB"
    if kind == "ms":
        return f"{v:.3f} ms"
    if kind == "pct":
        return f"{100 * v:.2f} %"
    if v >= 1e6:
        return f"{v / 1e6:.3f} M"
    if v >= 1e3:
        return f"{v / 1e3:.1f} k"
    return str(v)


ROWS = [("parameters", "params", "n"), ("MACs", "macs", "n"), ("size fp32", "fp32_bytes", "bytes"),
        ("size int8", "int8_bytes", "bytes"), ("peak activations", "peak_activation_bytes", "bytes"),
        ("latency (torch, 1 thread)", "latency_ms", "ms"), ("latency (onnxruntime, 1 thread)", "onnx_latency_ms", "ms")]


def before_after_table(before: ModelStats, after: ModelStats, extra: list[tuple[str, float | None, float | None, str]] = ()) -> str:
    rows = [(label, getattr(before, k), getattr(after, k), kind) for label, k, kind in ROWS]
    rows = list(extra) + rows
    lines = [f"{'':34}{'before':>16}{'after':>16}{'ratio':>9}"]
    for label, b, a, kind in rows:
        if b is None and a is None:
            continue
        ratio = f"{a / b:.3f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else ""
        if kind == "pct":
            ratio = f"{100 * (a - b):+.2f}pt" if a is not None and b is not None else ""
        lines.append(f"{label:34}{_fmt(b, kind):>16}{_fmt(a, kind):>16}{ratio:>9}")
    return "\n".join(lines)
