"""One self-contained HTML page for an `edgeprune fit` run: the budget table, per-layer widths
before and after, the memory timeline, accuracy against MACs of the candidates searched, and
the chosen model. No scripts, no external files: inline SVG and CSS only."""
from __future__ import annotations

import math
from html import escape

from edgeprune.report.widths import widths_svg


def _fmt(v, unit: str) -> str:
    if v is None:
        return "&ndash;"
    if unit == "B":
        return f"{v / 1024:.1f} KiB" if v < 1024 ** 2 else f"{v / 1024 ** 2:.2f} MiB"
    return f"{v:.3f} {unit}"


def _line_chart(series: list[tuple[str, list[float], str]], limit: float | None, title: str, ylabel: str) -> str:
    W, H, L, B, T = 720, 300, 70, 40, 30
    n = max(len(s[1]) for s in series) or 1
    top = max([max(s[1], default=0) for s in series] + [limit or 0]) * 1.1 or 1
    fx = lambda i: L + i / max(n - 1, 1) * (W - L - 20)  # noqa: E731
    fy = lambda v: H - B - v / top * (H - B - T)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-size="11" font-family="sans-serif">',
           f'<text x="{L}" y="18" font-size="13">{escape(title)}</text>',
           f'<line x1="{L}" y1="{H - B}" x2="{W - 20}" y2="{H - B}" stroke="black"/>',
           f'<line x1="{L}" y1="{H - B}" x2="{L}" y2="{T}" stroke="black"/>',
           f'<text x="{(L + W) / 2}" y="{H - 8}" text-anchor="middle">op, in execution order</text>',
           f'<text x="14" y="{H / 2}" transform="rotate(-90 14 {H / 2})" text-anchor="middle">{escape(ylabel)}</text>']
    for k in range(5):
        v = top * k / 4
        out.append(f'<text x="{L - 6}" y="{fy(v) + 4:.1f}" text-anchor="end">{v / 1024:.0f} KiB</text>')
    if limit:
        out.append(f'<line x1="{L}" y1="{fy(limit):.1f}" x2="{W - 20}" y2="{fy(limit):.1f}" stroke="#d62728" '
                   f'stroke-dasharray="5 3"/><text x="{W - 22}" y="{fy(limit) - 4:.1f}" text-anchor="end" '
                   f'fill="#d62728">budget for activations</text>')
    for i, (name, ys, colour) in enumerate(series):
        pts = " ".join(f"{fx(j):.1f},{fy(v):.1f}" for j, v in enumerate(ys))
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{pts}"/>')
        out.append(f'<text x="{L + 10}" y="{T + 14 * (i + 1)}" fill="{colour}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _scatter(cands, chosen: int, title: str) -> str:
    pts = [(c.macs, c.accuracy, i, c.search) for i, c in enumerate(cands) if c.accuracy is not None]
    W, H, L, B, T = 720, 320, 70, 45, 30
    if not pts:
        return "<p>No feasible candidate was evaluated.</p>"
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    x0, x1 = math.log10(min(xs) * 0.8), math.log10(max(xs) * 1.25)
    y0, y1 = min(ys) - 0.02, min(1.0, max(ys) + 0.02)
    fx = lambda v: L + (math.log10(v) - x0) / (x1 - x0) * (W - L - 20)  # noqa: E731
    fy = lambda v: H - B - (v - y0) / (y1 - y0) * (H - B - T)  # noqa: E731
    colours = {"uniform": "#7f7f7f", "sensitivity": "#1f77b4", "amc": "#2ca02c"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-size="11" font-family="sans-serif">',
           f'<text x="{L}" y="18" font-size="13">{escape(title)}</text>',
           f'<line x1="{L}" y1="{H - B}" x2="{W - 20}" y2="{H - B}" stroke="black"/>',
           f'<line x1="{L}" y1="{H - B}" x2="{L}" y2="{T}" stroke="black"/>',
           f'<text x="{(L + W) / 2}" y="{H - 8}" text-anchor="middle">MACs per inference (log scale)</text>',
           f'<text x="14" y="{H / 2}" transform="rotate(-90 14 {H / 2})" text-anchor="middle">'
           'validation accuracy, no training</text>']
    for k in range(5):
        v = y0 + (y1 - y0) * k / 4
        out.append(f'<text x="{L - 6}" y="{fy(v) + 4:.1f}" text-anchor="end">{100 * v:.1f} %</text>')
    for e in range(int(math.floor(x0)), int(math.ceil(x1)) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if x0 <= math.log10(v) <= x1:
                label = f"{v / 1e6:g}M" if v >= 1e6 else f"{v / 1e3:g}k"
                out.append(f'<text x="{fx(v):.1f}" y="{H - B + 14}" text-anchor="middle">{label}</text>')
    for macs, acc, i, search in pts:
        c = colours.get(search, "#9467bd")
        if i == chosen:
            out.append(f'<circle cx="{fx(macs):.1f}" cy="{fy(acc):.1f}" r="8" fill="none" stroke="#d62728" '
                       'stroke-width="2"/>')
        out.append(f'<circle cx="{fx(macs):.1f}" cy="{fy(acc):.1f}" r="4" fill="{c}"><title>{escape(search)}: '
                   f'{macs} MACs, {100 * acc:.2f} %</title></circle>')
    for k, (name, c) in enumerate(colours.items()):
        out.append(f'<text x="{W - 120}" y="{T + 14 * (k + 1)}" fill="{c}">{name}</text>')
    out.append(f'<text x="{W - 120}" y="{T + 14 * 4}" fill="#d62728">circled: chosen</text>')
    out.append("</svg>")
    return "\n".join(out)


def _c_section(c: dict) -> str:
    if not c:
        return "<h2>C code</h2><p>No C code was generated (needs gcc and an output folder).</p>"
    sparse = ", ".join(escape(n) for n in c["sparse_layers"]) or "none (dense is smaller)"
    return f"""<h2>C code</h2>
<table id="ccode"><tr><td>outputs equal to the Python int8 reference</td><td>{'yes' if c['equal_to_reference'] else 'NO'}
 ({c['checked_inputs']} test inputs)</td></tr>
<tr><td>compiled with</td><td>{escape(c['compiler'])}</td></tr>
<tr><td>text / data / bss</td><td>{c['text']} / {c['data']} / {c['bss']} bytes</td></tr>
<tr><td>measured on this host (gcc -O2, one core, process start and I/O included)</td>
<td>{c.get('host_us_per_inference') or 0:.1f} us per inference</td></tr>
<tr><td>activation arena (static)</td><td>{c['arena_bytes']} bytes</td></tr>
<tr><td>layers with sparse (CSR) kernels</td><td>{sparse}</td></tr></table>"""


def fit_report_html(r) -> str:
    """`r`: an edgeprune.fit.FitResult."""
    p = r.profile
    from edgeprune.devices import check_budget
    dense_checks = {c.name: c for c in check_budget(r.dense_cost, r.budget)}
    rows = []
    for c in r.checks:
        d = dense_checks.get(c.name)
        margin = "&ndash;" if c.margin is None else f"{100 * c.margin:+.0f} %"
        rows.append(f"<tr><td>{c.name}</td><td>{_fmt(d.value if d else None, c.unit)}</td><td>{_fmt(c.value, c.unit)}</td>"
                    f"<td>{_fmt(c.limit, c.unit)}</td><td>{margin}</td>"
                    f"<td class=\"{'ok' if c.ok else 'bad'}\">{'fits' if c.ok else 'OVER'}</td></tr>")
    acc_rows = "".join(f"<tr><td>{escape(k)}</td><td>{100 * v:.2f} %</td></tr>" for k, v in r.accuracy.items())
    act_budget = None
    if r.budget.ram_bytes is not None:
        act_budget = r.budget.ram_bytes - p.runtime_ram_bytes - r.cost.scratch_bytes
    timeline = _line_chart([("dense", r.dense_timeline, "#7f7f7f"), ("chosen", r.timeline, "#1f77b4")],
                           act_budget, "activation memory alive during one inference", "bytes")
    width_rows = "".join(f"<tr><td>{escape(n)}</td><td>{b}</td><td>{a}</td></tr>" for n, b, a in r.widths)
    best = r.candidates[r.chosen]
    files = "".join(f"<li>{escape(k)}: <code>{escape(str(v))}</code></li>" for k, v in r.files.items())
    sources = "".join(f"<li>{escape(s)}</li>" for s in p.sources)
    estimates = "".join(f"<li>{escape(s)}</li>" for s in p.estimates)
    verdict = "fits" if r.fits else "does NOT fit"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>edgeprune fit: {escape(p.name)}</title>
<style>
body {{ font-family: sans-serif; max-width: 900px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 3px 10px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
.ok {{ color: #2a7a2a; font-weight: bold; }} .bad {{ color: #c00; font-weight: bold; }}
</style></head><body>
<h1>edgeprune fit: {escape(p.name)}</h1>
<p id="verdict">The chosen model <b>{verdict}</b> {escape(p.description)} ({r.seconds:.0f} s in all).</p>
<h2>Budget</h2>
<table id="budget"><tr><th>constraint</th><th>dense model</th><th>chosen model</th><th>budget</th><th>margin</th><th></th></tr>
{''.join(rows)}</table>
<p>Estimates from operation counts and the device profile (see its sources and estimates below);
int8 weights, {'sparse' if r.cost.executed_macs < r.cost.macs else 'dense'} storage.</p>
<h2>Accuracy (test split)</h2>
<table id="accuracy">{acc_rows}</table>
<h2>Per-layer widths</h2>
{widths_svg(r.plan)}
<table id="widths"><tr><th>group</th><th>units before</th><th>units after</th></tr>{width_rows}</table>
<h2>Memory timeline</h2>
{timeline}
<h2>Candidates searched</h2>
<p>{len(r.candidates)} width vectors were costed; the {sum(c.accuracy is not None for c in r.candidates)} that fit
were scored by validation accuracy after least-squares reconstruction, without training.</p>
{_scatter(r.candidates, r.chosen, "accuracy against MACs of the candidates that fit")}
<h2>Chosen model</h2>
<p>{escape(best.search)} search, t = {best.t:.3f}: {r.cost.macs} MACs (dense {r.dense_cost.macs}),
{r.cost.weight_bytes} bytes of weights.</p>
<ul>{files}</ul>
{_c_section(r.c_code)}
<h2>Device profile</h2>
<p>{escape(p.name)}: flash {_fmt(p.flash_bytes, 'B')}, RAM {_fmt(p.ram_bytes, 'B')}, {p.clock_hz / 1e6:.0f} MHz,
int8 {p.macs_per_cycle.get('int8', 0)} MACs/cycle.</p>
<p>Sources:</p><ul>{sources}</ul><p>Estimates:</p><ul>{estimates}</ul>
</body></html>
"""
