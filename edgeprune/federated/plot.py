"""Accuracy and cumulative traffic against rounds, one line per method (SVG, no dependencies)."""
from __future__ import annotations

from html import escape

COLOURS = ["#7f7f7f", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#ff7f0e"]


def _panel(series, key, title, x0, W, H, fmt) -> list[str]:
    L, B, T = 60, 40, 30
    n = max(len(s) for _, s in series) or 1
    top = max(max(s, default=0) for _, s in series) or 1
    lo = min(min(s, default=0) for _, s in series) if key == "accuracy" else 0
    lo = min(lo, top * 0.999)
    fx = lambda i: x0 + L + i / max(n - 1, 1) * (W - L - 20)  # noqa: E731
    fy = lambda v: H - B - (v - lo) / (top - lo) * (H - B - T)  # noqa: E731
    out = [f'<text x="{x0 + L}" y="18" font-size="13">{escape(title)}</text>',
           f'<line x1="{x0 + L}" y1="{H - B}" x2="{x0 + W - 20}" y2="{H - B}" stroke="black"/>',
           f'<line x1="{x0 + L}" y1="{H - B}" x2="{x0 + L}" y2="{T}" stroke="black"/>',
           f'<text x="{x0 + (L + W) / 2}" y="{H - 8}" text-anchor="middle">round</text>']
    for k in range(5):
        v = lo + (top - lo) * k / 4
        out.append(f'<text x="{x0 + L - 6}" y="{fy(v) + 4:.1f}" text-anchor="end">{fmt(v)}</text>')
    for i, (name, ys) in enumerate(series):
        pts = " ".join(f"{fx(j):.1f},{fy(v):.1f}" for j, v in enumerate(ys))
        out.append(f'<polyline fill="none" stroke="{COLOURS[i % len(COLOURS)]}" stroke-width="1.8" points="{pts}"/>')
        if key == "accuracy":  # curves rise to the top: the legend goes low and right
            lx, ly = x0 + W - 110, H - B - 10 - 14 * (len(series) - 1 - i)
        else:
            lx, ly = x0 + L + 10, T + 14 * (i + 1)
        out.append(f'<text x="{lx}" y="{ly}" fill="{COLOURS[i % len(COLOURS)]}">{escape(name)}</text>')
    return out


def rounds_svg(results: dict) -> str:
    W, H = 460, 320
    acc = [(m, [r["accuracy"] for r in res["rounds"]]) for m, res in results.items()]
    traffic = []
    for m, res in results.items():
        total, ys = 0, []
        for r in res["rounds"]:
            total += r["bytes_down"] + r["bytes_up"]
            ys.append(total)
        traffic.append((m, ys))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H}" font-family="sans-serif" '
           'font-size="11"><rect width="100%" height="100%" fill="white"/>']
    out += _panel(acc, "accuracy", "accuracy on held-out users", 0, W, H, lambda v: f"{100 * v:.0f} %")
    out += _panel(traffic, "bytes", "total traffic (up + down)", W, W, H, lambda v: f"{v / 2 ** 20:.1f} MiB")
    out.append("</svg>")
    return "\n".join(out)
