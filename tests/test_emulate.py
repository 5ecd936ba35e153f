"""Generated C on emulated Cortex-M cores (QEMU MPS2 boards): bit-exact with the Python int8
reference on M0+, M3, M4 and M7, and the instruction counts are exact on a loop of known length."""
import numpy as np
import pytest
import torch

from edgeprune.deploy.cgen import generate_c
from edgeprune.deploy.emulate import BOARDS, build, cycle_model_missing, emulate_and_check, run, toolchain_missing
from edgeprune.deploy.timing import cycle_profile
from edgeprune.errors import ConfigError
from edgeprune.metrics.measure import count_macs

needs_arm = pytest.mark.skipif(toolchain_missing() is not None, reason=str(toolchain_missing()))

# ep_run = a loop of subs/bne run input[0] * 100 times: 2 instructions per turn + a few fixed
LOOP_MODEL = """#include <stdint.h>
#define EP_INPUT_SIZE 1
#define EP_OUTPUT_SIZE 1
void ep_run(const int8_t *input, int8_t *output);
"""
LOOP_C = """#include "model.h"
void ep_mark(int k);
void ep_run(const int8_t *input, int8_t *output)
{
    uint32_t n = (uint32_t)input[0] * 100u;
    ep_mark(0);
#if defined(__ARM_ARCH_6M__)  /* gcc writes Thumb-1 in divided syntax: SUB is the flag-setting one */
    __asm__ volatile("1: sub %0, #1\\n bne 1b" : "+l"(n) : : "cc");
#else
    __asm__ volatile("1: subs %0, #1\\n bne 1b" : "+l"(n) : : "cc");
#endif
    ep_mark(1);
    output[0] = input[0];
}
"""


@needs_arm
@pytest.mark.parametrize("core", sorted(BOARDS))
def test_counts_are_executed_instructions(core, tmp_path):
    (tmp_path / "model.h").write_text(LOOP_MODEL)
    (tmp_path / "model.c").write_text(LOOP_C)
    b = build(tmp_path, core, marks=2)
    r = run(b, np.array([[10], [20], [40]], np.int8), marks=2)
    assert r.outputs.reshape(-1).tolist() == [10, 20, 40]
    # the loop slot: 2 instructions x 100 x input, averaged: 2 * 100 * (10 + 20 + 40) / 3
    assert abs(r.per_mark[1] - 2 * 100 * 70 / 3) < 0.5  # exact: the mark overhead is removed
    assert 3 < r.per_mark[0] < 20  # the few instructions before the loop (prologue, multiply)


@needs_arm
@pytest.mark.parametrize("core", sorted(BOARDS))
def test_har_cnn_bit_exact_on_every_core_with_per_layer_counts(core, tmp_path, quantized):
    m, qm, xs = quantized("har_cnn", (6, 128), 6)
    gen = generate_c(qm, tmp_path, sparse=True)
    check = emulate_and_check(qm, tmp_path, xs, core, len(gen.marks))
    assert check.equal and check.samples == 6
    r = check.run
    assert len(r.per_mark) == len(gen.marks) and abs(sum(r.per_mark) - r.instructions) < 1
    macs = count_macs(m, torch.randn(1, 6, 128))
    # a MAC is at least one multiply on M0+/M3; SMLAD does two on M4/M7
    simd = core in ("cortex-m4", "cortex-m7")
    assert r.instructions > (0.5 if simd else 1.0) * macs
    assert r.instructions < (3.0 if simd else 12.0) * macs  # the column kernels, not a direct loop
    convs = [v for v, name in zip(r.per_mark, gen.marks) if name.startswith("conv")]
    assert sum(convs) > 0.9 * r.instructions  # the convolutions are where the time goes
    assert check.build.text > 0 and check.build.bss >= gen.arena_bytes


@needs_arm
def test_a_wrong_reference_is_caught(tmp_path, quantized):
    _, qm, xs = quantized("lenet5", (1, 28, 28), 6)
    gen = generate_c(qm, tmp_path, sparse=True)
    model_c = tmp_path / "model.c"
    wrong = model_c.read_text().replace(" + ((int64_t)1 << (shift - 1))", "")  # truncating, not rounding
    assert wrong != model_c.read_text()
    model_c.write_text(wrong)
    check = emulate_and_check(qm, tmp_path, xs, "cortex-m4", len(gen.marks), raise_on_mismatch=False)
    assert not check.equal and check.mismatches > 0


def test_unknown_core_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no emulator for core"):
        build(tmp_path, "cortex-a53", marks=1)


needs_timing = pytest.mark.skipif(cycle_model_missing() is not None, reason=str(cycle_model_missing()))


@needs_arm
@needs_timing
@pytest.mark.parametrize("core,per_turn", [("cortex-m0plus", 1 + 2), ("cortex-m3", 1 + 3), ("cortex-m4", 1 + 3),
                                           ("cortex-m7", 1 + 1)])
def test_cycle_model_charges_the_trm_cycles(core, per_turn, tmp_path):
    # one turn of the loop = SUBS (1 cycle) + a taken BNE (M0+: 2; M3/M4: 1 + P with P = 2; M7: 1):
    # 1000 more turns cost 1000 * per_turn more cycles and exactly 2000 more instructions
    (tmp_path / "model.h").write_text(LOOP_MODEL)
    (tmp_path / "model.c").write_text(LOOP_C)
    b = build(tmp_path, core, marks=2)
    p10 = cycle_profile(b.elf, core, np.array([10], np.int8), 1)
    p20 = cycle_profile(b.elf, core, np.array([20], np.int8), 1)
    assert p20.instructions - p10.instructions == 2000
    assert p20.cycles - p10.cycles == pytest.approx(1000 * per_turn)
    assert p20.by_class["branch"] - p10.by_class["branch"] == 1000


@needs_arm
@needs_timing
def test_cycle_model_counts_what_qemu_counts(tmp_path, quantized):
    _, qm, xs = quantized("lenet5", (1, 28, 28), 6)
    gen = generate_c(qm, tmp_path, sparse=True)
    check = emulate_and_check(qm, tmp_path, xs[:1], "cortex-m4", len(gen.marks))
    r = check.run
    p = cycle_profile(check.build.elf, "cortex-m4", qm.quantize_input(xs[0]), 10)
    # Unicorn runs ep_run alone; QEMU's count leaves out the marks' own instructions
    assert abs(p.instructions - r.instructions) < 0.001 * r.instructions
    assert r.cpi == pytest.approx(p.cycles_per_instruction) and r.cycles == pytest.approx(r.instructions * r.cpi)
    assert p.by_class["mac"] > 0 and p.by_class["load"] > 0  # SMLADs and their loads
