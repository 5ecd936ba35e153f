"""Fit a model to a device: the widths that meet every constraint of the device at once
(flash, RAM, latency, energy), the most accurate of the candidates searched, recovered,
quantized to int8 and checked again.

1. Cost of the dense model on the profile (edgeprune.devices.model_cost, int8 by default). If
   even the smallest network the search can make (one unit left in every prunable group) is
   over a limit, stop at once and say by how much.
2. Search directions through the space of per-group widths, keep_g(t) = t ** e_g: uniform
   (e = 1), sensitivity-weighted (groups whose pruning alone costs more validation accuracy get
   a smaller exponent, i.e. keep more), and optionally an AMC policy's shape. Along each, the
   largest t whose pruned model meets every constraint (exact costs, bisection).
3. Each feasible point met on the way is a candidate; its accuracy is estimated without
   training (least-squares reconstruction from calibration data, then validation accuracy).
4. The best candidate is pruned from the dense model (verified), recovered (fine-tuning,
   distillation, least squares, or nothing), quantized to int8 with ONNX Runtime (calibrated),
   its int8 accuracy measured in ONNX Runtime, and its cost checked against the budget again."""
from __future__ import annotations

import copy
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from edgeprune.deploy.timing import FlashModel
from edgeprune.devices import (
    Budget,
    Check,
    DeviceCost,
    budget_table,
    check_budget,
    load_profile,
    model_cost,
)
from edgeprune.errors import ConfigError
from edgeprune.outputs import check_output, writing
from edgeprune.training import TrainConfig, evaluate, take_samples, train

RECOVERIES = ("finetune", "distill", "reconstruct", "none")
SEARCHES = ("sensitivity", "uniform", "amc", "abc")


@dataclass(frozen=True)
class FitConfig:
    device: str = "stm32l432"
    latency_ms: float | None = None
    energy_mj: float | None = None
    flash_bytes: int | None = None  # override the profile's
    ram_bytes: int | None = None
    precision: str = "int8"
    sparse: bool = False
    searches: tuple[str, ...] = ("uniform", "sensitivity")
    recover: str = "finetune"
    finetune_epochs: int = 4
    qat_epochs: int = 0  # quantization-aware fine-tuning after recovery (edgeprune.deploy.qat)
    lr: float = 1e-3
    calibration: int = 500
    val_samples: int = 2000
    amc_episodes: int = 100
    quantize: bool = True
    c_code: bool = True  # generate, compile and check C for the int8 model (needs gcc)
    stack_bytes: int = 1024  # added to the compiled RAM figure (the stack is not in `size`)
    tflite: bool = False  # also write model.tflite (fully integer), checked in LiteRT
    emulate: bool = True  # Cortex-M profiles: calibrate latency on the generated C, emulated (QEMU)
    refits: int = 3  # searches repeated with the emulated cost while the emulated latency is over
    seed: int = 0

    def __post_init__(self):
        if self.recover not in RECOVERIES:
            raise ConfigError(f"recover must be one of {RECOVERIES}, got {self.recover!r}")
        bad = [s for s in self.searches if s not in SEARCHES]
        if bad or not self.searches:
            raise ConfigError(f"searches must be a non-empty subset of {SEARCHES}, got {self.searches}")


@dataclass
class Candidate:
    search: str
    t: float
    keep: list[float]
    macs: int
    cost: dict
    fits: bool
    accuracy: float | None = None  # validation, after least squares, no training


@dataclass
class FitResult:
    model: nn.Module
    plan: object
    profile: object
    budget: Budget
    dense_cost: DeviceCost
    cost: DeviceCost
    checks: list[Check]
    candidates: list[Candidate]
    chosen: int
    accuracy: dict
    widths: list[tuple[str, int, int]]  # group, units before, after
    timeline: list[int]  # live activation bytes after each op of the chosen model
    files: dict = field(default_factory=dict)
    seconds: float = 0.0
    dense_timeline: list[int] = field(default_factory=list)
    c_code: dict = field(default_factory=dict)  # the generated C: check and measured sizes

    @property
    def fits(self) -> bool:
        return all(c.ok for c in self.checks)

    def summary(self) -> dict:
        return {"device": self.profile.name, "fits": self.fits, "accuracy": self.accuracy,
                "dense_cost": self.dense_cost.to_dict(), "cost": self.cost.to_dict(),
                "checks": [{"name": c.name, "value": c.value, "limit": c.limit, "unit": c.unit, "ok": c.ok,
                            "margin": c.margin} for c in self.checks],
                "widths": self.widths, "candidates": [asdict(c) for c in self.candidates], "chosen": self.chosen,
                "files": {k: str(v) for k, v in self.files.items()}, "seconds": self.seconds, "c_code": self.c_code}


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def live_timeline(model: nn.Module, example, element_bytes: int) -> list[int]:
    """Bytes of activations alive after each op, in execution order (the memory timeline)."""
    from edgeprune.graph.trace import trace
    from edgeprune.metrics.measure import activation_timeline
    return activation_timeline(trace(model, example), element_bytes)[1]


class _Fitter:
    def __init__(self, model: nn.Module, task, cfg: FitConfig):
        from edgeprune.data import calibration_batches
        from edgeprune.search import ChannelSpace

        self.model, self.task, self.cfg = model.eval(), task, cfg
        self.profile = load_profile(cfg.device)
        self.budget = Budget.of(self.profile, cfg.latency_ms, cfg.energy_mj, cfg.flash_bytes, cfg.ram_bytes)
        self.x = torch.randn(1, *task.input_shape)
        self.calib = calibration_batches(task, cfg.calibration)
        self.val = take_samples(task.val, cfg.val_samples)
        self.space = ChannelSpace(self.model, self.x, "l1", round_to=self.profile.channel_multiple)
        self.candidates: list[Candidate] = []
        self.c_report: dict = {}
        self.cycles_per_mac: float | None = None  # measured on the emulated core (cores without a cost table)
        self.latency_scale = 1.0  # emulated / kernel-table cycles (cores with one)
        self._exponents: np.ndarray | None = None

    def cost(self, keep) -> DeviceCost:
        return self.cost_of(self.space.prune(keep))

    def cost_of(self, model: nn.Module) -> DeviceCost:
        return model_cost(model, self.x, self.profile, self.cfg.precision, self.cfg.sparse,
                          cycles_per_mac=self.cycles_per_mac, latency_scale=self.latency_scale)

    def table_priced(self) -> bool:
        from edgeprune.deploy.kernel_costs import has_core
        return self.cfg.precision == "int8" and has_core(self.profile.core)

    def calibrate(self, model: nn.Module, run, executed: int) -> None:
        """Match the search's cost to `model`'s emulated cycles: scale the kernel table (or, for
        a core without one, replace the MACs-per-cycle guess by the measured rate)."""
        if self.table_priced():
            table = model_cost(model, self.x, self.profile, self.cfg.precision, self.cfg.sparse).cycles
            self.latency_scale = run.cycles / max(table, 1.0)
        else:
            self.cycles_per_mac = run.cycles / max(executed, 1)

    def can_emulate(self) -> bool:
        from edgeprune.deploy.emulate import BOARDS, toolchain_missing
        return (self.cfg.emulate and self.cfg.precision == "int8" and self.profile.core in BOARDS
                and toolchain_missing() is None)

    def emulated(self, model: nn.Module, inputs: int = 3):
        """The int8 C of `model` run on the profile's core, emulated: (EmulatedRun, executed MACs)."""
        from edgeprune.deploy import quantize_model
        from edgeprune.deploy.cgen import generate_c
        from edgeprune.deploy.emulate import emulate_and_check
        qm = quantize_model(model, self.x, self.calib, samples=min(self.cfg.calibration, 64))
        xs = torch.cat([x for x, _ in self.val])[:inputs].numpy()
        with tempfile.TemporaryDirectory(prefix="edgeprune-emu-") as tmp:
            gen = generate_c(qm, tmp, sparse=True)
            check = emulate_and_check(qm, tmp, xs, self.profile.core, len(gen.marks), opt=self.profile.c_opt,
                                      flash=FlashModel.of(self.profile))
        return check.run, model_cost(model, self.x, self.profile, self.cfg.precision, self.cfg.sparse).executed_macs

    def ok(self, cost: DeviceCost) -> bool:
        return all(c.ok for c in check_budget(cost, self.budget))

    def smallest(self) -> None:
        floor = [1.0 / s for s in self.space.sizes]
        cost = self.cost(floor)
        checks = check_budget(cost, self.budget)
        if not all(c.ok for c in checks):
            raise ConfigError(f"{type(self.model).__name__} cannot fit {self.profile.name} by pruning channels: "
                              "even with one channel left in every prunable layer it needs\n"
                              + budget_table(checks) + "\nhelp: raise the budget, pick a bigger device, or start "
                              "from a smaller architecture")

    def proxy_accuracy(self, keep) -> float:
        from edgeprune.recovery import reconstruct
        m = self.space.prune(keep)
        reconstruct(self.model, m, self.space.plan(keep), self.calib, samples=self.cfg.calibration)
        return evaluate(m, self.val)

    def direction(self, name: str) -> Callable[[float], list[float]]:
        n = len(self.space)
        if name == "uniform":
            e = np.ones(n)
        elif name == "sensitivity":
            e = self._sensitivity_exponents()
        else:
            e = self._policy_exponents(name)
        floor = np.array([1.0 / s for s in self.space.sizes])
        return lambda t: np.maximum(floor, t ** e).tolist()

    def _sensitivity_exponents(self) -> np.ndarray:
        """Accuracy lost when one group alone keeps a quarter of its channels (least squares,
        no training); exponents inversely proportional, normalised to mean 1, in [0.25, 4]."""
        if self._exponents is not None:
            return self._exponents
        base = evaluate(self.model, self.val)
        drops = []
        for i in range(len(self.space)):
            keep = [1.0] * len(self.space)
            keep[i] = 0.25
            drops.append(max(base - self.proxy_accuracy(keep), 1e-3))
        e = 1.0 / np.asarray(drops)
        self._exponents = np.clip(e / e.mean(), 0.25, 4.0)
        return self._exponents

    def _policy_exponents(self, name: str) -> np.ndarray:
        """The shape of an AMC (DDPG) or ABCPruner (bee colony) policy found for the MACs ratio
        the latency/energy budget implies; scored without training."""
        from edgeprune.search.abc import ABCConfig, ABCPruner
        from edgeprune.search.amc import AMC, AMCConfig
        dense = model_cost(self.model, self.x, self.profile, self.cfg.precision, self.cfg.sparse)
        ratios = [0.9]
        if self.budget.latency_ms:
            ratios.append(self.budget.latency_ms / dense.latency_ms)
        if self.budget.energy_mj:
            ratios.append(self.budget.energy_mj / dense.energy_mj)
        target = float(np.clip(min(ratios), 0.05, 0.95))
        if name == "amc":
            found = AMC(self.space, lambda m: evaluate(m, self.val),
                        AMCConfig(target=target, episodes=self.cfg.amc_episodes, warmup=self.cfg.amc_episodes // 3,
                                  seed=self.cfg.seed, progress=False)).search()
        else:
            found = ABCPruner(self.space, lambda m: evaluate(m, self.val),
                              ABCConfig(target=target, max_cycle=5, seed=self.cfg.seed, progress=False)).search()
        logk = np.log(np.clip(found.keep, 1e-3, 1.0))
        if logk.mean() > -1e-6:
            return np.ones(len(logk))
        return np.clip(logk / logk.mean(), 0.25, 4.0)

    def search(self, name: str) -> None:
        path = self.direction(name)
        lo, hi = 0.0, 1.0
        if self.ok(self.cost(path(1.0))):
            lo = 1.0
        else:
            for _ in range(12):
                mid = (lo + hi) / 2
                cost = self.cost(path(mid))
                fits = self.ok(cost)
                self.candidates.append(Candidate(name, mid, path(mid), cost.macs, cost.to_dict(), fits))
                lo, hi = (mid, hi) if fits else (lo, mid)
        if lo == 0.0:
            lo = 1e-3
        cost = self.cost(path(lo))
        self.candidates.append(Candidate(name, lo, path(lo), cost.macs, cost.to_dict(), self.ok(cost)))
        # the accuracy estimate of every feasible point found (the plot's points)
        for c in self.candidates:
            if c.search == name and c.fits and c.accuracy is None:
                c.accuracy = self.proxy_accuracy(c.keep)


def fit(model: nn.Module, task, config: FitConfig | None = None, out_dir: str | Path | None = None, *,
        overwrite: bool = False, inputs: tuple = (), arch: str | None = None,
        arch_kwargs: dict | None = None) -> FitResult:
    """Search, prune, recover and quantize `model` for `config.device`; see the module docstring.

    With `out_dir`, every file (ONNX, C, report, and with `arch` the model folder `model/`)
    is written there in one step at the end; an earlier edgeprune output is replaced only with
    `overwrite=True`, a folder holding anything else never (checked before any work)."""
    from edgeprune.recovery import reconstruct

    if out_dir is not None:
        check_output(out_dir, force=overwrite, inputs=inputs)
    cfg = config or FitConfig()
    t0 = time.time()
    torch.manual_seed(cfg.seed)
    f = _Fitter(model, task, cfg)
    f.dense_cost = dense_cost = model_cost(f.model, f.x, f.profile, cfg.precision, cfg.sparse)
    _say(f"[fit] {f.profile.name}: dense model\n" + budget_table(check_budget(dense_cost, f.budget)))
    emulate = f.can_emulate()
    if emulate:  # the search's latency from the kernels that will run, checked on the dense model
        run, executed = f.emulated(f.model)
        f.calibrate(f.model, run, executed)
        how = (f"the kernel cost table's estimate x {f.latency_scale:.3f}" if f.table_priced()
               else f"{f.cycles_per_mac:.2f} cycles per MAC (profile's guess: {1 / f.profile.throughput('int8'):.2f})")
        _say(f"[fit] emulated {f.profile.core} ({f.profile.c_opt}): dense model {run.instructions:,.0f} instructions, "
             f"{1e3 * run.cycles / f.profile.clock_hz:.1f} ms; searching with {how}")
        f.dense_cost = dense_cost = f.cost_of(f.model)
    elif f.table_priced():
        _say(f"[fit] latency from the kernel cost table for {f.profile.core} (no emulator here to check it)")
    f.smallest()
    for attempt in range(cfg.refits + 1):
        result = f.space.finalize(f.candidates[_choose(f)].keep)
        if not emulate or (f.budget.latency_ms is None and f.budget.energy_mj is None):
            break
        run, executed = f.emulated(result.model)
        measured = run.cycles / max(executed, 1)
        lat = 1e3 * run.cycles / f.profile.clock_hz
        energy = model_cost(result.model, f.x, f.profile, cfg.precision, cfg.sparse, cycles_per_mac=measured).energy_mj
        if attempt == cfg.refits or (lat <= (f.budget.latency_ms or float("inf"))
                                     and energy <= (f.budget.energy_mj or float("inf"))):
            break
        # the estimate was low for this model: search again with the costs matched to it
        before = f.cost_of(result.model).cycles
        if f.table_priced():
            f.latency_scale *= run.cycles / max(before, 1.0) * 1.02
            how = f"the table's estimate x {f.latency_scale:.3f}"
        else:
            f.cycles_per_mac = max(measured, f.cycles_per_mac or 0.0) * 1.02
            how = f"{f.cycles_per_mac:.2f} cycles per MAC"
        _say(f"[fit] emulated latency {lat:.1f} ms is over the budget; searching again with {how}")
        f.candidates = []
    pruned = result.model
    pruned = result.model
    acc = {"dense": evaluate(f.model, task.test), "pruned": evaluate(pruned, task.test)}
    if cfg.recover != "none":  # least squares first: fine-tuning then starts close to the dense function
        reconstruct(f.model, pruned, result.plan, f.calib, samples=cfg.calibration)
    if cfg.recover in ("finetune", "distill") and cfg.finetune_epochs > 0:
        teacher = copy.deepcopy(f.model) if cfg.recover == "distill" else None
        tc = TrainConfig(epochs=cfg.finetune_epochs, lr=cfg.lr, seed=cfg.seed,
                         distill_alpha=0.7 if teacher is not None else 0.0)
        train(pruned, task.train, task.val, tc, teacher=teacher)
    acc["recovered"] = evaluate(pruned, task.test)
    if cfg.qat_epochs > 0:
        from edgeprune.deploy.qat import FakeQuant
        fq = FakeQuant(pruned)
        train(pruned, task.train, task.val, TrainConfig(epochs=cfg.qat_epochs, lr=cfg.lr / 10, seed=cfg.seed,
                                                        keep_best=False))
        fq.remove()
        acc["after_qat_float"] = evaluate(pruned, task.test)
    if out_dir is None:
        return _finish(pruned, result, f, cfg, task, acc, Path(tempfile.mkdtemp(prefix="edgeprune-fit-")), t0,
                       c_code=False)
    with writing(out_dir, force=overwrite, inputs=inputs, kind="fit") as tmp:
        out = _finish(pruned, result, f, cfg, task, acc, tmp, t0)
        from edgeprune.report.fit_report import fit_report_html
        if arch is not None:
            from edgeprune.model_io import write_model_files
            write_model_files(tmp / "model", pruned, arch, arch_kwargs, result.plan,
                              {"device": f.profile.name, "accuracy": acc})
            out.files["model"] = Path("model")
        out.files.update(report=Path("report.html"), summary=Path("fit.json"))
        (tmp / "fit.json").write_text(json.dumps(out.summary(), indent=1, default=float))
        (tmp / "report.html").write_text(fit_report_html(out))
    out.files = {k: Path(out_dir) / v for k, v in out.files.items()}
    return out


def _choose(f: "_Fitter") -> int:
    """Run the searches; the index of the candidate to prune to: accuracy first, and among
    candidates within 3 validation samples of the best, the largest network."""
    for name in f.cfg.searches:
        _say(f"[fit] searching widths ({name})")
        f.search(name)
    feasible = [i for i, c in enumerate(f.candidates) if c.fits and c.accuracy is not None]
    if not feasible:
        raise ConfigError(f"no width in the search fits {f.profile.name}'s budget with the emulated cost\n"
                          "help: raise the budget or start from a smaller architecture")
    tol = 3.0 / max(sum(len(y) for _, y in f.val), 1)
    top = max(f.candidates[i].accuracy for i in feasible)
    chosen = max((i for i in feasible if f.candidates[i].accuracy >= top - tol), key=lambda i: f.candidates[i].macs)
    f.chosen = chosen
    best = f.candidates[chosen]
    _say(f"[fit] chose the {best.search} candidate (t={best.t:.3f}, estimated accuracy {best.accuracy:.4f}, "
         f"{best.macs} MACs)")
    return chosen


def _finish(pruned: nn.Module, result, f: "_Fitter", cfg: FitConfig, task, acc: dict, base: Path,
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
        checks += _deploy_c(pruned, f, task, base / "c", acc, files)
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


def _deploy_c(pruned: nn.Module, f: "_Fitter", task, c_dir: Path, acc: dict, files: dict) -> list[Check]:
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


__all__ = ["FitConfig", "FitResult", "fit"]
