"""`edgeprune` command line. Each command builds the same configs as the Python API and calls
it; exit codes: 0 ok, 1 verification failed, 2 bad input."""
from __future__ import annotations

import argparse
import errno
import json
import math
import sys
from pathlib import Path

import torch

from edgeprune.errors import ConfigError, EdgePruneError, VerificationError


def _number(kind: type, low: float | None = None, high: float | None = None, low_open: bool = False,
            high_open: bool = False):
    """An argparse type: a finite int/float within bounds, with a message saying which."""
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    span = (f"in {lo}{low}, {high}{hi}" if high is not None else
            f"{'>' if low_open else '>='} {low}" if low is not None else "finite")
    noun = "an integer" if kind is int else "a number"

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {noun} {span}, got {text!r}") from None
        bad = (not math.isfinite(v) or (low is not None and (v <= low if low_open else v < low))
               or (high is not None and (v >= high if high_open else v > high)))
        if bad:
            raise argparse.ArgumentTypeError(f"must be {noun} {span}, got {text}")
        return v
    return parse


COUNT = _number(int, 1)           # 1, 2, ...
EPOCHS = _number(int, 0, 100_000)
SEED = _number(int, 0, 2 ** 32 - 1)
RATIO = _number(float, 0, 1, high_open=True)                # fraction removed: [0, 1)
KEEP = _number(float, 0, 1, low_open=True)                  # fraction kept: (0, 1]
POSITIVE = _number(float, 0, low_open=True)
NONNEG = _number(float, 0)


def _add_force(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="replace an earlier edgeprune output in --out (a folder "
                   "holding anything edgeprune did not write is never replaced)")


class _UsageError(Exception):
    """A command-line value argparse rejected (reported like every other bad input)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print usage and exit; we report it our way
        raise _UsageError(f"{message}\nhelp: {self.prog} --help")


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="hapt", choices=["hapt", "hapt12", "mnist", "fashion_mnist", "cifar10"],
                   help="hapt (shipped), hapt12, mnist, fashion_mnist or cifar10")
    p.add_argument("--npz", help="local .npz copy of an image dataset (instead of torchvision)")
    p.add_argument("--root", default="~/.cache/edgeprune", help="torchvision dataset folder")
    p.add_argument("--download", action="store_true", help="let torchvision download the dataset")
    p.add_argument("--batch-size", type=COUNT, default=64)
    p.add_argument("--seed", type=SEED, default=0)



def _task(a):
    from edgeprune.workflow import load_task
    return load_task(a.data, a.batch_size, a.npz, a.root, a.download, seed=a.seed)


def _check_out(a, *inputs) -> None:
    """Refuse a --out edgeprune must not write to before any work starts (edgeprune.outputs)."""
    from edgeprune.outputs import check_output

    check_output(a.out, force=a.force, inputs=inputs)


def cmd_train(a) -> int:
    from edgeprune.store import save_model
    from edgeprune.training import TrainConfig, evaluate, train
    from edgeprune.zoo import create_model

    _check_out(a)
    task = _task(a)
    kwargs = {"num_classes": task.num_classes}
    model = create_model(a.model, **kwargs)
    if a.target_macs is not None or a.target_params is not None:
        return _train_to_rate(a, model, task, kwargs)
    meta_extra = {}
    if a.fbs is not None:
        from edgeprune.methods import add_fbs
        add_fbs(model, a.fbs)
        kwargs["fbs_density"] = a.fbs
    hooks = _training_method(a, model, task)
    # soft filter pruning zeroes filters every epoch; the best-validation checkpoint could predate that
    cfg = TrainConfig(epochs=a.epochs, lr=a.lr, seed=a.seed, keep_best=a.soft_filter is None)
    train(model, task.train, task.val, cfg, **hooks.get("train", {}))
    plan = None
    if "finalize" in hooks:
        result = hooks["finalize"]()
        model, plan = result.model, result.plan
    acc = evaluate(model, task.test)
    if a.fbs is not None:
        from edgeprune.methods import dynamic_macs
        used, dense = dynamic_macs(model, torch.cat([x for x, _ in task.test]))
        meta_extra = {"fbs_macs_per_input": {"mean": float(used.mean()), "min": float(used.min()),
                                             "max": float(used.max()), "dense": dense}}
        if not a.json:
            print(f"FBS: gated convolutions need {float(used.mean()):.0f} MACs per input on average "
                  f"(min {float(used.min()):.0f}, max {float(used.max()):.0f}) of {dense} dense")
    save_model(model, a.out, a.model, kwargs, plan=plan, overwrite=a.force,
               meta={"data": a.data, "test_accuracy": acc, "regularizer": a.regularizer, "soft_filter": a.soft_filter,
                     **meta_extra})
    print(json.dumps({"test_accuracy": acc, "out": str(a.out), **meta_extra}) if a.json
          else f"test accuracy {acc:.4f}; saved to {a.out}")
    return 0


def _train_to_rate(a, model, task, kwargs) -> int:
    """Taylor importance + channel reallocation: one run from scratch to the requested rate."""
    from edgeprune.methods import TaylorReallocationConfig, train_to_rate
    from edgeprune.store import save_model
    from edgeprune.training import TrainConfig, evaluate

    if a.target_macs is not None and a.target_params is not None:
        raise ConfigError("give --target-macs or --target-params, not both")
    key, target = ("macs", a.target_macs) if a.target_macs is not None else ("params", a.target_params)
    x = torch.randn(1, *task.input_shape)
    small, tr = train_to_rate(model, task.train, task.val, x, TrainConfig(epochs=a.epochs, lr=a.lr, seed=a.seed),
                              TaylorReallocationConfig(target=target, key=key))
    acc = evaluate(small, task.test)
    info = {"test_accuracy": acc, "requested": target, "achieved": tr.achieved, "key": key,
            "widths": tr.log.widths[-1], "units_revived": tr.log.revived, "out": str(a.out)}
    save_model(small, a.out, a.model, kwargs, plan=tr.result.plan, meta={"data": a.data, **info}, overwrite=a.force)
    if a.json:
        print(json.dumps(info))
    else:
        print(f"kept {key}: requested {target:.4f}, achieved {tr.achieved:.4f} (one unit is at most "
              f"{tr.unit_cost():.4f}); widths {tr.log.widths[-1]} of {tr.space.sizes}")
        print(tr.result.verification)
        print(f"test accuracy {acc:.4f}; saved to {a.out}")
    return 0


def _training_method(a, model, task) -> dict:
    """Training-time pruning methods by name: a loss penalty (slimming, polarization,
    group_lasso) or soft filter pruning (zeroing every epoch, removal at the end)."""
    from edgeprune.methods import (
        GroupLasso,
        NetworkSlimming,
        Polarization,
        SoftFilterPruning,
    )

    if a.regularizer and a.soft_filter is not None:
        raise ConfigError("choose --regularizer or --soft-filter, not both")
    if a.regularizer == "slimming":
        reg = NetworkSlimming(a.strength)
        return {"train": {"penalty": reg.penalty}}
    if a.regularizer == "polarization":
        reg = Polarization(a.strength)
        return {"train": {"penalty": reg.penalty, "on_step": lambda m, s: reg.clamp_(m)}}
    if a.regularizer == "group_lasso":
        reg = GroupLasso(a.strength)
        return {"train": {"penalty": reg.penalty}}
    if a.soft_filter is not None:
        sfp = SoftFilterPruning(model, torch.randn(1, *task.input_shape), prune_ratio=a.soft_filter)
        return {"train": {"on_epoch": lambda m, e: sfp.step()}, "finalize": sfp.finalize}
    return {}


def cmd_prune(a) -> int:
    from edgeprune.api import PruneConfig
    from edgeprune.store import load_model
    from edgeprune.training import TrainConfig
    from edgeprune.workflow import prune_and_recover

    model, info = load_model(a.model, finite=True)
    if (Path(a.model) / "plan.json").exists():
        raise ConfigError(f"{a.model} is already pruned; prune its dense parent, or use `steps` for iterative pruning")
    _check_out(a, a.model)
    task = _task(a)
    if a.method != "criterion":
        return _prune_by_method(a, model, info, task)
    config = PruneConfig(criterion=a.criterion, prune_ratio=a.ratio, keep_macs=a.keep_macs, keep_params=a.keep_params,
                         scope=a.scope, round_to=a.round_to, min_channels=a.min_channels, ignore=tuple(a.ignore),
                         steps=a.steps, seed=a.seed)
    ft = TrainConfig(epochs=a.finetune_epochs, lr=a.lr, seed=a.seed)
    recovery = "distill" if a.distill else a.recover
    result, acc = prune_and_recover(model, task, config, ft, recovery=recovery, calibration=a.calibration)
    _save_pruned(a, result, info, {"data": a.data, "accuracy": acc, "parent": str(a.model)})
    _print_prune(a, result, acc)
    return 0


def _prune_by_method(a, model, info, task) -> int:
    """Width search (amc, abc, dsa) for a MACs/params budget, RED merging, or layer removal."""
    from edgeprune.training import TrainConfig, evaluate, train

    ft = TrainConfig(epochs=a.finetune_epochs, lr=a.lr, seed=a.seed)
    x = torch.randn(1, *task.input_shape)
    if a.method in ("amc", "abc", "dsa"):
        from edgeprune.search.run import SearchOptions, search_prune
        if a.keep_params is not None and a.keep_macs is not None:
            raise ConfigError("give --keep-macs or --keep-params, not both")
        key, target = ("params", a.keep_params) if a.keep_params is not None else ("macs", a.keep_macs or 0.5)
        opts = SearchOptions(episodes=a.episodes, warmup=min(a.episodes // 3, 100), cycles=a.cycles)
        result, acc, details = search_prune(model, task, a.method, target, key, ft, opts, a.seed)
    else:
        from edgeprune.api import PruneResult
        from edgeprune.metrics import measure
        from edgeprune.surgery.plan import PrunePlan

        before = evaluate(model, task.test)
        if a.method == "red":
            from edgeprune.methods import merge_redundant
            merged = merge_redundant(model, x, bins=a.bins)
            new, plan, details = merged.model, merged.plan, {"merged_channels": merged.merged,
                                                             "max_abs_change": merged.max_abs_error}
        else:
            from edgeprune.methods import prune_layers
            from edgeprune.workflow import calibration_batches
            res = prune_layers(model, calibration_batches(task, a.calibration), a.blocks, x)
            if not res.removed:
                raise ConfigError(f"{info['arch']} has no block whose output has its input's shape; layer pruning "
                                  "removes residual blocks (try resnet1d, resnet8 or resnet20)")
            new, plan, details = res.model, None, {"removed_blocks": res.removed}
        result = PruneResult(new, plan or PrunePlan(), measure(model, x), measure(new, x), None, "")
        acc = {"before": before, "pruned": evaluate(result.model, task.test)}
        if ft.epochs > 0:
            train(result.model, task.train, task.val, ft)
            acc["recovered"] = evaluate(result.model, task.test)
    _save_pruned(a, result, info, {"data": a.data, "accuracy": acc, "method": a.method, "parent": str(a.model),
                                   **details})
    _print_prune(a, result, acc, details)
    return 0


def _save_pruned(a, result, info, meta) -> None:
    from edgeprune.report import widths_svg
    from edgeprune.store import save_model

    save_model(result.model, a.out, info["arch"], info.get("kwargs"), meta=meta, overwrite=a.force,
               plan=None if result.plan.is_empty else result.plan, extra={"widths.svg": widths_svg(result.plan)})


def _print_prune(a, result, acc, details=None) -> None:
    from edgeprune.report_table import before_after_table

    if a.json:
        print(json.dumps({"accuracy": acc, "before": result.before.to_dict(), "after": result.after.to_dict(),
                          "verification_error": result.verification.max_abs_error if result.verification else None,
                          **({"details": details} if details else {})}))
    else:
        extra = [("test accuracy", acc["before"], acc.get("recovered", acc.get("pruned", acc.get("searched"))), "pct")]
        print(before_after_table(result.before, result.after, extra))
        if details:
            print(", ".join(f"{k}: {v}" for k, v in details.items() if k != "keep"))
        if result.verification is not None:
            print(result.verification)
        print(f"saved to {a.out} (per-layer widths: {a.out}/widths.svg)")


def cmd_sparsify(a) -> int:
    from edgeprune.sparsify import sparsify
    from edgeprune.store import load_model, save_model
    from edgeprune.training import evaluate

    if a.method == "nm":
        from edgeprune.sparse.nm import check_nm
        check_nm(a.n, a.m)
    model, info = load_model(a.model, finite=True)
    _check_out(a, a.model)
    task = _task(a)
    before = evaluate(model, task.test)
    masks, report = sparsify(model, a.method, a.sparsity, task, a.finetune_epochs, a.n, a.m, a.lr, a.seed,
                             rounds=a.rounds)
    report["accuracy"] = {"before": before, "after": evaluate(model, task.test)}
    plan_dir = Path(a.model)
    from edgeprune.surgery.plan import PrunePlan
    plan = PrunePlan.load(plan_dir / "plan.json") if (plan_dir / "plan.json").exists() else None
    save_model(model, a.out, info["arch"], info.get("kwargs"), plan=plan, overwrite=a.force,
               meta={"sparsity": report["sparsity"], "method": a.method, "accuracy": report["accuracy"],
                     "parent": str(a.model)})
    if a.json:
        print(json.dumps(report))
    else:
        st = report["storage_int8_bytes"]
        print(f"sparsity {report['sparsity']:.4f}; test accuracy {before:.4f} -> {report['accuracy']['after']:.4f}")
        print(f"int8 weight storage: dense {st['dense']} B, bitmask {st['bitmask']} B, CSR {st['csr']} B, "
              f"best per layer {st['best_per_layer']} B; saved to {a.out}")
    return 0


def cmd_eval(a) -> int:
    from edgeprune.store import load_model
    from edgeprune.training import evaluate

    model, _ = load_model(a.model)
    acc = evaluate(model, _task(a).test)
    print(json.dumps({"test_accuracy": acc}) if a.json else f"test accuracy {acc:.4f}")
    return 0


def _example(model_dir, finite: bool = False):
    from edgeprune.store import load_model
    from edgeprune.zoo import MODELS

    model, info = load_model(model_dir, finite=finite)
    return model, torch.randn(1, *MODELS[info["arch"]].input_shape)


def cmd_profile(a) -> int:
    from edgeprune.metrics import measure

    model, x = _example(a.model)
    s = measure(model, x, latency=True, onnx=a.onnx, repeats=a.repeats)
    if a.json:
        print(json.dumps(s.to_dict()))
    else:
        for k, v in s.to_dict().items():
            print(f"{k:24} {v}")
    return 0


def cmd_export(a) -> int:
    if a.format == "tflite":
        return _export_tflite(a)
    from edgeprune.export.onnx import export_onnx

    model, x = _example(a.model, finite=True)
    path = export_onnx(model, x, a.out)
    print(f"wrote {path} (checked in ONNX Runtime)")
    return 0


def _export_tflite(a) -> int:
    from edgeprune.deploy import quantize_model
    from edgeprune.export.tflite import check_tflite, export_tflite
    from edgeprune.workflow import calibration_batches

    model, x = _example(a.model, finite=True)
    task = _task(a)
    qm = quantize_model(model, x, calibration_batches(task, a.calibration), samples=a.calibration)
    path = export_tflite(qm, a.out)
    xs, ys = zip(*[(xb, yb) for xb, yb in task.test])
    xs, ys = torch.cat(xs).numpy()[:a.check_samples], torch.cat(ys).numpy()[:a.check_samples]
    c = check_tflite(qm, path, xs, ys)
    if a.json:
        print(json.dumps({"path": str(path), **c.__dict__}))
    else:
        print(f"wrote {path}: in LiteRT (reference kernels) on {c.samples} test inputs, accuracy "
              f"{100 * c.accuracy:.2f} %, predicted class equal to edgeprune's int8 reference on "
              f"{100 * c.argmax_agreement:.1f} %, outputs within {c.max_step_diff} int8 steps of it "
              f"(mean {c.mean_step_diff:.2f})")
    return 0


def cmd_demo(a) -> int:
    from edgeprune.workflow import demo

    res = demo(a.out, force=a.force, epochs=a.epochs, finetune_epochs=a.finetune_epochs, keep_macs=a.keep_macs,
               criterion=a.criterion, seed=a.seed)
    if a.json:
        print(json.dumps(res))
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
    _check_out(a, a.model)
    task = _task(a)
    if a.model is not None:
        from edgeprune.store import load_model
        model, info = load_model(a.model, finite=True)
        arch, kwargs = info["arch"], info.get("kwargs")
        if (Path(a.model) / "plan.json").exists():
            raise ConfigError(f"{a.model} is already pruned; fit its dense parent")
    else:
        arch, kwargs = "har_cnn", {"num_classes": task.num_classes}
        print(f"no --model: training the default {arch} on {a.data} for {a.epochs} epochs", file=sys.stderr)
        model = create_model(arch, **kwargs)
        train(model, task.train, task.val, TrainConfig(epochs=a.epochs, seed=a.seed))
    out = Path(a.out)
    r = fit(model, task, cfg, out_dir=out, overwrite=a.force, inputs=(a.model,), arch=arch, arch_kwargs=kwargs)
    if a.json:
        print(json.dumps(r.summary(), default=float))
    else:
        print(budget_table(r.checks))
        print("accuracy: " + ", ".join(f"{k} {100 * v:.2f} %" for k, v in r.accuracy.items()))
        print(f"{'fits' if r.fits else 'DOES NOT FIT'} {r.profile.name}; report {out / 'report.html'}, "
              f"int8 ONNX {out / 'model_int8.onnx'}, model {out / 'model'}"
              + (f", {r.files['tflite']}" if "tflite" in r.files else ""))
    return 0 if r.fits else 1


def cmd_federated(a) -> int:
    try:
        import flwr  # noqa: F401
    except ImportError as exc:
        raise ConfigError("federated learning needs Flower: pip install 'flwr==1.41.0' "
                          "(or pip install -e '.[federated]')") from exc
    if a.role == "certs":
        from edgeprune.federated.tls import make_credentials
        if a.out is None:
            raise ConfigError("certs needs --out DIR (a new folder for the certificates and keys)")
        files = make_credentials(a.out, tuple(a.host), a.devices, force=a.force)
        print(json.dumps({"out": str(a.out), **files}) if a.json else
              f"wrote to {a.out}: ca.crt (give it to every device and to flwr), server.pem + server.key (the "
              f"SuperLink's), device1..{a.devices}.key (one per device, keep it there) and .pub (register it: "
              f"flwr supernode register {a.out}/device1.pub edgeprune); valid for {', '.join(a.host)}")
        return 0
    if a.role == "app":
        from edgeprune.federated.deploy import CONNECTION, write_app
        if a.out is None:
            raise ConfigError("app needs --out DIR (a new folder for the Flower App)")
        config = {"method": a.method[0], "rounds": a.rounds, "min-devices": a.min_devices,
                  "local-epochs": a.local_epochs, "lr": a.lr, "prune-ratio": a.prune_ratio, "seed": a.seed,
                  "aggregation": a.aggregate, "count-cap": a.count_cap,
                  "checkpoint": str(Path(a.checkpoint).resolve()) if a.checkpoint else ""}
        out = write_app(a.out, a.superlink, force=a.force, root_certificates=a.root_certificates,
                        insecure=a.insecure, **config)
        tls = ("--insecure" if a.insecure else
               f"--root-certificates {a.root_certificates} --auth-supernode-private-key DEVICE.key")
        print(f"Flower App written to {out}; Flower's settings for it are in {out}/flower (connection "
              f"'{CONNECTION}' to {a.superlink}). With the SuperLink running, per device:\n"
              + ("" if a.insecure else f"    FLWR_HOME={out}/flower flwr supernode register DEVICE.pub {CONNECTION}\n")
              + f"    flower-supernode {tls} --superlink {a.superlink} --node-config user=N\nthen:\n"
              f"    FLWR_HOME={out}/flower flwr run {out} {CONNECTION} --stream")
        return 0
    if a.role == "serve":
        from edgeprune.federated.deploy import serve
        certs = (a.ssl_ca_certfile, a.ssl_certfile, a.ssl_keyfile)
        if any(certs) and not all(certs):
            raise ConfigError("TLS needs all three: --ssl-ca-certfile, --ssl-certfile and --ssl-keyfile")
        res = serve(a.address, a.method[0], a.rounds, a.min_devices, a.local_epochs, a.lr, a.prune_ratio,
                    checkpoint_dir=a.checkpoint, out=a.history, seed=a.seed,
                    certificates=certs if all(certs) else None, insecure=a.insecure,
                    aggregation=a.aggregate, count_cap=a.count_cap)
        print(json.dumps(res) if a.json else f"{len(res['rounds'])} rounds; accuracy "
              f"{res['rounds'][-1]['accuracy']:.4f}; {res['total_bytes'] / 2 ** 20:.2f} MiB in all")
        return 0
    if a.role == "device":
        from edgeprune.federated.deploy import device
        if a.user is None:
            raise ConfigError("device needs --user N (a HAPT user, 1-21)")
        device(a.address, a.user, fault=a.fault, seed=a.seed, root_certificates=a.root_certificates,
               insecure=a.insecure)
        return 0
    from edgeprune.federated.experiment import FedConfig, compare
    cfg = FedConfig(rounds=a.rounds, devices_per_user=a.devices_per_user, local_epochs=a.local_epochs, lr=a.lr,
                    fraction_fit=a.fraction_fit, prune_ratio=a.prune_ratio, seed=a.seed, mia_holdout=a.mia_holdout,
                    perturb=a.perturb, dataset=a.data, devices=a.devices, partition=a.partition, alpha=a.alpha,
                    limit=a.limit, npz=a.npz, data_root=a.root, download=a.download, arch=a.model,
                    enforce_profiles=a.enforce_profiles, aggregation=a.aggregate, count_cap=a.count_cap,
                    attack=a.attack, attackers=a.attackers)
    res = compare(tuple(a.method), cfg, a.out, merge=a.merge, force=a.force)
    if a.json:
        print(json.dumps(res))
    else:
        base = res.get("fedavg")
        for m, r in res.items():
            last = r["rounds"][-1]
            ratio = f", {base['total_bytes'] / r['total_bytes']:.1f}x less traffic than fedavg" if base and m != "fedavg" else ""
            print(f"{m:8} accuracy {100 * last['accuracy']:.2f} % after {len(r['rounds'])} rounds; "
                  f"{r['total_bytes'] / 2 ** 20:.1f} MiB in all{ratio}; {len(r['rejected'])} updates rejected")
        if a.out:
            print(f"plot and figures in {a.out}/federated.svg, {a.out}/federated.json")
    return 0


def robust_rules() -> tuple[str, ...]:
    try:
        from edgeprune.federated.robust import RULES
    except ImportError:  # Flower not installed: the federated command says so when run
        return ("mean",)
    return RULES


def attack_names() -> tuple[str, ...]:
    try:
        from edgeprune.federated.client import ATTACKS
    except ImportError:
        return ()
    return ATTACKS


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="edgeprune", description="Prune PyTorch models to fit IoT devices.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("train", help="train a zoo model")
    s.add_argument("--model", default="har_cnn")
    s.add_argument("--epochs", type=EPOCHS, default=10)
    s.add_argument("--lr", type=POSITIVE, default=2e-3)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--regularizer", choices=["slimming", "polarization", "group_lasso"],
                   help="sparsity-inducing penalty during training (then prune with --criterion bn_scale or l2)")
    s.add_argument("--strength", type=NONNEG, default=1e-4, help="weight of the penalty")
    s.add_argument("--soft-filter", type=RATIO, metavar="RATIO",
                   help="soft filter pruning: zero RATIO of each layer's filters every epoch, remove them at the end")
    s.add_argument("--target-macs", type=KEEP, metavar="KEEP",
                   help="train to KEEP of the MACs in one run (Taylor importance + channel reallocation, Qi et al.)")
    s.add_argument("--target-params", type=KEEP, metavar="KEEP", help="same, for a parameter budget")
    s.add_argument("--fbs", type=KEEP, metavar="DENSITY",
                   help="feature boosting and suppression: gate each conv+BN, DENSITY of its channels run per input")
    _add_data(s)
    _add_force(s)
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("prune", help="prune a trained model, fine-tune, verify")
    s.add_argument("model", type=Path, help="model directory (from `edgeprune train`)")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--method", default="criterion", choices=["criterion", "amc", "abc", "dsa", "red", "layers"],
                   help="criterion: rank by --criterion; amc/abc/dsa: search per-layer widths for --keep-macs or "
                        "--keep-params; red: merge redundant channels without data; layers: drop --blocks blocks")
    s.add_argument("--criterion", default="l1")
    s.add_argument("--episodes", type=COUNT, default=300, help="AMC episodes")
    s.add_argument("--cycles", type=COUNT, default=10, help="ABC cycles")
    s.add_argument("--bins", type=_number(int, 2), help="RED: hash weights to this many levels (default: exact duplicates)")
    s.add_argument("--blocks", type=COUNT, default=1, help="layers: residual blocks to remove")
    s.add_argument("--ratio", type=RATIO, default=0.5, help="fraction of channels removed per group")
    s.add_argument("--keep-macs", type=KEEP, help="fraction of MACs to keep (overrides --ratio)")
    s.add_argument("--keep-params", type=KEEP, help="fraction of parameters to keep")
    s.add_argument("--scope", default="local", choices=["local", "global"])
    s.add_argument("--round-to", type=COUNT, default=1)
    s.add_argument("--min-channels", type=COUNT, default=1)
    s.add_argument("--ignore", nargs="*", default=[], help="module names to leave alone")
    s.add_argument("--steps", type=_number(int, 1, 100), default=1)
    s.add_argument("--finetune-epochs", type=EPOCHS, default=4)
    s.add_argument("--lr", type=POSITIVE, default=1e-3)
    s.add_argument("--recover", default="finetune",
                   choices=["finetune", "distill", "reconstruct", "bn-recalibrate", "none"],
                   help="how to recover accuracy; reconstruct and bn-recalibrate need no training")
    s.add_argument("--distill", action="store_true", help="same as --recover distill")
    s.add_argument("--calibration", type=COUNT, default=1000, help="calibration samples (training data)")
    _add_data(s)
    _add_force(s)
    s.set_defaults(fn=cmd_prune)

    s = sub.add_parser("sparsify", help="unstructured or N:M sparsity by method name, fine-tuned with masks held")
    s.add_argument("model", type=Path)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--method", default="magnitude",
                   choices=["magnitude", "layer_magnitude", "lamp", "nm", "wanda", "sparsegpt", "gmp", "iterative", "dns", "dpf"],
                   help="sparsegpt prunes Linear layers only; gmp, dns and dpf prune while fine-tuning")
    s.add_argument("--rounds", type=COUNT, default=3, help="prune-retrain rounds of the iterative method")
    s.add_argument("--sparsity", type=RATIO, default=0.9)
    s.add_argument("--n", type=_number(int, 1, 64), default=2, help="N of N:M")
    s.add_argument("--m", type=_number(int, 2, 64), default=4, help="M of N:M")
    s.add_argument("--finetune-epochs", type=EPOCHS, default=0)
    s.add_argument("--lr", type=POSITIVE, default=1e-3)
    _add_data(s)
    _add_force(s)
    s.set_defaults(fn=cmd_sparsify)

    s = sub.add_parser("eval", help="test accuracy of a model directory")
    s.add_argument("model", type=Path)
    _add_data(s)
    s.set_defaults(fn=cmd_eval)

    s = sub.add_parser("profile", help="parameters, MACs, bytes, peak memory, measured latency")
    s.add_argument("model", type=Path)
    s.add_argument("--onnx", action="store_true", help="also time ONNX Runtime")
    s.add_argument("--repeats", type=COUNT, default=100)
    s.set_defaults(fn=cmd_profile)

    s = sub.add_parser("export", help="export ONNX (checked in ONNX Runtime) or a fully-integer .tflite "
                       "(checked in LiteRT)")
    s.add_argument("model", type=Path)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--format", choices=["onnx", "tflite"], default="onnx",
                   help="tflite: int8, calibrated on --data, for TFLite Micro / STM32Cube.AI / Edge Impulse / eIQ")
    s.add_argument("--calibration", type=COUNT, default=500, help="tflite: calibration samples")
    s.add_argument("--check-samples", type=COUNT, default=1000, help="tflite: test inputs run in LiteRT")
    _add_data(s)
    s.set_defaults(fn=cmd_export)

    s = sub.add_parser("demo", help="train on HAPT, prune to 1/4 of the MACs, fine-tune, verify, export")
    s.add_argument("--out", type=Path, default=Path("runs/demo"))
    s.add_argument("--epochs", type=EPOCHS, default=8)
    s.add_argument("--finetune-epochs", type=EPOCHS, default=4)
    s.add_argument("--keep-macs", type=KEEP, default=0.25)
    s.add_argument("--criterion", default="l1")
    s.add_argument("--seed", type=SEED, default=0)
    _add_force(s)
    s.set_defaults(fn=cmd_demo)

    s = sub.add_parser("devices", help="list the built-in device profiles")
    s.set_defaults(fn=cmd_devices)

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
    _add_data(s)
    _add_force(s)
    s.set_defaults(fn=cmd_fit)

    s = sub.add_parser("federated", help="federated learning with pruning on Flower (HAPT users as devices)")
    s.add_argument("role", choices=["simulate", "certs", "app", "serve", "device"],
                   help="simulate on this machine; make TLS certificates and device keys (certs); write the Flower "
                        "App for a SuperLink and SuperNodes (app); or run a real server / device process over gRPC")
    s.add_argument("--method", nargs="+", default=["fedavg", "pqsu"], choices=["fedavg", "pqsu", "memdefense", "personal", "gwep", "prunefl"],
                   help="strategies (simulate runs each, side by side; serve uses the first)")
    s.add_argument("--rounds", type=COUNT, default=20)
    s.add_argument("--local-epochs", type=EPOCHS, default=1)
    s.add_argument("--lr", type=POSITIVE, default=0.05)
    s.add_argument("--prune-ratio", type=RATIO, default=0.5, help="pqsu: fraction of channels pruned once, up front")
    s.add_argument("--devices-per-user", type=_number(int, 1, 100), default=1, help="simulate: split each user into N devices")
    s.add_argument("--fraction-fit", type=KEEP, default=1.0, help="simulate: devices sampled per round")
    s.add_argument("--out", type=Path, help="simulate: folder for federated.json and federated.svg; app: folder for the Flower App")
    s.add_argument("--mia-holdout", type=_number(float, 0, 0.9), default=0.0,
                   help="simulate: fraction of each user's windows kept from training as non-members for the "
                        "membership-inference attack (default: held-out users are the non-members)")
    s.add_argument("--merge", action="store_true",
                   help="simulate: keep the other methods already in --out/federated.json beside these runs")
    s.add_argument("--enforce-profiles", action="store_true",
                   help="simulate: a device takes part only if the model's int8 cost fits its profile (cycled: "
                        "rp2040, stm32l432, nrf52840, esp32; 200 ms latency budget)")
    s.add_argument("--perturb", type=_number(float, 0, 1, low_open=True, high_open=True), default=0.3,
                   help="memdefense: largest fraction of the weights whose local update may be pruned")
    s.add_argument("--data", default="hapt", choices=["hapt", "mnist", "fashion_mnist", "cifar10"],
                   help="simulate: HAPT users as devices, or an image dataset partitioned over --devices")
    s.add_argument("--devices", type=_number(int, 1, 10_000), default=10,
                   help="simulate, image data: number of devices; certs: device key pairs to make")
    s.add_argument("--partition", default="iid", choices=["iid", "dirichlet"], help="simulate, image data")
    s.add_argument("--alpha", type=POSITIVE, default=0.5, help="dirichlet partition: concentration (smaller = more skew)")
    s.add_argument("--limit", type=COUNT, help="simulate, image data: use this many training (and test) images")
    s.add_argument("--npz", help="local .npz copy of the image dataset (instead of torchvision)")
    s.add_argument("--root", default="~/.cache/edgeprune", help="torchvision dataset folder")
    s.add_argument("--download", action="store_true", help="let torchvision download the dataset")
    s.add_argument("--model", help="architecture from the zoo (default: har_cnn, lenet5 or resnet8 by dataset)")
    s.add_argument("--superlink", default="127.0.0.1:8000", help="app: the SuperLink's address (its --port)")
    s.add_argument("--address", default="127.0.0.1:8080", help="serve / device: gRPC address (older entry points)")
    s.add_argument("--min-devices", type=COUNT, default=2)
    s.add_argument("--checkpoint", help="serve, app: folder for the per-round checkpoint (resumes from it)")
    s.add_argument("--history", help="serve: write the history JSON here")
    s.add_argument("--user", type=_number(int, 1, 30), help="device: the HAPT user whose data this device holds")
    s.add_argument("--fault", choices=["drop", "slow", "nan", "shape"], help="device: misbehave (for tests)")
    s.add_argument("--root-certificates", help="app, device: the CA certificate the server's TLS certificate is "
                                               "signed with (from `edgeprune federated certs`)")
    s.add_argument("--ssl-ca-certfile", help="serve: CA certificate (TLS)")
    s.add_argument("--ssl-certfile", help="serve: the server's TLS certificate")
    s.add_argument("--ssl-keyfile", help="serve: the server's TLS private key")
    s.add_argument("--insecure", action="store_true",
                   help="app, serve, device: no TLS (plain text): only for a test on one machine")
    s.add_argument("--host", nargs="+", default=["127.0.0.1", "localhost"],
                   help="certs: host names / addresses the devices dial the server by")
    s.add_argument("--aggregate", default="mean", choices=list(robust_rules()),
                   help="how the server combines the updates: the sample-weighted mean (FedAvg), or a rule one "
                        "bad device cannot steer (median, trimmed, krum, multikrum, bulyan, clip)")
    s.add_argument("--count-cap", type=NONNEG, default=4.0,
                   help="cap each device's reported sample count at this many times the round's median (0: off)")
    s.add_argument("--attack", choices=list(attack_names()), help="simulate: what the --attackers devices do")
    s.add_argument("--attackers", type=_number(int, 0, 10_000), default=0,
                   help="simulate: how many devices (drawn with --seed) run --attack")
    s.add_argument("--seed", type=SEED, default=0)
    _add_force(s)
    s.set_defaults(fn=cmd_federated)

    return p


def _report(kind: str, message: str, code: int, as_json: bool) -> int:
    """Errors as one line (plus a help line) on stderr, or as JSON on stdout with --json."""
    if as_json:
        print(json.dumps({"error": kind, "message": message, "exit_code": code}))
    else:
        print(f"edgeprune: {kind}: {message}", file=sys.stderr)
    return code


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"edgeprune: warning: {message}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    as_json = "--json" in argv[:1] or ("--json" in argv and argv.index("--json") < next(
        (i for i, t in enumerate(argv) if not t.startswith("-")), len(argv)))
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as exc:
        return _report("error", str(exc), 2, as_json)
    import warnings
    warnings.showwarning = _warning_line
    try:
        return args.fn(args)
    except VerificationError as exc:
        return _report("verification failed", str(exc), 1, args.json)
    except (EdgePruneError, ConfigError, FileNotFoundError) as exc:
        return _report("error", str(exc), 2, args.json)
    except PermissionError as exc:
        return _report("error", f"permission denied: {exc.filename or exc}", 2, args.json)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            return _report("error", f"cannot write {exc.filename or ''}: {exc.strerror}", 2, args.json)
        raise


if __name__ == "__main__":
    sys.exit(main())
