"""Run generated C on emulated Cortex-M cores and count what it executes.

The program edgeprune.deploy.cgen writes is cross-compiled with Debian's `arm-none-eabi-gcc`
and newlib for the core, linked with a start-up file and linker script of our own (the MPS2
boards need a vector table at address 0), and run on `qemu-system-arm`'s MPS2 boards:

    cortex-m0plus -> mps2-an385 (ARMv6-M code runs on the board's Cortex-M3)
    cortex-m3     -> mps2-an385
    cortex-m4     -> mps2-an386
    cortex-m7     -> mps2-an500

Inputs and outputs travel through semihosting files (in.bin, out.bin). QEMU runs with
`-icount shift=S`: every executed instruction advances the virtual clock by exactly 2**S ns, and
the board's CMSDK timer counts that clock at 25 MHz, so the harness's timer reads around every
layer (the EP_MARK hooks of the generated code) are executed-instruction counts:
instructions = ticks / (2**S ns x 25 MHz). tests/test_emulate.py checks the ratio on a loop of
known length.

QEMU counts instructions, not cycles. `EmulatedRun.cycles` prices them with the cycles per
instruction of edgeprune.deploy.timing's per-class model (the first input run again in Unicorn,
every instruction charged its class's cycles from Arm's TRMs), or, where unicorn and capstone
are not installed, the flat per-core CYCLES_PER_INSTRUCTION below. Both are models, not a
cycle-accurate simulation (see edgeprune.deploy.timing)."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from edgeprune.deploy.cgen import SectionSizes
from edgeprune.errors import ConfigError, VerificationError

# core -> (QEMU machine, gcc -mcpu); integer-only kernels, so soft-float ABI everywhere
BOARDS = {
    "cortex-m0plus": ("mps2-an385", "cortex-m0plus"),
    "cortex-m3": ("mps2-an385", "cortex-m3"),
    "cortex-m4": ("mps2-an386", "cortex-m4"),
    "cortex-m7": ("mps2-an500", "cortex-m7"),
}
ICOUNT_SHIFT = 10  # 1024 ns of virtual time per instruction
TIMER_HZ = 25_000_000  # the MPS2 boards' peripheral clock (QEMU hw/arm/mps2.c)
TICKS_PER_INSTRUCTION = (2 ** ICOUNT_SHIFT) * 1e-9 * TIMER_HZ  # 25.6

# Fallback cycles per executed instruction (no unicorn/capstone), a simplification: the kernels'
# inner loops are loads, a multiply-accumulate, address arithmetic and one taken branch. Arm's
# Technical Reference Manuals give 1 cycle for data processing and MLA on M3/M4 (M0+: MULS 1
# cycle with the fast multiplier), 2 for a load (pipelined to 1 when loads follow each other on
# M3/M4), 1 + 1..3 pipeline refill for a taken branch (M0+: 2 cycles for a taken branch, loads
# 2). We count 1 cycle per instruction plus the extra cycles of the loop's loads and branch
# spread over its instructions: M0+ 1.4, M3/M4 1.25. The M7 dual-issues and has caches (1 cycle
# per instruction assumed: the TCM-resident case without dual-issue credit). Zero-wait-state
# memory is assumed; a profile's flash wait states are not modelled yet.
CYCLES_PER_INSTRUCTION = {"cortex-m0plus": 1.4, "cortex-m3": 1.25, "cortex-m4": 1.25, "cortex-m7": 1.0}


def cycle_model_missing() -> str | None:
    from edgeprune.deploy.timing import missing
    return missing()


def toolchain_missing() -> str | None:
    """Why code cannot be emulated here (None if it can)."""
    for tool, pkg in (("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi"),
                      ("qemu-system-arm", "qemu-system-arm")):
        if shutil.which(tool) is None:
            return f"{tool} not found; install Debian's {pkg}"
    return None


def _support(name: str) -> str:
    return str(resources.files("edgeprune.deploy").joinpath("cortexm", name))


@dataclass
class Build(SectionSizes):
    elf: Path
    core: str
    opt: str
    text: int  # the model's object file at the same flags (the harness not included)
    data: int
    bss: int


def build(c_dir: str | os.PathLike, core: str, marks: int, opt: str = "-O2") -> Build:
    """Cross-compile model.c with the emulation harness for `core` (one of BOARDS)."""
    if core not in BOARDS:
        raise ConfigError(f"no emulator for core {core!r}; edgeprune emulates {sorted(BOARDS)}")
    why = toolchain_missing()
    if why:
        raise ConfigError(why)
    c_dir = Path(c_dir)
    _, cpu = BOARDS[core]
    flags = ["-std=c99", f"-mcpu={cpu}", "-mthumb", "-mfloat-abi=soft", opt, "-Wall", "-Wextra", "-Werror",
             "-Wno-unused-function", "-ffunction-sections", "-fdata-sections"]
    obj = c_dir / f"model_{cpu}{opt.replace('-', '_')}.o"
    elf = c_dir / f"model_{cpu}{opt.replace('-', '_')}.elf"
    run = dict(check=False, capture_output=True, text=True)
    steps = [["arm-none-eabi-gcc", *flags, "-c", str(c_dir / "model.c"), "-o", str(obj)],
             ["arm-none-eabi-gcc", *flags, f"-DEP_MARKS={marks}", "-nostartfiles", "-T", _support("mps2.ld"),
              "-Wl,--gc-sections", f"-I{c_dir}", _support("startup.c"), _support("harness.c"),
              # the model again, with its per-layer marks switched on
              "-x", "c", str(c_dir / "model.c"), "-o", str(elf), "-lc"]]
    for cmd in steps:
        res = subprocess.run(cmd, **run)
        if res.returncode:
            raise VerificationError(f"arm-none-eabi-gcc failed for {core}: {res.stderr.strip()[-800:]}")
    out = subprocess.run(["arm-none-eabi-size", str(obj)], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(v) for v in out.splitlines()[1].split()[:3])
    return Build(elf, core, opt, text, data, bss)


@dataclass
class EmulatedRun:
    core: str
    outputs: np.ndarray  # int8, one row per input
    instructions: float  # per inference, mean over the inputs
    per_mark: list[float] = field(default_factory=list)  # per inference, the layers of Generated.marks
    cpi: float | None = None  # cycles per instruction from the class model (edgeprune.deploy.timing)
    by_class: dict = field(default_factory=dict)  # executed instructions per class, first input
    flash: dict = field(default_factory=dict)  # the flash model and its reads, misses, wait cycles

    @property
    def cycles_per_instruction(self) -> float:
        """The class model's figure where it ran, else the flat CYCLES_PER_INSTRUCTION."""
        return self.cpi if self.cpi is not None else CYCLES_PER_INSTRUCTION[self.core]

    @property
    def cycles(self) -> float:
        return self.instructions * self.cycles_per_instruction

    def latency_ms(self, clock_hz: float) -> float:
        return 1e3 * self.cycles / clock_hz


def run(b: Build, inputs_q: np.ndarray, marks: int, timeout: float = 600.0) -> EmulatedRun:
    """Outputs and instruction counts of the built program on int8 inputs (one row each)."""
    machine, _ = BOARDS[b.core]
    xq = np.ascontiguousarray(inputs_q, dtype=np.int8).reshape(len(inputs_q), -1)
    with tempfile.TemporaryDirectory(prefix="edgeprune-emu-") as tmp:
        t = Path(tmp)
        (t / "in.bin").write_bytes(np.int32(len(xq)).tobytes() + xq.tobytes())
        cmd = ["qemu-system-arm", "-M", machine, "-nographic", "-monitor", "none", "-serial", "none",
               "-semihosting-config", "enable=on,target=native", "-icount", f"shift={ICOUNT_SHIFT}",
               "-kernel", str(Path(b.elf).resolve())]
        try:
            res = subprocess.run(cmd, cwd=t, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise VerificationError(f"the emulated {b.core} did not finish within {timeout:.0f} s") from None
        if res.returncode:
            raise VerificationError(f"the program on the emulated {b.core} stopped with status {res.returncode}"
                                    f"{' (a fault)' if res.returncode == 90 else ''}: "
                                    f"{res.stderr.decode(errors='replace')[-400:]}")
        out = np.frombuffer((t / "out.bin").read_bytes(), dtype=np.int8)
        ticks = np.frombuffer((t / "ticks.bin").read_bytes(), dtype=np.uint64).astype(np.float64)
    n = max(len(xq), 1)
    per_mark_overhead = ticks[marks + 1] / n  # two marks in a row: one mark's own cost
    layers = np.maximum(ticks[:marks] / n - per_mark_overhead, 0.0) / TICKS_PER_INSTRUCTION
    return EmulatedRun(b.core, out.reshape(len(xq), -1), float(layers.sum()), [float(v) for v in layers])


@dataclass
class EmulatedCheck:
    equal: bool
    samples: int
    mismatches: int
    run: EmulatedRun
    build: Build


def emulate_and_check(model, c_dir: str | os.PathLike, inputs: np.ndarray, core: str, marks: int,
                      opt: str = "-O2", raise_on_mismatch: bool = True, timing: bool = True,
                      flash=None) -> EmulatedCheck:
    """Build the generated C for `core`, run it emulated on `inputs` (float samples), compare
    every output with the Python int8 reference (they must be equal). With `timing` (and
    unicorn + capstone installed), the first input also runs through the per-class cycle model
    (edgeprune.deploy.timing), whose cycles per instruction then price the QEMU count; `flash`
    (a timing.FlashModel, e.g. FlashModel.of(profile)) adds the flash wait states."""
    b = build(c_dir, core, marks, opt)
    xq = np.stack([model.quantize_input(x) for x in inputs]).astype(np.int8)
    r = run(b, xq, marks)
    if timing and cycle_model_missing() is None:  # what the executed instructions cost, by class
        from edgeprune.deploy.timing import cycle_profile
        prof = cycle_profile(b.elf, core, xq[0], r.outputs.shape[1], flash)
        r.cpi, r.by_class = prof.cycles_per_instruction, prof.by_class
        if flash is not None and flash.wait_states:
            r.flash = {"wait_states": flash.wait_states, "line_bytes": flash.line_bytes,
                       "cache_lines": flash.cache_lines, "reads": prof.flash_reads, "misses": prof.flash_misses,
                       "bytes": prof.flash_bytes,
                       "wait_cycles": prof.wait_cycles}
    want = np.stack([model.run(x).reshape(-1) for x in xq])
    mism = int((r.outputs != want).any(1).sum())
    check = EmulatedCheck(mism == 0, len(xq), mism, r, b)
    if raise_on_mismatch and mism:
        raise VerificationError(f"the generated C on the emulated {core} differs from the Python int8 reference "
                                f"on {mism} of {len(xq)} inputs")
    return check
