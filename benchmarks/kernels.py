"""edgeprune's int8 C kernels, measured: instructions per MAC of every layer type on emulated
Cortex-M0+, M4 and M7 cores (edgeprune.deploy.emulate), and the speed of the sparse (CSR)
kernels against the dense ones on this host at 50, 80, 90 and 95 % unstructured sparsity.

    python -m benchmarks.kernels [--out docs/kernels.md] [--cores cortex-m0plus cortex-m4 cortex-m7]
    python -m benchmarks.kernels --calibrate   # rewrites edgeprune/deploy/kernel_costs.json

For each layer shape, random int8 weights are zeroed at random to the sparsity, the dense and
the sparse kernel compute the same layer (their outputs are compared: equal), compiled with gcc
-O2, each timed over repeated calls (median of 5 runs). Host timings, not a microcontroller's:
the ratio is what carries over, roughly; a Cortex-M has no cache and no out-of-order core."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np
from torch import nn

from benchmarks import write_doc
from edgeprune.deploy.cgen import c_array, csr_rows

LAYERS = {
    "linear 512x512": ("linear", (512, 512)),
    "conv1d 64->64, k5, L64": ("conv1d", (64, 64, 5, 64)),
    "conv2d 32->32, 3x3, 16x16": ("conv2d", (32, 32, 3, 16)),
}
SPARSITIES = (0.0, 0.5, 0.8, 0.9, 0.95)


def _program(kind: str, dims: tuple, w: np.ndarray, reps: int) -> str:
    vals, cols, rows = csr_rows(w)
    kernels = resources.files("edgeprune.deploy").joinpath("kernels.c").read_text()
    m0 = np.full(w.shape[0], 1 << 30)
    sh = np.full(w.shape[0], 38)
    b = np.zeros(w.shape[0], dtype=np.int64)
    bf = b - 3 * w.reshape(w.shape[0], -1).astype(np.int64).sum(1)  # the dense kernels' folded bias (zi = 3)
    if kind == "linear":
        n = dims[1]
        xs, ys, acc = n, dims[0], 1
        dense = f"ep_linear(x, {n}, y1, {dims[0]}, w, bf, m, s, 3, -5, 1);"
        sparse = f"ep_linear_sparse(x, y2, {dims[0]}, v, c, r, b, m, s, 3, -5, 1);"
    elif kind == "conv1d":
        ci, co, k, L = dims
        xs, ys, acc = ci * L, co * L, L
        dense = f"ep_conv1d(x, {ci}, {L}, y1, {co}, {L}, w, bf, m, s, {k}, 1, {k // 2}, 1, 3, -5, 1, col);"
        sparse = f"ep_conv1d_sparse(x, {ci}, {L}, y2, {co}, {L}, v, c, r, b, m, s, {k}, 1, {k // 2}, 1, 3, -5, 1, acc);"
    else:
        ci, co, k, H = dims
        xs, ys, acc = ci * H * H, co * H * H, H * H
        dense = f"ep_conv2d(x, {ci}, {H}, {H}, y1, {co}, {H}, {H}, w, bf, m, s, {k}, {k}, 1, 1, 1, 1, 1, 3, -5, 1, col);"
        sparse = (f"ep_conv2d_sparse(x, {ci}, {H}, {H}, y2, {co}, {H}, {H}, v, c, r, b, m, s, {k}, {k}, 1, 1, 1, 1, "
                  f"1, 3, -5, 1, acc);")
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, xs)
    return f"""#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <time.h>
{kernels}
{c_array("int8_t", "w", w)}{c_array("int8_t", "v", vals)}{c_array("uint16_t", "c", cols)}{c_array("uint32_t", "r", rows)}
{c_array("int32_t", "b", b)}{c_array("int32_t", "bf", bf)}{c_array("int32_t", "m", m0)}{c_array("int32_t", "s", sh)}{c_array("int8_t", "x", x)}
static int8_t y1[{ys}], y2[{ys}];
static int32_t acc[{acc}];
static int8_t col[{2 * int(np.prod(w.shape[1:]))}];
static double now(void) {{ struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }}
int main(void)
{{
    double td = 1e9, ts = 1e9;
    for (int run = 0; run < 5; run++) {{
        double t0 = now();
        for (int i = 0; i < {reps}; i++) {{ {dense} }}
        double t1 = now();
        for (int i = 0; i < {reps}; i++) {{ {sparse} }}
        double t2 = now();
        if (t1 - t0 < td) td = t1 - t0;
        if (t2 - t1 < ts) ts = t2 - t1;
    }}
    int same = memcmp(y1, y2, sizeof y1) == 0;
    printf("%.9f %.9f %d\\n", td / {reps}, ts / {reps}, same);
    (void)acc;
    (void)col;
    return 0;
}}
"""


# one-layer models: (label, module, input shape)
EMULATED = [
    ("conv2d 3x3, 32->32, 16x16", lambda: nn.Conv2d(32, 32, 3, padding=1), (32, 16, 16)),
    ("conv2d 1x1, 64->64, 16x16", lambda: nn.Conv2d(64, 64, 1), (64, 16, 16)),
    ("depthwise 3x3, 64 ch, 16x16", lambda: nn.Conv2d(64, 64, 3, padding=1, groups=64), (64, 16, 16)),
    ("conv1d k5, 64->64, L64", lambda: nn.Conv1d(64, 64, 5, padding=2), (64, 64)),
    ("linear 512->128", lambda: nn.Linear(512, 128), (512,)),
]
# CMSIS-NN's s8 kernels on the same layers (NHWC; arm_convolve_wrapper_s8, which picks the 1x1
# and 1xN fast paths; arm_depthwise_conv_wrapper_s8, which picks the 3x3 one;
# arm_fully_connected_per_channel_s8 with the vector sums made beforehand, as TFLM does at
# init), executed instructions per MAC, measured on 2026-12-03 with the same start-up code,
# harness, timer marks, arm-none-eabi-gcc -O2 and QEMU boards as edgeprune's rows
# (ARM-software/CMSIS-NN at 99f736a6). CMSIS-NN is not part of edgeprune; the script that built
# it is not kept here, so these are recorded figures, not re-measured by this benchmark.
CMSIS_NN = {  # layer -> (M0+, M4, M7)
    "conv2d 3x3, 32->32, 16x16": (6.70, 1.93, 1.93),
    "conv2d 1x1, 64->64, 16x16": (7.54, 2.03, 2.03),
    "depthwise 3x3, 64 ch, 16x16": (37.63, 7.85, 7.85),
    "conv1d k5, 64->64, L64": (6.48, 1.83, 1.83),
    "linear 512->128": (5.59, 1.99, 1.99),
}
# the same layers before the kernel rewrite (commit b4ddaea: direct loops with a bounds check per
# tap, no SIMD), instructions per MAC
BEFORE = {"cortex-m4": [19.57, 8.60, 21.89, 12.83, 6.08], "cortex-m0plus": [25.76, 15.35, 30.78, 11.37, 8.23]}


def emulated(cores: tuple[str, ...] = ("cortex-m0plus", "cortex-m4", "cortex-m7")) -> list[dict]:
    """Executed instructions per MAC of each one-layer model's generated C (dense kernels,
    bit-exact with the Python reference on 2 inputs), per core."""
    import torch

    from edgeprune.deploy import quantize_model
    from edgeprune.deploy.cgen import generate_c
    from edgeprune.deploy.emulate import emulate_and_check, toolchain_missing
    from edgeprune.metrics.measure import count_macs
    if toolchain_missing():
        print(f"emulated kernels skipped: {toolchain_missing()}")
        return []
    rows = []
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        for label, make, shape in EMULATED:
            m = nn.Sequential(make(), nn.ReLU()).eval()
            x = torch.randn(1, *shape)
            qm = quantize_model(m, x, [torch.randn(8, *shape)], samples=8)
            gen = generate_c(qm, tmp, sparse=False)
            macs = count_macs(m, x)
            for core in cores:
                r = emulate_and_check(qm, tmp, torch.randn(2, *shape).numpy(), core, len(gen.marks)).run
                layer = r.per_mark[0]  # the layer (with the input copy); its ReLU is fused
                rows.append({"layer": label, "core": core, "instructions": layer, "macs": macs,
                             "per_mac": layer / macs})
                print(f"{label:30} {core:14} {layer:12,.0f} instructions  {layer / macs:6.2f} per MAC", flush=True)
    return rows


# calibration shapes per (kind, class): several sizes, so that the per-MAC, per-output, copy and
# input terms separate (edgeprune.deploy.kernel_costs)
_LIN = {"x4": [(64, 32), (128, 64), (256, 16), (32, 96), (96, 8), (8, 8), (512, 4), (16, 128), (512, 64)],
        "any": [(61, 30), (125, 63), (250, 17), (33, 93), (95, 7), (9, 5), (510, 3), (15, 126), (510, 61)]}
_C1 = {"x4": [(4, 8, 5, 32), (8, 16, 3, 32), (16, 32, 5, 16), (12, 8, 1, 64), (8, 4, 3, 48), (4, 4, 9, 64),
              (32, 32, 3, 8), (64, 8, 1, 16), (64, 64, 5, 32), (128, 64, 3, 16)],
       "any": [(3, 7, 5, 32), (5, 13, 3, 32), (15, 31, 5, 16), (6, 9, 1, 40), (7, 5, 3, 48), (3, 5, 9, 64),
               (31, 30, 3, 8), (63, 9, 1, 16), (63, 61, 5, 32), (125, 62, 3, 16)]}
_C2 = {"x4": [(4, 8, 3, 8), (8, 16, 3, 8), (16, 16, 1, 8), (32, 8, 1, 6), (4, 4, 3, 12), (4, 8, 5, 10),
              (64, 16, 1, 4), (8, 8, 3, 16), (4, 16, 5, 14), (8, 8, 7, 10), (32, 32, 3, 12), (64, 64, 1, 12)],
       "any": [(3, 7, 3, 8), (5, 15, 3, 8), (15, 17, 1, 8), (31, 6, 1, 6), (3, 5, 3, 12), (3, 7, 5, 10),
               (63, 15, 1, 4), (7, 9, 3, 16), (1, 6, 5, 28), (6, 16, 5, 14), (3, 8, 7, 12), (31, 30, 3, 12),
               (62, 61, 1, 12)]}


def _calibration_models():
    """(kind, class, module, input shape, sparsity) for every calibration point."""
    for cls in ("x4", "any"):
        for i, o in _LIN[cls]:
            yield "linear", cls, nn.Sequential(nn.Linear(i, o), nn.ReLU()), (i,), 0.0
        for ci, co, k, L in _C1[cls]:
            yield "conv1d", cls, nn.Sequential(nn.Conv1d(ci, co, k, padding=k // 2), nn.ReLU()), (ci, L), 0.0
        for ci, co, k, H in _C2[cls]:
            yield "conv2d", cls, nn.Sequential(nn.Conv2d(ci, co, k, padding=k // 2), nn.ReLU()), (ci, H, H), 0.0
    for c, k, L in [(8, 3, 32), (16, 3, 64), (64, 3, 16), (12, 3, 24), (6, 3, 40), (32, 3, 8), (2, 3, 128),
                    (8, 5, 32), (4, 9, 16), (12, 5, 24), (2, 7, 128), (24, 1, 20), (16, 5, 10)]:
        yield "conv1d_depthwise", "k3" if k == 3 else "any", \
            nn.Sequential(nn.Conv1d(c, c, k, padding=k // 2, groups=c), nn.ReLU()), (c, L), 0.0
    for ci, co, k, L in [(8, 8, 3, 32), (16, 8, 5, 24), (4, 8, 1, 40), (8, 16, 3, 16), (12, 6, 5, 20), (4, 4, 9, 32),
                         (32, 8, 1, 12), (8, 8, 3, 48)]:
        yield "conv1d_grouped", "any", nn.Sequential(nn.Conv1d(ci, co, k, padding=k // 2, groups=2), nn.ReLU()), \
            (ci, L), 0.0
    for c, H, k in [(8, 8, 3), (16, 12, 3), (24, 6, 3), (4, 16, 3), (12, 10, 3), (32, 4, 3), (2, 24, 3), (20, 7, 3),
                    (8, 10, 5), (16, 8, 5), (4, 12, 7), (12, 9, 5), (6, 14, 7)]:
        yield "conv2d_depthwise", "3x3" if k == 3 else "any", \
            nn.Sequential(nn.Conv2d(c, c, k, padding=k // 2, groups=c), nn.ReLU()), (c, H, H), 0.0
    for c, H, k in [(8, 10, 3), (16, 6, 3), (6, 12, 5)]:  # without padding: no plane copy on the wide cores
        yield "conv2d_depthwise", "3x3" if k == 3 else "any", \
            nn.Sequential(nn.Conv2d(c, c, k, groups=c), nn.ReLU()), (c, H, H), 0.0
    for ci, co, k, H in [(8, 8, 3, 8), (16, 8, 3, 6), (4, 8, 1, 8), (8, 16, 3, 5), (12, 6, 3, 7), (4, 4, 5, 10),
                         (32, 8, 1, 4), (8, 8, 3, 12)]:
        yield "conv2d_grouped", "any", nn.Sequential(nn.Conv2d(ci, co, k, padding=k // 2, groups=2), nn.ReLU()), \
            (ci, H, H), 0.0
    for i, o in _LIN["x4"][:5] + [(200, 24), (48, 40), (320, 10)]:
        yield "linear_csr", "any", nn.Sequential(nn.Linear(i, o), nn.ReLU()), (i,), 0.8
    for ci, co, k, L in [(8, 16, 5, 32), (8, 16, 3, 32), (16, 32, 5, 16), (12, 8, 3, 64), (8, 8, 5, 48),
                         (4, 8, 9, 64), (32, 16, 3, 8), (16, 8, 5, 24)]:
        yield "conv1d_csr", "any", nn.Sequential(nn.Conv1d(ci, co, k, padding=k // 2), nn.ReLU()), (ci, L), 0.8
    for ci, co, k, H in [(4, 8, 3, 8), (8, 16, 3, 8), (16, 16, 3, 8), (32, 8, 1, 6), (4, 8, 3, 12),
                         (4, 8, 5, 10), (64, 16, 1, 4), (8, 8, 3, 16)]:
        yield "conv2d_csr", "any", nn.Sequential(nn.Conv2d(ci, co, k, padding=k // 2), nn.ReLU()), (ci, H, H), 0.8
    for c, L, k, st in [(8, 64, 2, 2), (16, 32, 4, 4), (4, 128, 2, 1), (12, 48, 3, 2), (6, 40, 3, 1), (32, 8, 2, 2),
                        (2, 200, 5, 5), (16, 20, 3, 3)]:
        yield "maxpool1d", "any", nn.Sequential(nn.MaxPool1d(k, st)), (c, L), 0.0
    for c, H, k, st in [(8, 16, 2, 2), (16, 8, 2, 2), (4, 12, 3, 3), (12, 10, 3, 1), (6, 9, 2, 1), (32, 4, 2, 2),
                        (2, 24, 4, 4), (16, 12, 3, 2)]:
        yield "maxpool2d", "any", nn.Sequential(nn.MaxPool2d(k, st)), (c, H, H), 0.0

def _measure(i: int, cores: tuple[str, ...], opt: str):
    """One calibration point on every core: (kind, class, shape, {core: (features, cycles,
    instructions, flash reads, flash bytes)}), the layer's emulated figures (mark 0)."""
    import torch

    from edgeprune.deploy import quantize_model
    from edgeprune.deploy.cgen import generate_c
    from edgeprune.deploy.emulate import emulate_and_check
    from edgeprune.deploy.kernel_costs import model_layers
    from edgeprune.deploy.timing import FlashModel
    kind, cls, m, shape, sparsity = list(_calibration_models())[i]
    torch.manual_seed(i)
    m = m.eval()
    for p in m.parameters():
        if p.dim() > 1 and sparsity:  # exactly this fraction of zeros
            with torch.no_grad():
                flat = p.view(-1)
                flat[torch.randperm(flat.numel())[:int(round(sparsity * flat.numel()))]] = 0
    x = torch.randn(1, *shape)
    layers = {core: model_layers(m, x, sparse=sparsity > 0, core=core)[0] for core in cores}
    for layer in layers.values():
        if (layer.kind, layer.shape_class) != (kind, cls):
            raise RuntimeError(f"calibration point {i} is a {layer.kind}/{layer.shape_class} layer, not {kind}/{cls}")
    qm = quantize_model(m, x, [torch.randn(8, *shape)], samples=8)
    counting = FlashModel(wait_states=1, line_bytes=4, cache_lines=0)  # counts reads; their cycles are removed
    got = {}
    with tempfile.TemporaryDirectory() as tmp:
        gen = generate_c(qm, tmp, sparse=sparsity > 0)
        for core in cores:
            r = emulate_and_check(qm, tmp, torch.randn(2, *shape).numpy(), core, len(gen.marks), opt=opt,
                                  flash=counting).run
            cpi0 = (r.cycles - r.flash["wait_cycles"]) / r.instructions  # zero wait states
            got[core] = (layers[core].features, r.per_mark[0] * cpi0, r.per_mark[0], r.flash["reads"],
                         r.flash["bytes"])
    return kind, cls, shape, got


def calibrate(cores: tuple[str, ...] = ("cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7"),
              out: str | Path | None = None, opt: str = "-O2") -> dict:
    """Measure every calibration model on every core and fit the kernel cost table; written to
    `out` (default: edgeprune/deploy/kernel_costs.json)."""
    import datetime
    import platform

    from edgeprune.deploy.emulate import toolchain_missing
    from edgeprune.deploy.kernel_costs import FEATURES, fit_entry
    why = toolchain_missing()
    if why:
        raise SystemExit(f"calibration needs the Arm toolchain and QEMU: {why}")
    points: dict = {}
    models = list(_calibration_models())
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(max_workers=max(1, min(4, (os.cpu_count() or 1)))) as pool:
        futures = [pool.submit(_measure, i, cores, opt) for i in range(len(models))]
        for i, fut in enumerate(futures):
            kind, cls, shape, got = fut.result()
            for core, row in got.items():
                points.setdefault(core, {}).setdefault(kind, {}).setdefault(cls, []).append(row)
            print(f"[{i + 1}/{len(models)}] {kind:17} {cls:3} {str(shape):16} measured on {len(got)} cores", flush=True)
    cores_out: dict = {}
    for core, kinds in points.items():
        for kind, classes in kinds.items():
            for cls, rows in classes.items():
                f = np.array([r[0] for r in rows], dtype=np.float64)
                cyc, ins, rd, nb = (np.array([r[k] for r in rows], dtype=np.float64) for k in (1, 2, 3, 4))
                e = fit_entry(f, cyc, rd, nb, ins)
                # the measurements behind the fit: features, cycles, instructions, flash reads, flash bytes
                e["points"] = [list(r[0]) + [round(r[1], 1), round(r[2], 1), r[3], r[4]] for r in rows]
                cores_out.setdefault(core, {}).setdefault(kind, {})[cls] = e
    gcc = subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    qemu = subprocess.run(["qemu-system-arm", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip() or "unknown"
    import unicorn
    tab = {"provenance": {
        "measured": datetime.date.today().isoformat(), "command": "python -m benchmarks.kernels --calibrate",
        "compiler": f"{gcc} {opt}", "emulator": f"{qemu}; unicorn {unicorn.__version__} for the cycle classes",
        "edgeprune_commit": commit, "host": platform.platform(),
        "features": list(FEATURES),
        "cycles": "zero-wait-state cycles from edgeprune.deploy.timing's per-class model",
        "note": "per (core, kind, class): least-squares coefficients over the features; flash_reads and "
                "flash_bytes are data reads from flash and the bytes they fetch"},
        "cores": cores_out}
    path = Path(out) if out else Path(__file__).resolve().parents[1] / "deploy" / "kernel_costs.json"
    path.write_text(json.dumps(tab, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path}")
    return tab


KERNELS_NOTE = (
    "How: dense convolutions build one im2col column per output position (padding handled when "
    "the column is built, never in the dot product) with the input zero point folded into the bias. "
    "On M4/M7 (DSP extension) each column is widened once to int16 pairs in the order SXTB16 gives "
    "a weight word, two positions interleaved, and a Thumb-2 loop (ep_dot2x2_wide) takes two output "
    "channels x two positions: 18 instructions per 16 MACs, every weight word loaded and sign-extended "
    "once for both positions. On M0+ (ARMv6-M: no SIMD, no multiply-accumulate, signed byte loads only "
    "with a register offset) a Thumb-1 loop (ep_dot4_v6m) takes four output channels: 13 instructions "
    "per 4 MACs plus 1.25 of loop. Depthwise layers copy each input plane once with its padding; on "
    "M0+ the copy flips the sign bits so that taps load with LDRB and an immediate offset (-128 sum(w) "
    "joins the bias), two outputs per step in Thumb-1 (ep_dw3x3_pair_v6m). Where M0+ falls short of "
    "3x over the old kernels: a fully connected layer uses each weight once, so every MAC needs at "
    "least a load, a multiply and an add (3 instructions; 3x of the old 8.23 would be 2.74), and a "
    "depthwise 3x3 output has only 9 MACs to share its requantisation, about 36 instructions on "
    "ARMv6-M (a 32x32->64-bit product from four 16-bit ones).")


def kernel_table_lines() -> list[str]:
    """docs/kernels.md's summary of the stored kernel cost table."""
    from edgeprune.deploy.kernel_costs import table
    t = table()
    if not t["cores"]:
        return []
    p = t["provenance"]
    counts = [e["shapes"] for c in t["cores"].values() for k in c.values() for e in k.values()]
    lo, hi = min(counts), max(counts)
    lines = ["", "## The kernel cost table `fit` prices layers with", "",
             f"`{p['command']}` measured it on {p['measured']} ({p['compiler']}; {p['emulator']}; edgeprune "
             f"{p['edgeprune_commit']}) and stored it in edgeprune/deploy/kernel_costs.json: per core, kernel kind "
             "and shape class (x4: output channels and inputs per output multiples of 4), zero-wait-state cycles = "
             "a x MACs + b x outputs + c x bytes copied to scratch + c' x bytes at the padded border + d x inner-loop runs "
             "+ e x input elements + f, "
             f"fitted on {lo}-{hi} one-layer models each (least squares of the relative error, coefficients >= 0). Cycles per MAC (a) and per output (b), and the fit's worst relative error on its own "
             "shapes:", "",
             "| kind | class | " + " | ".join(f"{c} a / b / err" for c in sorted(t["cores"])) + " |",
             "|---|---|" + "---|" * len(t["cores"])]
    kinds = sorted({(k, cl) for c in t["cores"].values() for k, v in c.items() for cl in v})
    for kind, cl in kinds:
        cells = []
        for core in sorted(t["cores"]):
            e = t["cores"][core].get(kind, {}).get(cl)
            cells.append("-" if e is None else f"{e['cycles'][0]:.2f} / {e['cycles'][1]:.0f} / {100 * e['max_relative_error']:.0f} %")
        lines.append(f"| {kind} | {cl} | " + " | ".join(cells) + " |")
    return lines


def run(out: str | None = "docs/kernels.md", cores: tuple[str, ...] = ("cortex-m0plus", "cortex-m4", "cortex-m7")
        ) -> list[dict]:
    emu = emulated(cores)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, (kind, dims) in LAYERS.items():
            shape = (dims[0], dims[1]) if kind == "linear" else \
                ((dims[1], dims[0], dims[2]) if kind == "conv1d" else (dims[1], dims[0], dims[2], dims[2]))
            for sp in SPARSITIES:
                rng = np.random.default_rng(1)
                w = rng.integers(-127, 128, shape).astype(np.int8)
                w[rng.random(shape) < sp] = 0
                src = Path(tmp) / "bench.c"
                src.write_text(_program(kind, dims, w, reps=20 if kind != "linear" else 2000))
                exe = Path(tmp) / "bench"
                subprocess.run(["gcc", "-std=c99", "-O2", "-Wno-unused-function", str(src), "-o", str(exe)], check=True)
                td, ts, same = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
                rows.append({"layer": label, "sparsity": sp, "dense_us": 1e6 * float(td), "sparse_us": 1e6 * float(ts),
                             "equal": same == "1", "nnz": int((w != 0).sum())})
                r = rows[-1]
                print(f"{label:28} {sp:4.0%}  dense {r['dense_us']:9.1f} us  sparse {r['sparse_us']:9.1f} us  "
                      f"speed-up {r['dense_us'] / r['sparse_us']:5.2f}x  outputs equal: {r['equal']}", flush=True)
    if out:
        lines = ["# edgeprune's int8 C kernels (measured)", "",
                 "Command: `python -m benchmarks.kernels`.", "",
                 "## Instructions per MAC on emulated Cortex-M cores", "",
                 "Each layer alone (with its ReLU, fused), int8 weights per output channel, dense kernels, "
                 "arm-none-eabi-gcc -O2, run on QEMU's MPS2 boards (M0+ code on the AN385) and counted "
                 "exactly (edgeprune.deploy.emulate); outputs bit-exact with the Python int8 reference. "
                 "The kernels are compiled as they are in a whole model (gcc's noipa: no call site's "
                 "constants propagate into them), so a layer costs the same alone as inside a model. "
                 "CMSIS-NN: its s8 kernels on the same layers, emulator, harness and compiler flags "
                 "(recorded figures, see CMSIS_NN in benchmarks/kernels.py; CMSIS-NN is not part "
                 "of edgeprune).", "",
                 "| layer | MACs | " + " | ".join(f"{c} | CMSIS-NN {c.removeprefix('cortex-')}" for c in cores) + " |",
                 "|---|---|" + "---|---|" * len(cores)]
        col = {"cortex-m0plus": 0, "cortex-m4": 1, "cortex-m7": 2}
        for label, *_ in EMULATED:
            got = {r["core"]: r for r in emu if r["layer"] == label}
            if got:
                first = next(iter(got.values()))
                cells = []
                for c in cores:
                    ref = CMSIS_NN[label][col[c]] if c in col else None
                    mine = f"{got[c]['per_mac']:.2f}" if c in got else "-"
                    cells += [mine, "-" if ref is None else f"{ref:.2f}"]
                lines.append(f"| {label} | {first['macs']:,} | " + " | ".join(cells) + " |")
        lines += ["", "Speed-up in executed instructions against the kernels before the rewrite (commit "
                  "b4ddaea: direct loops with a bounds check per tap, no SIMD; per MAC on M4: "
                  + ", ".join(map(str, BEFORE["cortex-m4"])) + "; on M0+: " + ", ".join(map(str, BEFORE["cortex-m0plus"]))
                  + "), and the ratio to CMSIS-NN on the same core (below 1: fewer instructions than CMSIS-NN):", "",
                  "| layer | " + " | ".join(f"{c} speed-up | {c} / CMSIS-NN" for c in BEFORE if c in cores) + " |",
                  "|---|" + "---|---|" * len([c for c in BEFORE if c in cores])]
        for i, (label, *_) in enumerate(EMULATED):
            got = {r["core"]: r for r in emu if r["layer"] == label}
            cells = []
            for c in (c for c in BEFORE if c in cores):
                if c in got:
                    cells += [f"{BEFORE[c][i] / got[c]['per_mac']:.1f}x", f"{got[c]['per_mac'] / CMSIS_NN[label][col[c]]:.2f}"]
                else:
                    cells += ["-", "-"]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines += ["", KERNELS_NOTE]
        lines += kernel_table_lines()
        lines += ["", "## Sparse (CSR) against dense kernels on this host", "",
                  "gcc -O2 on this 2-core x86 host. " + __doc__.split("\n\n", 2)[2].strip(), "",
                  "| layer | sparsity | dense (us/call) | sparse CSR (us/call) | speed-up | outputs equal |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['layer']} | {r['sparsity']:.0%} | {r['dense_us']:.1f} | {r['sparse_us']:.1f} | "
                  f"{r['dense_us'] / r['sparse_us']:.2f}x | {'yes' if r['equal'] else 'NO'} |" for r in rows]
        pays = []
        for label in LAYERS:
            faster = [r["sparsity"] for r in rows if r["layer"] == label and r["sparse_us"] < r["dense_us"]]
            pays.append(f"{label}: from {min(faster):.0%}" if faster else f"{label}: at none of these")
        lines += ["", "Reading it: the dense kernels are the column (im2col) ones, two output positions by two "
                  "channels at a time, compiled as in a generated model (not specialised to the layer: the "
                  "host compiler does not vectorise them for a known size); the CSR kernels walk one weight "
                  "at a time. Sparsity at which CSR was faster in this run: " + "; ".join(pays) + ". The "
                  "generator picks CSR where it is smaller, which is a storage decision, not a speed one."]
        write_doc(out, lines)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/kernels.md")
    p.add_argument("--cores", nargs="+", default=None)
    p.add_argument("--calibrate", action="store_true",
                   help="measure the kernel cost table (edgeprune/deploy/kernel_costs.json) instead")
    a = p.parse_args()
    if a.calibrate:
        calibrate(tuple(a.cores or ("cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7")))
    else:
        run(a.out, tuple(a.cores or ("cortex-m0plus", "cortex-m4", "cortex-m7")))


if __name__ == "__main__":
    main()
