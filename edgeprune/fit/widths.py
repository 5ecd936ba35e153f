"""The width search under a device budget: per-group widths along search directions
(uniform, sensitivity-weighted, or the shape of an AMC / ABCPruner policy), each bisected to
the largest model that meets every constraint (edgeprune.budget.meet_budget), every feasible
point scored by least squares without training; latency priced by the kernel cost table,
calibrated on the emulated core where one exists."""
from __future__ import annotations

import sys
import tempfile
from typing import Callable

import numpy as np
import torch
from torch import nn

from edgeprune.budget import meet_budget
from edgeprune.deploy.timing import FlashModel
from edgeprune.devices import Budget, DeviceCost, budget_table, check_budget, load_profile, model_cost
from edgeprune.errors import ConfigError
from edgeprune.fit.config import Candidate, FitConfig
from edgeprune.training import evaluate, take_samples


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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

        def fits(t: float) -> bool:  # every probe is a candidate (the report's points)
            cost = self.cost(path(t))
            self.candidates.append(Candidate(name, t, path(t), cost.macs, cost.to_dict(), self.ok(cost)))
            return self.candidates[-1].fits

        lo = 1.0 if self.ok(self.cost(path(1.0))) else meet_budget(fits, 0.0, 1.0, steps=12)
        if lo == 0.0:
            lo = 1e-3
        cost = self.cost(path(lo))
        self.candidates.append(Candidate(name, lo, path(lo), cost.macs, cost.to_dict(), self.ok(cost)))
        # the accuracy estimate of every feasible point found (the plot's points)
        for c in self.candidates:
            if c.search == name and c.fits and c.accuracy is None:
                c.accuracy = self.proxy_accuracy(c.keep)


def _choose(f: _Fitter) -> int:
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


def calibrate_on_emulator(f: _Fitter) -> bool:
    """The dense model's cost on the profile, its latency checked on the emulated core where
    one exists (the search then prices layers from what the kernels really take)."""
    cfg = f.cfg
    f.dense_cost = model_cost(f.model, f.x, f.profile, cfg.precision, cfg.sparse)
    _say(f"[fit] {f.profile.name}: dense model\n" + budget_table(check_budget(f.dense_cost, f.budget)))
    emulate = f.can_emulate()
    if emulate:  # the search's latency from the kernels that will run, checked on the dense model
        run, executed = f.emulated(f.model)
        f.calibrate(f.model, run, executed)
        how = (f"the kernel cost table's estimate x {f.latency_scale:.3f}" if f.table_priced()
               else f"{f.cycles_per_mac:.2f} cycles per MAC (profile's guess: {1 / f.profile.throughput('int8'):.2f})")
        _say(f"[fit] emulated {f.profile.core} ({f.profile.c_opt}): dense model {run.instructions:,.0f} instructions, "
             f"{1e3 * run.cycles / f.profile.clock_hz:.1f} ms; searching with {how}")
        f.dense_cost = f.cost_of(f.model)
    elif f.table_priced():
        _say(f"[fit] latency from the kernel cost table for {f.profile.core} (no emulator here to check it)")
    return emulate


def find_widths(f: _Fitter, emulate: bool):
    """Search, choose the most accurate candidate, prune to it (verified); on the emulated
    core, search again with costs matched to the chosen model while it is over budget."""
    cfg = f.cfg
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
    return result
