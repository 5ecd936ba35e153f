"""edgeprune's int8 C kernels, measured: instructions per MAC of every layer type on emulated
Cortex-M0+, M4 and M7 cores (edgeprune.deploy.emulate), and the speed of the sparse (CSR)
kernels against the dense ones on this host at 50, 80, 90 and 95 % unstructured sparsity.

    python -m edgeprune.benchmarks.kernels [--out docs/kernels.md] [--cores cortex-m0plus cortex-m4 cortex-m7]

For each layer shape, random int8 weights are zeroed at random to the sparsity, the dense and
the sparse kernel compute the same layer (their outputs are compared: equal), compiled with gcc
-O2, each timed over repeated calls (median of 5 runs). Host timings, not a microcontroller's:
the ratio is what carries over, roughly; a Cortex-M has no cache and no out-of-order core."""
from __future__ import annotations

import argparse
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np
from torch import nn

from edgeprune.benchmarks import write_doc
from edgeprune.deploy.cgen import _array, _csr

LAYERS = {
    "linear 512x512": ("linear", (512, 512)),
    "conv1d 64->64, k5, L64": ("conv1d", (64, 64, 5, 64)),
    "conv2d 32->32, 3x3, 16x16": ("conv2d", (32, 32, 3, 16)),
}
SPARSITIES = (0.0, 0.5, 0.8, 0.9, 0.95)


def _program(kind: str, dims: tuple, w: np.ndarray, reps: int) -> str:
    vals, cols, rows = _csr(w)
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
{_array("int8_t", "w", w)}{_array("int8_t", "v", vals)}{_array("uint16_t", "c", cols)}{_array("uint32_t", "r", rows)}
{_array("int32_t", "b", b)}{_array("int32_t", "bf", bf)}{_array("int32_t", "m", m0)}{_array("int32_t", "s", sh)}{_array("int8_t", "x", x)}
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


# one-layer models: (label, module, input shape); the reference figures are CMSIS-NN's s8
# kernels on the same emulator, as measured for the issue that asked for these kernels
EMULATED = [
    ("conv2d 3x3, 32->32, 16x16", lambda: nn.Conv2d(32, 32, 3, padding=1), (32, 16, 16), "1.7-2.0"),
    ("conv2d 1x1, 64->64, 16x16", lambda: nn.Conv2d(64, 64, 1), (64, 16, 16), "2.1"),
    ("depthwise 3x3, 64 ch, 16x16", lambda: nn.Conv2d(64, 64, 3, padding=1, groups=64), (64, 16, 16), "22"),
    ("conv1d k5, 64->64, L64", lambda: nn.Conv1d(64, 64, 5, padding=2), (64, 64), "-"),
    ("linear 512->128", lambda: nn.Linear(512, 128), (512,), "2.2-2.6"),
]


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
        for label, make, shape, ref in EMULATED:
            m = nn.Sequential(make(), nn.ReLU()).eval()
            x = torch.randn(1, *shape)
            qm = quantize_model(m, x, [torch.randn(8, *shape)], samples=8)
            gen = generate_c(qm, tmp, sparse=False)
            macs = count_macs(m, x)
            for core in cores:
                r = emulate_and_check(qm, tmp, torch.randn(2, *shape).numpy(), core, len(gen.marks)).run
                layer = r.per_mark[0]  # the layer (with the input copy); its ReLU is fused
                rows.append({"layer": label, "core": core, "instructions": layer, "macs": macs,
                             "per_mac": layer / macs, "cmsis_nn_m4": ref})
                print(f"{label:30} {core:14} {layer:12,.0f} instructions  {layer / macs:6.2f} per MAC", flush=True)
    return rows


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
                 "Command: `python -m edgeprune.benchmarks.kernels`.", "",
                 "## Instructions per MAC on emulated Cortex-M cores", "",
                 "Each layer alone (with its ReLU, fused), int8 weights per output channel, dense kernels, "
                 "arm-none-eabi-gcc -O2, run on QEMU's MPS2 boards (M0+ code on the AN385) and counted "
                 "exactly (edgeprune.deploy.emulate); outputs bit-exact with the Python int8 reference. "
                 "The CMSIS-NN column is the figure the issue reported for CMSIS-NN's s8 kernels on an "
                 "emulated M4 (not re-measured here: CMSIS-NN is not part of edgeprune).", "",
                 "| layer | MACs | " + " | ".join(f"{c} (instr/MAC)" for c in cores) + " | CMSIS-NN, M4 |",
                 "|---|---|" + "---|" * (len(cores) + 1)]
        for label, *_ in EMULATED:
            got = {r["core"]: r for r in emu if r["layer"] == label}
            if got:
                first = next(iter(got.values()))
                lines.append(f"| {label} | {first['macs']:,} | " + " | ".join(
                    f"{got[c]['per_mac']:.2f}" if c in got else "-" for c in cores) + f" | {first['cmsis_nn_m4']} |")
        lines += ["", "Before the column kernels (commit b4ddaea, direct loops with a bounds check per tap, "
                  "no SIMD), the same layers took, per MAC, on M4: 19.57, 8.60, 21.89, 12.83, 6.08; on M0+: "
                  "25.76, 15.35, 30.78, 11.37, 8.23. Within 1.25x of CMSIS-NN on the M4 now: every layer "
                  "type with a reference figure. On M0+ (no SIMD, Thumb-1 loads with register offsets only) "
                  "the gain is 4.4x on the 3x3 convolution but 1.4-2.2x on the others, short of the 3x asked for, and depthwise is 5 % slower.",
                  "", "## Sparse (CSR) against dense kernels on this host", "",
                 "gcc -O2 on this 2-core x86 host. " + __doc__.split("\n\n", 2)[2].strip(), "",
                 "| layer | sparsity | dense (us/call) | sparse CSR (us/call) | speed-up | outputs equal |",
                 "|---|---|---|---|---|---|"]
        lines += [f"| {r['layer']} | {r['sparsity']:.0%} | {r['dense_us']:.1f} | {r['sparse_us']:.1f} | "
                  f"{r['dense_us'] / r['sparse_us']:.2f}x | {'yes' if r['equal'] else 'NO'} |" for r in rows]
        lines += ["", "Reading it: the dense kernels are the column (im2col) ones, two output positions by two "
                  "channels at a time; the CSR kernels still walk one weight at a time. On this host sparse "
                  "pays from about 75 % sparsity for the linear layer and from about 85 % for convolutions. "
                  "The generator picks CSR where it is smaller, which is a storage decision, not a speed one."]
        write_doc(out, lines)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/kernels.md")
    p.add_argument("--cores", nargs="+", default=["cortex-m0plus", "cortex-m4", "cortex-m7"])
    a = p.parse_args()
    run(a.out, tuple(a.cores))


if __name__ == "__main__":
    main()
