"""The fitted model made deployable and checked: int8 in ONNX Runtime (accuracy measured),
generated C compiled here and bit for bit against the Python int8 reference, run on the
emulated core where one exists (its latency and energy are what the budget table reports),
optionally a .tflite checked in LiteRT; and the budget checks of the result."""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeprune.deploy.timing import FlashModel
from edgeprune.devices import Check, check_budget, model_cost
from edgeprune.fit.config import FitConfig, FitResult
from edgeprune.fit.widths import _say


def live_timeline(model: nn.Module, example, element_bytes: int) -> list[int]:
    """Bytes of activations alive after each op, in execution order (the memory timeline)."""
    from edgeprune.graph.trace import trace
    from edgeprune.metrics.measure import activation_timeline
    return activation_timeline(trace(model, example), element_bytes)[1]


def finish(pruned: nn.Module, result, f, cfg: FitConfig, task, acc: dict, base: Path,
            t0: float, c_code: bool = True) -> FitResult:
    """Quantize, generate and check C into `base`, cost the result against the budget. Paths
    in `files` are relative to `base`."""
    files: dict = {}
    if cfg.quantize:
        from edgeprune.export.quantize import evaluate_onnx, quantize_int8
        fp, qp = base / "model.onnx", base / "model_int8.onnx"
        quantize_int8(pruned, f.x, f.calib, fp, qp, samples=cfg.calibration)
        check = evaluate_onnx(qp, task.test, pruned)
        acc["int8"] = check.accuracy
        acc["int8_agreement_with_float"] = check.agreement
        files.update(onnx=Path("model.onnx"), onnx_int8=Path("model_int8.onnx"))
    cost = f.cost_of(pruned)
    checks = check_budget(cost, f.budget)
    if cfg.c_code and c_code:
        checks += deploy_c(pruned, f, task, base / "c", acc, files)
    if cfg.tflite and c_code:
        from edgeprune.deploy import quantize_model
        from edgeprune.export.tflite import check_tflite, export_tflite
        _say("[fit] writing model.tflite, running it in LiteRT")
        qm = getattr(f, "qm", None) or quantize_model(pruned, f.x, f.calib, samples=cfg.calibration)
        export_tflite(qm, base / "model.tflite")
        xs, ys = zip(*[(x, y) for x, y in task.test])
        xs, ys = torch.cat(xs).numpy(), torch.cat(ys).numpy()  # the whole test set, as for int8_c
        chk = check_tflite(qm, base / "model.tflite", xs, ys)
        acc["int8_tflite"] = chk.accuracy
        f.c_report["tflite"] = asdict(chk)
        files["tflite"] = Path("model.tflite")
    widths = [(g["name"], g["units"], g["units"] - g["removed"]) for g in result.plan.groups]
    timeline = live_timeline(pruned, f.x, 1 if cfg.precision == "int8" else 4)
    return FitResult(pruned, result.plan, f.profile, f.budget, f.dense_cost, cost, checks, f.candidates,
                     f.chosen, acc, widths, timeline, files, time.time() - t0,
                     live_timeline(f.model, f.x, 1 if cfg.precision == "int8" else 4), f.c_report)


def deploy_c(pruned: nn.Module, f, task, c_dir: Path, acc: dict, files: dict) -> list[Check]:
    """int8 C for the chosen model: generated, compiled here and checked bit for bit against the
    Python int8 reference, its test accuracy measured by running it, its size measured for the
    device's core (arm-none-eabi-gcc) or, failing that, for this host."""
    import shutil

    from edgeprune.deploy import quantize_model
    from edgeprune.deploy.cgen import (
        CCheck,
        compile_and_check,
        cross_compile_size,
        generate_c,
        run_compiled,
    )
    from edgeprune.deploy.emulate import BOARDS, CYCLES_PER_INSTRUCTION

    if shutil.which("gcc") is None:
        _say("[fit] gcc not found: no C code generated")
        return []
    _say("[fit] generating C for the int8 model, compiling, checking against the Python reference")
    qm = f.qm = quantize_model(pruned, f.x, f.calib, samples=f.cfg.calibration)
    gen = generate_c(qm, c_dir, sparse=True)
    xs, ys = zip(*[(x, y) for x, y in task.test])
    xs, ys = torch.cat(xs).numpy(), torch.cat(ys).numpy()
    host = compile_and_check(qm, c_dir, xs[:200])
    timing: dict = {}
    out = run_compiled(c_dir, np.stack([qm.quantize_input(x) for x in xs]), timing)
    acc["int8_c"] = float((out.argmax(1) == ys).mean())
    files.update(c_source=Path("c/model.c"), c_header=Path("c/model.h"))
    extra: list[Check] = []
    emulated = None
    if f.can_emulate():
        from edgeprune.deploy.emulate import emulate_and_check
        _say(f"[fit] running the C on an emulated {f.profile.core} ({f.profile.c_opt}), checking it bit for bit")
        emu = emulate_and_check(qm, c_dir, xs[:20], f.profile.core, len(gen.marks), opt=f.profile.c_opt,
                                flash=FlashModel.of(f.profile))
        b, r = emu.build, emu.run
        target = CCheck(True, 0, 0, 0, b.text, b.data, b.bss, f"arm-none-eabi-gcc -mcpu={f.profile.core} {b.opt}")
        executed = model_cost(pruned, f.x, f.profile, f.cfg.precision, f.cfg.sparse).executed_macs
        cost = model_cost(pruned, f.x, f.profile, f.cfg.precision, f.cfg.sparse,
                          cycles_per_mac=r.cycles / max(executed, 1))
        emulated = {"core": r.core, "board": BOARDS[r.core][0], "opt": b.opt, "equal_to_reference": emu.equal,
                    "checked_inputs": emu.samples, "instructions": r.instructions, "cycles": r.cycles,
                    "cycles_per_instruction": r.cycles_per_instruction,
                    "cycle_model": "per-class (edgeprune.deploy.timing)" if r.cpi is not None
                    else f"flat {CYCLES_PER_INSTRUCTION[r.core]} per instruction", "instructions_by_class": r.by_class,
                    "flash": r.flash or {"wait_states": f.profile.flash_wait_states},
                    "instructions_per_mac": r.instructions / max(executed, 1),
                    "latency_ms": r.latency_ms(f.profile.clock_hz), "energy_mj": cost.energy_mj,
                    "per_layer": [{"layer": n, "instructions": v} for n, v in zip(gen.marks, r.per_mark)]}
        extra = [Check("latency (emulated)", emulated["latency_ms"], f.budget.latency_ms, "ms"),
                 Check("energy (emulated)", cost.energy_mj, f.budget.energy_mj, "mJ")]
    else:
        target = cross_compile_size(c_dir, f.profile.core, opt=f.profile.c_opt) or host
    f.c_report = {"equal_to_reference": host.equal, "checked_inputs": host.samples, "arena_bytes": gen.arena_bytes,
                  "sparse_layers": gen.sparse_layers, "compiler": target.compiler, "text": target.text,
                  "data": target.data, "bss": target.bss, "host_text": host.text, "host_bss": host.bss,
                  "host_us_per_inference": timing.get("us_per_input"), "emulated": emulated}
    return [Check("flash (compiled)", target.flash_bytes, f.budget.flash_bytes, "B"),
            Check("RAM (compiled + stack)", target.ram_bytes + f.cfg.stack_bytes, f.budget.ram_bytes, "B")] + extra


__all__ = ["deploy_c", "finish", "live_timeline"]
