"""`edgeprune fit` on the default HAPT model for several microcontroller profiles, into docs.

    python -m benchmarks.fit [--out docs/fit.md] [--runs runs/fit-bench]

Trains har_cnn on HAPT once (8 epochs, seed 0), then for each (device, latency budget) runs
the whole fit: width search under every constraint, least squares + 4 fine-tuning epochs,
int8 (ONNX Runtime and edgeprune's own integer C), generated C compiled and checked bit for bit
against the Python reference, and, for Cortex-M profiles, run on the emulated core (QEMU,
edgeprune.deploy.emulate): the search prices each layer with the stored kernel cost table
(edgeprune.deploy.kernel_costs), scaled once to the emulated dense model, and the emulated
latency of the fitted model (with the profile's flash wait states) is checked against the
budget."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks import write_doc

TARGETS = [("stm32l432", 50.0), ("nrf52840", 100.0), ("rp2040", 250.0), ("stm32f746", 10.0)]


def run(out: str = "docs/fit.md", runs: str = "runs/fit-bench", targets=TARGETS, epochs: int = 8) -> list[dict]:
    from edgeprune.fit import FitConfig, fit
    from edgeprune.training import TrainConfig, train
    from edgeprune.workflow import load_task
    from edgeprune.zoo import create_model

    task = load_task("hapt")
    model = create_model("har_cnn", num_classes=task.num_classes)
    train(model, task.train, task.val, TrainConfig(epochs=epochs, seed=0, progress=False))
    rows = []
    import torch

    from edgeprune.devices import load_profile, model_cost
    for device, latency in targets:
        r = fit(model, task, FitConfig(device=device, latency_ms=latency), out_dir=Path(runs) / device, overwrite=True)
        s = r.summary()
        s["latency_budget"] = latency
        # what the profile's MACs-per-cycle figure alone, and the kernel table unscaled, say about the fitted model
        x = torch.randn(1, *task.input_shape)
        s["profile_estimate_ms"] = model_cost(r.model, x, load_profile(device), kernel_costs=False).latency_ms
        s["table_estimate_ms"] = model_cost(r.model, x, load_profile(device)).latency_ms
        rows.append(s)
        print(json.dumps({"device": device, "fits": r.fits, "accuracy": r.accuracy}), flush=True)
    lines = ["# Fitting the default HAPT model to microcontrollers (measured)", "",
             "Command: `python -m benchmarks.fit` (2-core x86 host; one run, seed 0).", "",
             __doc__.split("\n\n", 2)[2].strip(), "",
             "Estimates (flash, RAM, latency, energy) come from the profile and operation counts "
             "(edgeprune/devices/builtin.toml lists each figure's source and which are estimates); "
             "`compiled` figures are the `size` of the generated C for the device's core "
             "(text + data for flash; data + bss + 1 KiB of stack for RAM).", "",
             "| device | constraint | dense model | fitted model | budget | ok |", "|---|---|---|---|---|---|"]
    for s in rows:
        dense = {"flash": s["dense_cost"]["flash_bytes"], "RAM": s["dense_cost"]["ram_bytes"],
                 "latency": s["dense_cost"]["latency_ms"], "energy": s["dense_cost"]["energy_mj"]}
        for c in s["checks"]:
            fmt = (lambda v: "-" if v is None else f"{v / 1024:.1f} KiB") if c["unit"] == "B" else \
                (lambda v: "-" if v is None else f"{v:.2f} {c['unit']}")
            lines.append(f"| {s['device']} | {c['name']} | {fmt(dense.get(c['name']))} | {fmt(c['value'])} | "
                         f"{fmt(c['limit'])} | {'yes' if c['ok'] else 'NO'} |")
    lines += ["", "| device | fits | dense (float) | fitted, float | int8, ONNX Runtime | int8, generated C | "
              "C equals Python int8 reference | MACs kept | widths | seconds |", "|---|---|---|---|---|---|---|---|---|---|"]
    for s in rows:
        a = s["accuracy"]
        widths = ", ".join(f"{after}/{before}" for _, before, after in s["widths"])
        lines.append(f"| {s['device']} | {'yes' if s['fits'] else 'NO'} | {100 * a['dense']:.2f} % | "
                     f"{100 * a['recovered']:.2f} % | {100 * a.get('int8', float('nan')):.2f} % | "
                     f"{100 * a.get('int8_c', float('nan')):.2f} % | "
                     f"{'yes' if s['c_code'].get('equal_to_reference') else 'no'} "
                     f"({s['c_code'].get('checked_inputs', 0)} inputs) | "
                     f"{s['cost']['macs'] / s['dense_cost']['macs']:.3f} | {widths} | {s['seconds']:.0f} |")
    lines += ["", "## Latency: estimate against emulation", "",
              "Per fitted model: the latency the profile's `macs_per_cycle` alone gives; the kernel cost "
              "table's (edgeprune.deploy.kernel_costs: each layer priced by its kernel kind, core and shape "
              "class, measured once on one-layer models, plus the profile's flash wait states); the search's "
              "figure (the table scaled to the emulated dense model); and the emulated figure: instructions "
              "counted exactly on the emulated core (QEMU) x the cycles per instruction of "
              "edgeprune.deploy.timing's per-class model (Unicorn + Capstone, cycles from Arm's TRMs) plus "
              "the flash wait states on the data reads that miss the profile's flash cache, / the clock.", "",
              "| device | core | clock | flash wait states | budget | profile estimate | kernel table | search | "
              "emulated | of which flash waits | instructions | instructions per MAC | C build |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in rows:
        emu = s["c_code"].get("emulated")
        if not emu:
            continue
        cal = next(c["value"] for c in s["checks"] if c["name"] == "latency")
        prof = load_profile(s["device"])
        waits = 1e3 * emu.get("flash", {}).get("wait_cycles", 0.0) / prof.clock_hz
        lines.append(f"| {s['device']} | {emu['core']} | {prof.clock_hz / 1e6:.0f} MHz | {prof.flash_wait_states} | "
                     f"{s['latency_budget']:.0f} ms | {s['profile_estimate_ms']:.2f} ms | {s['table_estimate_ms']:.2f} ms | "
                     f"{cal:.2f} ms | {emu['latency_ms']:.2f} ms | {waits:.2f} ms | "
                     f"{emu['instructions']:,.0f} | {emu['instructions_per_mac']:.2f} | "
                     f"{emu['opt']}, {(s['c_code']['text'] + s['c_code']['data']) / 1024:.1f} KiB flash |")
    lines += ["", "Accuracy on HAPT's held-out users 22-30. Each run writes its report: "
              f"`{runs}/<device>/report.html` (budget table, widths, memory timeline, candidates), the int8 ONNX "
              "files and the C sources (`c/model.c`, `c/model.h`)."]
    write_doc(out, lines)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/fit.md")
    p.add_argument("--runs", default="runs/fit-bench")
    a = p.parse_args()
    run(a.out, a.runs)


if __name__ == "__main__":
    main()
