"""Cycles of generated C on a Cortex-M core, from the instructions it executes, by class.

QEMU (edgeprune.deploy.emulate) counts instructions exactly but not what they are. Here the same
ELF runs one inference in Unicorn (QEMU's CPU emulation as a library, `pip install unicorn
capstone`): a hook on every executed basic block counts its executions and whether the branch
that ends it was taken; Capstone disassembles each block once, and every instruction is charged
the cycles its class costs on the core. The table, from Arm's Technical Reference Manuals
(Cortex-M0+ r0p1 "Instruction set summary", Cortex-M3 r2p1 and Cortex-M4 r0p1 "Processor
instruction timings"), with their simplifications:

    class                M0+            M3              M4              M7 (see below)
    data processing      1              1               1               1
    multiply (MUL)       1 (fast mult)  1               1               1
    multiply-add, SIMD   -              MLA 2           1 (MLA, SMLAD)  1
    load (LDR*)          2              2, 1 if after   2, 1 if after   1
                                        another load    another load
    store (STR*)         2              1               1               1
    LDM/STM/PUSH/POP     1 + N          1 + N           1 + N           1 + N/2
    branch taken         2 (BL 3)       1 + P, P = 2    1 + P, P = 2    1 (predicted)
    branch not taken     1              1               1               1
    divide               - (none)       2-12: 7         2-12: 7         2-12: 7

P is the pipeline refill (1-3 on M3/M4; we take 2). The M7 is dual-issue with a branch
predictor and caches: we charge 1 cycle per instruction (no dual-issue credit), which is a
deliberate upper bound.

Flash (FlashModel, from the device profile): code, constants and weights live in flash, which
at high clocks needs wait states (e.g. 4 on an STM32L4 at 80 MHz). Every data read from flash
(weights, literal pools) that misses the last `cache_lines` lines of `line_bytes` read (an LRU:
the data cache or line buffers in front of the flash; 0 = none) costs `wait_states` more
cycles. Instruction fetches are taken as hidden by the prefetch buffer and instruction cache
(kernel loops are short); a cold instruction cache is not modelled. This is a model, not a
cycle-accurate simulator."""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeprune.errors import ConfigError

_CPU = {"cortex-m0plus": "UC_CPU_ARM_CORTEX_M0", "cortex-m3": "UC_CPU_ARM_CORTEX_M3",
        "cortex-m4": "UC_CPU_ARM_CORTEX_M4", "cortex-m7": "UC_CPU_ARM_CORTEX_M7"}
_CODE, _DATA, _PERIPH, _SIZE = 0x0, 0x20000000, 0x40000000, 4 << 20
_RETURN = 0x003FFF00  # where ep_run returns to: the end of the run
_IN, _OUT = 0x20300000, 0x20380000


def missing() -> str | None:
    """Why cycle profiles cannot be made here (None if they can)."""
    try:
        import capstone  # noqa: F401
        import unicorn  # noqa: F401
    except ImportError:
        return "cycle profiles need unicorn and capstone: pip install unicorn capstone"
    if shutil.which("arm-none-eabi-nm") is None:
        return "arm-none-eabi-nm not found; install Debian's gcc-arm-none-eabi"
    return None


def _classify(mnemonic: str) -> str:
    m = mnemonic.split(".")[0].lower()
    if m in ("b", "bl", "blx", "bx", "cbz", "cbnz") or (m.startswith("b") and len(m) == 3 and m[1:] in _CONDS):
        return "branch"
    if m in ("push", "pop") or m.startswith(("ldm", "stm")):
        return "multiple"
    if m.startswith("ldr"):
        return "load"
    if m.startswith("str"):
        return "store"
    if m in ("sdiv", "udiv"):
        return "divide"
    if m in ("mla", "mls", "smlad", "smladx", "smlal", "umlal", "smlabb", "smlatt", "smlawb", "smull", "umull"):
        return "mac"
    if m in ("mul", "muls"):
        return "mul"
    return "alu"


_CONDS = {"eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al"}


def _regs_in_list(op_str: str) -> int:
    inner = op_str[op_str.find("{") + 1:op_str.find("}")]
    n = 0
    for part in inner.split(","):
        part = part.strip()
        if "-" in part:
            a, b = part.split("-")
            n += int(b.strip()[1:]) - int(a.strip()[1:]) + 1 if a.strip()[1:].isdigit() else 2
        elif part:
            n += 1
    return max(n, 1)


def _cost(core: str, cls: str, mnemonic: str, op_str: str, taken: bool, after_load: bool) -> float:
    """Cycles of one instruction of class `cls` on `core` (the module docstring's table)."""
    if core == "cortex-m7":
        return 1.0 + (_regs_in_list(op_str) / 2 if cls == "multiple" else 0.0)
    m0 = core == "cortex-m0plus"
    if cls == "load":
        return 2.0 if m0 or not after_load else 1.0
    if cls == "store":
        return 2.0 if m0 else 1.0
    if cls == "multiple":
        return 1.0 + _regs_in_list(op_str) + (2.0 if "pc" in op_str and mnemonic.startswith("pop") else 0.0)
    if cls == "branch":
        if not taken:
            return 1.0
        if m0:
            return 3.0 if mnemonic.split(".")[0] in ("bl", "blx") else 2.0
        return 3.0
    if cls == "mac":
        return 2.0 if core == "cortex-m3" else 1.0
    if cls == "divide":
        return 7.0
    return 1.0


@dataclass(frozen=True)
class FlashModel:
    wait_states: int = 0
    line_bytes: int = 8
    cache_lines: int = 0

    @classmethod
    def of(cls, profile) -> "FlashModel":
        return cls(profile.flash_wait_states, profile.flash_line_bytes, profile.flash_cache_lines)


@dataclass
class CycleProfile:
    core: str
    instructions: int
    cycles: float
    by_class: dict[str, int] = field(default_factory=dict)  # executed instructions per class
    by_function: dict[str, int] = field(default_factory=dict)  # executed instructions per C function
    flash_reads: int = 0  # data reads from flash (counted only when the flash model has wait states)
    flash_misses: int = 0  # of which missed the line cache: each cost the wait states
    flash_bytes: int = 0  # bytes those reads fetched
    wait_cycles: float = 0.0  # included in cycles

    @property
    def cycles_per_instruction(self) -> float:
        return self.cycles / max(self.instructions, 1)


def _symbols(elf: Path) -> dict[str, int]:
    out = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    return {p[2]: int(p[0], 16) for p in (line.split() for line in out.splitlines()) if len(p) == 3}


def _functions(elf: Path) -> list[tuple[int, int, str]]:
    """(start, end, name) of every function symbol, from nm's sizes."""
    out = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True, check=True).stdout
    spans = []
    for p in (line.split() for line in out.splitlines()):
        if len(p) == 4 and p[2].lower() in ("t", "w"):
            start = int(p[0], 16) & ~1
            spans.append((start, start + int(p[1], 16), p[3]))
    return sorted(spans)


def _load(uc, elf: Path) -> None:
    """Map the boards' memory and copy every PT_LOAD segment to its run address."""
    data = elf.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 1:
        raise ConfigError(f"{elf} is not a 32-bit ELF file")
    phoff = int.from_bytes(data[28:32], "little")
    phentsize, phnum = int.from_bytes(data[42:44], "little"), int.from_bytes(data[44:46], "little")
    for base in (_CODE, _DATA, _PERIPH):
        uc.mem_map(base, _SIZE)
    for i in range(phnum):
        h = data[phoff + i * phentsize: phoff + (i + 1) * phentsize]
        ptype, off, vaddr = (int.from_bytes(h[k:k + 4], "little") for k in (0, 4, 8))
        filesz = int.from_bytes(h[16:20], "little")
        if ptype == 1 and filesz:  # PT_LOAD at its run address: .data initialised as start-up would
            uc.mem_write(vaddr, data[off:off + filesz])


def cycle_profile(elf: str | Path, core: str, input_q: np.ndarray, output_size: int,
                  flash: FlashModel | None = None) -> CycleProfile:
    """Run ep_run once on `input_q` (int8) in Unicorn; executed instructions by class and cycles
    by the module's timing table, plus `flash`'s wait states on data reads from flash. The
    outputs are not compared here (QEMU's run does that)."""
    why = missing()
    if why:
        raise ConfigError(why)
    if core not in _CPU:
        raise ConfigError(f"no timing model for core {core!r}; edgeprune models {sorted(_CPU)}")
    import capstone
    import unicorn
    from unicorn import arm_const

    elf = Path(elf)
    sym = _symbols(elf)
    uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
    uc.ctl_set_cpu_model(getattr(arm_const, _CPU[core]))
    _load(uc, elf)
    uc.mem_write(_IN, np.ascontiguousarray(input_q, dtype=np.int8).tobytes())
    uc.reg_write(arm_const.UC_ARM_REG_R0, _IN)
    uc.reg_write(arm_const.UC_ARM_REG_R1, _OUT)
    uc.reg_write(arm_const.UC_ARM_REG_SP, _DATA + _SIZE - 16)
    uc.reg_write(arm_const.UC_ARM_REG_LR, _RETURN | 1)
    counts: dict[tuple[int, int], int] = {}
    taken: dict[tuple[int, int], int] = {}
    last: list = [None]

    def on_block(_uc, address, size, _user):
        key = (address, size)
        counts[key] = counts.get(key, 0) + 1
        prev = last[0]
        if prev is not None and prev[0] + prev[1] != address:
            taken[prev] = taken.get(prev, 0) + 1
        last[0] = key

    uc.hook_add(unicorn.UC_HOOK_BLOCK, on_block)
    flash = flash or FlashModel()
    reads = [0, 0, 0]  # flash data reads, misses, bytes
    if flash.wait_states:
        lines: list[int] = []  # most recent last
        shift = flash.line_bytes.bit_length() - 1

        def on_read(_uc, _access, address, size, _value, _user):
            reads[0] += 1
            reads[2] += size
            for line in range(address >> shift, ((address + size - 1) >> shift) + 1):
                if line in lines:
                    if lines[-1] != line:
                        lines.remove(line)
                        lines.append(line)
                    continue
                reads[1] += 1
                lines.append(line)
                if len(lines) > flash.cache_lines:
                    del lines[0]

        uc.hook_add(unicorn.UC_HOOK_MEM_READ, on_read, begin=_CODE, end=_CODE + _SIZE - 1)
    try:
        uc.emu_start(sym["ep_run"] | 1, _RETURN, timeout=0, count=0)
    except unicorn.UcError as exc:
        raise ConfigError(f"the cycle model could not run {elf.name} on {core}: {exc}") from None
    md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
    instructions, cycles, by_class, by_function = 0, 0.0, {}, {}
    spans = _functions(elf)
    starts = [a for a, _, _ in spans]
    for (address, size), n in counts.items():
        insns = list(md.disasm(bytes(uc.mem_read(address, size)), address))
        t = taken.get((address, size), 0)
        prev_load = False
        for k, ins in enumerate(insns):
            cls = _classify(ins.mnemonic)
            by_class[cls] = by_class.get(cls, 0) + n
            if k == len(insns) - 1 and cls == "branch":  # the block's last branch: taken t of n times
                cycles += t * _cost(core, cls, ins.mnemonic, ins.op_str, True, prev_load)
                cycles += (n - t) * _cost(core, cls, ins.mnemonic, ins.op_str, False, prev_load)
            else:
                cycles += n * _cost(core, cls, ins.mnemonic, ins.op_str, cls == "branch", prev_load)
            prev_load = cls == "load"
        instructions += n * len(insns)
        i = int(np.searchsorted(starts, address, side="right")) - 1
        name = spans[i][2] if i >= 0 and address < spans[i][1] else "?"
        by_function[name] = by_function.get(name, 0) + n * len(insns)
    wait = float(reads[1] * flash.wait_states)
    return CycleProfile(core, instructions, cycles + wait, by_class, by_function, reads[0], reads[1], reads[2], wait)
