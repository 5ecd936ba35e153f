"""Portable C99 for an Int8Model: weights as const arrays (dense, or compressed sparse rows
where that is smaller), one static arena for the activations laid out by a memory plan (buffers
whose lifetimes do not overlap share bytes), no dynamic allocation, no floating point.

    gen = generate_c(int8_model, out_dir, sparse=True)   # model.c, model.h, main.c
    check = compile_and_check(int8_model, out_dir, inputs)  # gcc, run, compare, `size`

`compile_and_check` compiles with the host's gcc (-std=c99 -Wall -Wextra -Werror), runs the
program on int8 inputs and compares its outputs with `Int8Model.run` (they must be equal), and
reports the sections `size` prints for the compiled model (flash: text + data, RAM: data + bss;
the stack is not included)."""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from edgeprune.deploy.int8 import Int8Model
from edgeprune.errors import ConfigError, VerificationError


@dataclass
class MemoryPlan:
    offsets: dict[int, int]  # root value id -> byte offset in the arena
    size: int
    root: dict[int, int]  # value id -> the value whose buffer it uses (aliases)


def plan_memory(model: Int8Model) -> MemoryPlan:
    """First-fit offsets, largest buffers first, for buffers alive at the same time."""
    root: dict[int, int] = {model.input_id: model.input_id}
    for op in model.ops:
        root[op.output] = root[op.inputs[0]] if op.kind == "alias" else op.output
    start = {model.input_id: -1}
    end: dict[int, int] = {}
    for k, op in enumerate(model.ops):
        r = root[op.output]
        start.setdefault(r, k)
        end[r] = max(end.get(r, k), k)
        for i in op.inputs:
            end[root[i]] = max(end.get(root[i], k), k)
    end[root[model.output_id]] = len(model.ops)
    size = {r: int(np.prod(model.shapes[r])) for r in set(root.values())}
    placed: list[tuple[int, int, int, int]] = []  # offset, size, start, end
    offsets = {}
    for r in sorted(size, key=lambda r: (-size[r], r)):
        s, e = start[r], end.get(r, start[r])
        conflicts = sorted((o, n) for o, n, a, b in placed if not (e < a or b < s))
        off = 0
        for o, n in conflicts:
            if off + size[r] <= o:
                break
            off = max(off, o + n)
        offsets[r] = off
        placed.append((off, size[r], s, e))
    total = max((o + n for o, n, _, _ in placed), default=0)
    return MemoryPlan(offsets, int(total), root)


def csr_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = w.reshape(w.shape[0], -1)
    nz = rows != 0
    cols = np.nonzero(nz)[1].astype(np.uint16)
    vals = rows[nz].astype(np.int8)
    ptr = np.concatenate([[0], np.cumsum(nz.sum(1))]).astype(np.uint32)
    return vals, cols, ptr


def csr_pays(nnz: int, rows: int, size: int) -> bool:
    """Whether CSR (int8 value + uint16 column per non-zero, uint32 row pointers) is smaller
    than the dense int8 weights: the generator's choice, and the cost model's."""
    return nnz * 3 + (rows + 1) * 4 < size


# cores whose gcc defines __ARM_FEATURE_SIMD32 (the DSP extension): their dense convolutions
# widen columns to int16 pairs (kernels.c, EP_WIDE), which takes more scratch
WIDE_CORES = ("cortex-m4", "cortex-m7")


def dense_scratch_bytes(n: int, wide: bool) -> int:
    """Scratch bytes of a dense (groups = 1) convolution with n inputs per output: two int8
    columns, or, on WIDE_CORES, the widened pair (16 bytes per four inputs, 32 for the
    leftovers) and one int8 column."""
    return 16 * (n // 4) + 32 + n if wide else 2 * n


def _plane(need: list[int], size: int, padded: bool) -> None:
    """A depthwise layer's plane copy: on every core but the wide ones, which copy padded planes only."""
    need[0] = max(need[0], size)
    if padded:
        need[1] = max(need[1], size)


def _mark_name(op, k: int) -> str:
    """A layer's label in per-layer counts: its kind, name where the model gave one."""
    name = op.attrs.get("name") if isinstance(op.attrs, dict) else None
    return f"{op.kind} {name}" if name else f"{op.kind} #{k}"


def c_array(ctype: str, name: str, data: np.ndarray) -> str:
    flat = np.asarray(data).reshape(-1)
    body = ",".join(str(int(v)) for v in flat) if flat.size else "0"
    return f"static const {ctype} {name}[{max(flat.size, 1)}] = {{{body}}};\n"


@dataclass
class Generated:
    files: dict[str, Path]
    arena_bytes: int
    scratch_bytes: int
    sparse_layers: list[str] = field(default_factory=list)
    weight_bytes: int = 0
    marks: list[str] = field(default_factory=list)  # what runs before each EP_MARK (emulated counts)
    scratch_bytes_wide: int = 0  # scratch_bytes on WIDE_CORES

    def scratch_for(self, core: str) -> int:
        """The scratch bytes the program allocates when built for `core`."""
        return self.scratch_bytes_wide if core in WIDE_CORES else self.scratch_bytes


def generate_c(model: Int8Model, out_dir: str | os.PathLike, sparse: bool = True, prefix: str = "ep") -> Generated:
    """Write model.h, model.c (kernels included) and main.c (a test harness reading int8
    inputs from stdin). With `sparse`, a layer whose CSR form is smaller than dense uses it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mem = plan_memory(model)
    q = model.q
    decls, calls = [], []
    acc_need = 0
    plane_need = [0, 0]  # a depthwise layer's padded plane: every core copies it / the wide cores
    dense_n = 0  # the most inputs per output of a dense convolution
    sparse_layers: list[str] = []
    wbytes = 0

    def buf(vid: int) -> str:
        return f"(arena + {mem.offsets[mem.root[vid]]})"

    marks: list[str] = []
    prev, seen = -1, 0

    def mark() -> None:  # the op before emitted a call: count its instructions apart
        nonlocal seen
        if len(calls) > seen:
            calls.append(f"EP_MARK({len(marks)});")
            marks.append(_mark_name(model.ops[prev], prev))
            seen = len(calls)

    for k, op in enumerate(model.ops):
        a = op.attrs
        if op.kind == "alias":
            continue
        mark()
        prev = k
        x, y = buf(op.inputs[0]), buf(op.output)
        zi, zo = q[op.inputs[0]].zero, q[op.output].zero
        ishape, oshape = model.shapes[op.inputs[0]], model.shapes[op.output]
        if op.kind in ("conv", "linear"):
            w = a["w_q"]
            vals, cols, ptr = csr_rows(w)
            use_sparse = sparse and csr_pays(vals.size, w.shape[0], w.size)
            bias = np.asarray(a["b_q"], dtype=np.int64)
            if not use_sparse and (op.kind == "linear" or a["groups"] == 1):
                # the dense column kernels take the input zero point folded into the bias
                bias = bias - int(zi) * w.reshape(w.shape[0], -1).astype(np.int64).sum(1)
                if op.kind == "conv":
                    dense_n = max(dense_n, int(np.prod(w.shape[1:])))
            if np.abs(bias).max(initial=0) >= 2 ** 31:
                raise ConfigError(f"layer {a.get('name')}: the bias does not fit 32 bits after folding the zero point")
            decls.append(c_array("int32_t", f"b{k}", bias) + c_array("int32_t", f"m{k}", a["m0"])
                         + c_array("int32_t", f"s{k}", a["shift"]))
            wbytes += 4 * 3 * len(a["b_q"])
            if use_sparse:
                if w.reshape(w.shape[0], -1).shape[1] > 65535:
                    raise ConfigError(f"layer {a.get('name')}: too many inputs per row for 16-bit CSR columns")
                decls.append(c_array("int8_t", f"v{k}", vals) + c_array("uint16_t", f"c{k}", cols)
                             + c_array("uint32_t", f"r{k}", ptr))
                sparse_layers.append(a.get("name", f"op{k}"))
                wbytes += vals.size * 3 + ptr.size * 4
            else:
                decls.append(c_array("int8_t", f"w{k}", w))
                wbytes += w.size
            relu = int(bool(a["relu"]))
            if op.kind == "linear":
                n = int(np.prod(ishape))
                if use_sparse:
                    calls.append(f"ep_linear_sparse({x}, {y}, {w.shape[0]}, v{k}, c{k}, r{k}, b{k}, m{k}, s{k}, "
                                 f"{zi}, {zo}, {relu});")
                else:
                    calls.append(f"ep_linear({x}, {n}, {y}, {w.shape[0]}, w{k}, b{k}, m{k}, s{k}, {zi}, {zo}, {relu});")
            elif a["dims"] == 1:
                geo = f"{ishape[0]}, {ishape[1]}, {y}, {oshape[0]}, {oshape[1]}"
                tail = f"{w.shape[2]}, {a['stride']}, {a['padding']}, {a['groups']}, {zi}, {zo}, {relu}"
                if use_sparse:
                    acc_need = max(acc_need, oshape[1])
                    calls.append(f"ep_conv1d_sparse({x}, {geo}, v{k}, c{k}, r{k}, b{k}, m{k}, s{k}, {tail}, acc);")
                else:
                    if a["groups"] == ishape[0]:  # depthwise: one input row with its padding
                        _plane(plane_need, ishape[1] + 2 * a["padding"], a["padding"] > 0)
                    scratch = "col" if a["groups"] in (1, ishape[0]) else 0
                    calls.append(f"ep_conv1d({x}, {geo}, w{k}, b{k}, m{k}, s{k}, {tail}, {scratch});")
            else:
                geo = f"{ishape[0]}, {ishape[1]}, {ishape[2]}, {y}, {oshape[0]}, {oshape[1]}, {oshape[2]}"
                tail = (f"{w.shape[2]}, {w.shape[3]}, {a['stride'][0]}, {a['stride'][1]}, {a['padding'][0]}, "
                        f"{a['padding'][1]}, {a['groups']}, {zi}, {zo}, {relu}")
                if use_sparse:
                    acc_need = max(acc_need, oshape[1] * oshape[2])
                    calls.append(f"ep_conv2d_sparse({x}, {geo}, v{k}, c{k}, r{k}, b{k}, m{k}, s{k}, {tail}, acc);")
                else:
                    if a["groups"] == ishape[0]:  # depthwise: one input plane with its padding
                        _plane(plane_need, (ishape[1] + 2 * a["padding"][0]) * (ishape[2] + 2 * a["padding"][1]),
                               any(a["padding"]))
                    scratch = "col" if a["groups"] in (1, ishape[0]) else 0
                    calls.append(f"ep_conv2d({x}, {geo}, w{k}, b{k}, m{k}, s{k}, {tail}, {scratch});")
        elif op.kind == "relu":
            calls.append(f"ep_relu({x}, {y}, {int(np.prod(oshape))}, {zi});")
        elif op.kind == "maxpool":
            if a["dims"] == 1:
                calls.append(f"ep_maxpool1d({x}, {ishape[0]}, {ishape[1]}, {y}, {oshape[1]}, {a['kernel']}, "
                             f"{a['stride']}, {a['padding']});")
            else:
                calls.append(f"ep_maxpool2d({x}, {ishape[0]}, {ishape[1]}, {ishape[2]}, {y}, {oshape[1]}, "
                             f"{oshape[2]}, {a['kernel'][0]}, {a['kernel'][1]}, {a['stride'][0]}, {a['stride'][1]}, "
                             f"{a['padding'][0]}, {a['padding'][1]});")
        elif op.kind == "gap":
            n = int(np.prod(ishape[1:]))
            calls.append(f"ep_gap({x}, {ishape[0]}, {n}, {y}, {zi}, {zo}, {int(a['m0'][0])}, {int(a['shift'][0])});")
        elif op.kind == "add":
            zb = q[op.inputs[1]].zero
            calls.append(f"ep_add({x}, {buf(op.inputs[1])}, {y}, {int(np.prod(oshape))}, {zi}, {zb}, {zo}, "
                         f"{int(a['m0'][0])}, {int(a['shift'][0])}, {int(a['m0'][1])}, {int(a['shift'][1])}, "
                         f"{int(bool(a['relu']))});")
    mark()
    n_in, n_out = int(np.prod(model.shapes[model.input_id])), int(np.prod(model.shapes[model.output_id]))
    qi, qo = q[model.input_id], q[model.output_id]
    header = f"""/* generated by edgeprune: int8 inference, no dynamic allocation */
#ifndef {prefix.upper()}_MODEL_H
#define {prefix.upper()}_MODEL_H
#include <stdint.h>
#define EP_INPUT_SIZE {n_in}
#define EP_OUTPUT_SIZE {n_out}
#define EP_ARENA_BYTES {mem.size}
/* input: q = round(x / EP_INPUT_SCALE) + EP_INPUT_ZERO, clamped to [-128, 127]; output: x = (q - zero) * scale */
#define EP_INPUT_SCALE {qi.scale!r}f
#define EP_INPUT_ZERO {qi.zero}
#define EP_OUTPUT_SCALE {qo.scale!r}f
#define EP_OUTPUT_ZERO {qo.zero}
void ep_run(const int8_t *input, int8_t *output);
#endif
"""
    kernels = resources.files("edgeprune.deploy").joinpath("kernels.c").read_text()
    acc_decl = f"static int32_t acc[{max(acc_need, 1)}];\n" if acc_need else ""
    plain, wide = (max(plane_need[w], dense_scratch_bytes(dense_n, w) if dense_n else 0) for w in (False, True))
    if plain or wide:  # word-aligned: the widened columns are read as words
        acc_decl += (f"#if defined(EP_WIDE)\nstatic int32_t ep_scratch[{max((wide + 3) // 4, 1)}];\n#else\n"
                     f"static int32_t ep_scratch[{max((plain + 3) // 4, 1)}];\n#endif\n"
                     "static int8_t *const col = (int8_t *)ep_scratch;\n")
    body = "\n    ".join(calls)
    in_off = mem.offsets[mem.root[model.input_id]]
    out_off = mem.offsets[mem.root[model.output_id]]
    source = f"""/* generated by edgeprune from an int8 model; kernels below are edgeprune's (portable C99) */
#include "model.h"
#ifdef EP_MARKS /* emulation builds count instructions per layer (edgeprune.deploy.emulate) */
void ep_mark(int k);
#define EP_MARK(k) ep_mark(k)
#else
#define EP_MARK(k)
#endif
{kernels}
{''.join(decls)}
static int8_t arena[{max(mem.size, 1)}];
{acc_decl}
void ep_run(const int8_t *input, int8_t *output)
{{
    memcpy(arena + {in_off}, input, {n_in});
    {body}
    memcpy(output, arena + {out_off}, {n_out});
    EP_MARK({len(marks)});
}}
"""
    main = """/* test harness: stdin = int32 count, then count inputs (int8); stdout = count outputs (int8) */
#include <stdio.h>
#include "model.h"
int main(void)
{
    static int8_t in[EP_INPUT_SIZE], out[EP_OUTPUT_SIZE];
    int32_t n = 0;
    if (fread(&n, sizeof n, 1, stdin) != 1) return 1;
    for (int32_t i = 0; i < n; i++) {
        if (fread(in, 1, EP_INPUT_SIZE, stdin) != EP_INPUT_SIZE) return 2;
        ep_run(in, out);
        if (fwrite(out, 1, EP_OUTPUT_SIZE, stdout) != EP_OUTPUT_SIZE) return 3;
    }
    return 0;
}
"""
    files = {"model.h": out / "model.h", "model.c": out / "model.c", "main.c": out / "main.c"}
    for name, text in (("model.h", header), ("model.c", source), ("main.c", main)):
        files[name].write_text(text)
    return Generated(files, mem.size, 4 * acc_need + 4 * ((plain + 3) // 4), sparse_layers, wbytes,
                     marks + ["output copy"], 4 * acc_need + 4 * ((wide + 3) // 4))


class SectionSizes:
    """What `size` reports for compiled code: flash = text + data, RAM = data + bss (the stack
    is not included)."""
    text: int
    data: int
    bss: int

    @property
    def flash_bytes(self) -> int:
        return self.text + self.data

    @property
    def ram_bytes(self) -> int:
        return self.data + self.bss


@dataclass
class CCheck(SectionSizes):
    equal: bool
    samples: int
    mismatches: int
    max_diff: int
    text: int
    data: int
    bss: int
    compiler: str


def _size(obj: Path, size_tool: str) -> tuple[int, int, int]:
    out = subprocess.run([size_tool, str(obj)], capture_output=True, text=True, check=True).stdout.splitlines()
    text, data, bss = (int(v) for v in out[1].split()[:3])
    return text, data, bss


def compile_and_check(model: Int8Model, out_dir: str | os.PathLike, inputs: np.ndarray, cc: str = "gcc",
                      opt: str = "-O2", raise_on_mismatch: bool = True) -> CCheck:
    """Compile the generated files, run them on `inputs` (float samples, no batch dim), compare
    with the Python reference. Raises VerificationError on any difference."""
    out = Path(out_dir)
    if shutil.which(cc) is None:
        raise ConfigError(f"C compiler {cc!r} not found; install gcc to check the generated code")
    flags = ["-std=c99", opt, "-Wall", "-Wextra", "-Werror", "-Wno-unused-function"]
    subprocess.run([cc, *flags, "-c", str(out / "model.c"), "-o", str(out / "model.o")], check=True,
                   capture_output=True, text=True)
    subprocess.run([cc, *flags, str(out / "main.c"), str(out / "model.o"), "-o", str(out / "model_test")],
                   check=True, capture_output=True, text=True)
    xq = np.stack([model.quantize_input(x) for x in inputs]).astype(np.int8)
    got = run_compiled(out, xq)
    want = np.stack([model.run(x).reshape(-1) for x in xq])
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    mism = int((diff.max(1) > 0).sum())
    text, data, bss = _size(out / "model.o", shutil.which("size") or "size")
    check = CCheck(mism == 0, len(xq), mism, int(diff.max()) if diff.size else 0, text, data, bss, cc)
    if raise_on_mismatch and not check.equal:
        raise VerificationError(f"the generated C differs from the Python int8 reference on {mism} of {len(xq)} "
                                f"inputs (max difference {check.max_diff} steps)")
    return check


def run_compiled(out_dir: str | os.PathLike, inputs_q: np.ndarray, timing: dict | None = None) -> np.ndarray:
    """Outputs (int8, one row per input) of the compiled test program on int8 inputs. With
    `timing`, its wall time per input on this host is stored there (`us_per_input`, I/O included)."""
    import time
    xq = np.ascontiguousarray(inputs_q, dtype=np.int8)
    stdin = np.int32(len(xq)).tobytes() + xq.tobytes()
    t0 = time.perf_counter()
    res = subprocess.run([str(Path(out_dir) / "model_test")], input=stdin, capture_output=True, check=True)
    if timing is not None:
        timing["us_per_input"] = 1e6 * (time.perf_counter() - t0) / max(len(xq), 1)
    return np.frombuffer(res.stdout, dtype=np.int8).reshape(len(xq), -1)


CORES = {"cortex-m0plus": "cortex-m0plus", "cortex-m4": "cortex-m4", "cortex-m7": "cortex-m7"}


def cross_compile_size(out_dir: str | os.PathLike, core: str, opt: str = "-Os") -> CCheck | None:
    """Sections of model.c compiled for a Cortex-M core with arm-none-eabi-gcc (None when the
    core is not an Arm Cortex-M or the toolchain is not installed: Debian's gcc-arm-none-eabi)."""
    cpu = CORES.get(core)
    if cpu is None or shutil.which("arm-none-eabi-gcc") is None:
        return None
    out = Path(out_dir)
    obj = out / f"model_{cpu}.o"
    subprocess.run(["arm-none-eabi-gcc", "-std=c99", f"-mcpu={cpu}", "-mthumb", opt, "-Wall", "-Wextra", "-Werror",
                    "-Wno-unused-function", "-c", str(out / "model.c"), "-o", str(obj)], check=True,
                   capture_output=True, text=True)
    text, data, bss = _size(obj, shutil.which("arm-none-eabi-size") or "arm-none-eabi-size")
    return CCheck(True, 0, 0, 0, text, data, bss, f"arm-none-eabi-gcc -mcpu={cpu} {opt}")
