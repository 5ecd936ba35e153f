"""`edgeprune eval`, `profile` and `devices`: what a model scores and costs, and the device profiles."""
from __future__ import annotations

import json
from pathlib import Path

from edgeprune.cli.common import (
    COUNT,
    add_data,
    example,
    task,
)


def cmd_eval(a) -> int:
    from edgeprune.model_io import load_model
    from edgeprune.training import evaluate

    model, _ = load_model(a.model)
    acc = evaluate(model, task(a).test)
    print(json.dumps({"test_accuracy": acc}) if a.json else f"test accuracy {acc:.4f}")
    return 0


def cmd_profile(a) -> int:
    from edgeprune.metrics import measure

    model, _, x = example(a.model)
    s = measure(model, x, latency=True, onnx=a.onnx, repeats=a.repeats)
    if a.json:
        print(json.dumps(s.to_dict()))
    else:
        for k, v in s.to_dict().items():
            print(f"{k:24} {v}")
    return 0


def cmd_devices(a) -> int:
    from edgeprune.devices import builtin_profiles

    profiles = builtin_profiles()
    if a.json:
        print(json.dumps({n: {"description": p.description, "flash_bytes": p.flash_bytes, "ram_bytes": p.ram_bytes,
                              "clock_hz": p.clock_hz, "macs_per_cycle": p.macs_per_cycle} for n, p in profiles.items()}))
        return 0
    print(f"{'name':12} {'flash':>10} {'RAM':>10} {'clock':>9} {'int8 MAC/cyc':>13}  description")
    for n, p in profiles.items():
        print(f"{n:12} {p.flash_bytes / 1024:>8.0f} K {p.ram_bytes / 1024:>8.0f} K {p.clock_hz / 1e6:>6.0f} MHz "
              f"{p.macs_per_cycle.get('int8', 0):>13}  {p.description}")
    print("your own: a .toml file shaped like edgeprune/devices/builtin.toml, passed to --device")
    return 0


def add(sub) -> None:
    s = sub.add_parser("eval", help="test accuracy of a model directory")
    s.add_argument("model", type=Path)
    add_data(s)
    s.set_defaults(fn=cmd_eval)
    s = sub.add_parser("profile", help="parameters, MACs, bytes, peak memory, measured latency")
    s.add_argument("model", type=Path)
    s.add_argument("--onnx", action="store_true", help="also time ONNX Runtime")
    s.add_argument("--repeats", type=COUNT, default=100)
    s.set_defaults(fn=cmd_profile)
    s = sub.add_parser("devices", help="list the built-in device profiles")
    s.set_defaults(fn=cmd_devices)
