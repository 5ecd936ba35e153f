"""A dependency-free SVG chart of channel widths per group, before and after pruning."""
from __future__ import annotations

from html import escape

from edgeprune.surgery.plan import PrunePlan


def widths_svg(plan: PrunePlan, title: str = "channels per group: before (grey) and after (blue)") -> str:
    """One horizontal bar pair per channel group of `plan` (grey = before, blue = kept)."""
    rows = [(g["name"], g["units"] * g["channels_per_unit"], (g["units"] - g["removed"]) * g["channels_per_unit"])
            for g in plan.groups]
    if not rows:
        rows = [("(nothing prunable)", 0, 0)]
    top = max(b for _, b, _ in rows) or 1
    label_w, bar_w, row_h, pad = 260, 420, 18, 30
    height = pad * 2 + row_h * len(rows)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 120}" height="{height}" '
           'font-family="sans-serif" font-size="11">',
           f'<text x="8" y="18" font-size="13">{escape(title)}</text>']
    for i, (name, before, after) in enumerate(rows):
        y = pad + i * row_h
        wb, wa = bar_w * before / top, bar_w * after / top
        out.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{escape(name[-40:])}</text>')
        out.append(f'<rect x="{label_w}" y="{y + 2}" width="{wb:.1f}" height="{row_h - 5}" fill="#ccc"/>')
        out.append(f'<rect x="{label_w}" y="{y + 2}" width="{wa:.1f}" height="{row_h - 5}" fill="#3b7dd8"/>')
        out.append(f'<text x="{label_w + wb + 6}" y="{y + 12}">{after} / {before}</text>')
    out.append("</svg>")
    return "\n".join(out)
