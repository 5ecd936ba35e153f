"""`edgeprune fit`: fit a model to a device (edgeprune.fit)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from edgeprune.cli.common import (
    COUNT,
    EPOCHS,
    POSITIVE,
    add_data,
    add_force,
    check_out,
    task,
)
from edgeprune.errors import ConfigError


def cmd_fit(a) -> int:
    from edgeprune.devices import budget_table
    from edgeprune.fit import FitConfig, fit
    from edgeprune.training import TrainConfig, train
    from edgeprune.zoo import create_model

    cfg = FitConfig(device=a.device, latency_ms=a.latency_ms, energy_mj=a.energy_mj,
                    flash_bytes=int(a.flash_kb * 1024) if a.flash_kb else None,
                    ram_bytes=int(a.ram_kb * 1024) if a.ram_kb else None, sparse=False,
                    searches=tuple(a.search), recover=a.recover, finetune_epochs=a.finetune_epochs, lr=a.lr,
                    qat_epochs=a.qat_epochs, tflite="tflite" in (a.export or []),
                    calibration=a.calibration, seed=a.seed)
    from edgeprune.devices import load_profile
    load_profile(a.device)  # a bad device name fails before any training
    check_out(a, a.model)
    t = task(a)
    if a.model is not None:
        from edgeprune.model_io import load_model
        model, info = load_model(a.model, finite=True)
        arch, kwargs = info["arch"], info.get("kwargs")
        if (Path(a.model) / "plan.json").exists():
            raise ConfigError(f"{a.model} is already pruned; fit its dense parent")
    else:
        arch, kwargs = "har_cnn", {"num_classes": t.num_classes}
        print(f"no --model: training the default {arch} on {a.data} for {a.epochs} epochs", file=sys.stderr)
        model = create_model(arch, **kwargs)
        train(model, t.train, t.val, TrainConfig(epochs=a.epochs, seed=a.seed))
    out = Path(a.out)
    r = fit(model, t, cfg, out_dir=out, overwrite=a.force, inputs=(a.model,), arch=arch, arch_kwargs=kwargs)
    if a.json:
        print(json.dumps(r.summary(), default=float))
    else:
        print(budget_table(r.checks))
        print("accuracy: " + ", ".join(f"{k} {100 * v:.2f} %" for k, v in r.accuracy.items()))
        print(f"{'fits' if r.fits else 'DOES NOT FIT'} {r.profile.name}; report {out / 'report.html'}, "
              f"int8 ONNX {out / 'model_int8.onnx'}, model {out / 'model'}"
              + (f", {r.files['tflite']}" if "tflite" in r.files else ""))
    return 0 if r.fits else 1


def add(sub) -> None:
    s = sub.add_parser("fit", help="fit a model to a device: search widths for its flash/RAM/latency/energy, "
                                   "recover, quantize int8, check, report")
    s.add_argument("--device", required=True, help="built-in profile (edgeprune devices) or a .toml file")
    s.add_argument("--model", type=Path, help="dense model directory (default: train har_cnn on --data)")
    s.add_argument("--out", type=Path, default=Path("runs/fit"))
    s.add_argument("--latency-ms", type=POSITIVE, help="latency budget per inference (on Cortex-M profiles: measured on the emulated core)")
    s.add_argument("--energy-mj", type=POSITIVE, help="energy budget per inference (on Cortex-M profiles: from the emulated cycles)")
    s.add_argument("--flash-kb", type=POSITIVE, help="flash budget in KiB (default: the device's)")
    s.add_argument("--ram-kb", type=POSITIVE, help="RAM budget in KiB (default: the device's)")
    s.add_argument("--search", nargs="+", default=["uniform", "sensitivity"],
                   choices=["uniform", "sensitivity", "amc", "abc"],
                   help="search directions: uniform, sensitivity analysis, AMC (DDPG) or ABCPruner (bee colony) policy shapes")
    s.add_argument("--recover", default="finetune", choices=["finetune", "distill", "reconstruct", "none"],
                   help="reconstruct: least squares only, no training (devices that cannot train)")
    s.add_argument("--finetune-epochs", type=EPOCHS, default=4)
    s.add_argument("--qat-epochs", type=EPOCHS, default=0, help="quantization-aware fine-tuning epochs after recovery")
    s.add_argument("--epochs", type=EPOCHS, default=8, help="training epochs of the default model")
    s.add_argument("--lr", type=POSITIVE, default=1e-3)
    s.add_argument("--calibration", type=COUNT, default=500)
    s.add_argument("--export", nargs="+", choices=["tflite"],
                   help="also write model.tflite (fully integer, checked in LiteRT on the test set)")
    add_data(s)
    add_force(s)
    s.set_defaults(fn=cmd_fit)
