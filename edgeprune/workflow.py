"""The end-to-end jobs behind the CLI: train, prune + recover, evaluate, and the demo."""
from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from edgeprune.api import PruneConfig, PruneResult, prune
from edgeprune.data import load_hapt, load_image_dataset
from edgeprune.errors import ConfigError
from edgeprune.export.onnx import export_onnx
from edgeprune.metrics import measure
from edgeprune.report_table import before_after_table
from edgeprune.training import TrainConfig, evaluate, take_samples, train
from edgeprune.zoo import MODELS


@dataclass
class Task:
    name: str
    train: DataLoader
    val: DataLoader
    test: DataLoader
    num_classes: int
    input_shape: tuple[int, ...]


def load_task(name: str, batch_size: int = 64, npz: str | None = None, root: str = "~/.cache/edgeprune",
              download: bool = False, limit: int | None = None, seed: int = 0) -> Task:
    """Data loaders for 'hapt' (shipped), 'hapt12' (with transitions) or an image dataset."""
    g = torch.Generator().manual_seed(seed)
    if name in ("hapt", "hapt12"):
        d = load_hapt(transitions=name == "hapt12")
        tr, va, te = d.loaders(batch_size, seed)
        return Task(name, tr, va, te, d.num_classes, tuple(d.x.shape[1:]))
    d = load_image_dataset(name, root, npz=npz, download=download, limit=limit)
    n_val = max(1, len(d.x_train) // 12)
    perm = torch.randperm(len(d.x_train), generator=g)
    vi, ti = perm[:n_val], perm[n_val:]
    tr = DataLoader(TensorDataset(d.x_train[ti], d.y_train[ti]), batch_size, shuffle=True, generator=g)
    va = DataLoader(TensorDataset(d.x_train[vi], d.y_train[vi]), 512)
    te = DataLoader(TensorDataset(d.x_test, d.y_test), 512)
    return Task(name, tr, va, te, 10, tuple(d.x_train.shape[1:]))


def calibration_batches(task: Task, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return take_samples(task.train, n)


RECOVERY = ("finetune", "distill", "reconstruct", "bn-recalibrate", "none")


def prune_and_recover(model: torch.nn.Module, task: Task, config: PruneConfig, finetune: TrainConfig | None,
                      recovery: str = "finetune", calibration: int = 1000) -> tuple[PruneResult, dict]:
    """Prune (verified), then recover: fine-tune, distil from the unpruned model, or without
    training (least-squares reconstruction, or batch-norm re-calibration only) from
    `calibration` training samples. Returns the result and accuracies {before, pruned, recovered}."""
    from edgeprune.recovery import bn_recalibrate, reconstruct

    if recovery not in RECOVERY:
        raise ConfigError(f"recovery must be one of {RECOVERY}, got {recovery!r}")
    example = torch.randn(1, *task.input_shape)
    acc = {"before": evaluate(model, task.test)}
    data = calibration_batches(task, calibration)
    result = prune(model, config, example_inputs=example, data=data)
    acc["pruned"] = evaluate(result.model, task.test)
    if recovery in ("finetune", "distill") and finetune is not None and finetune.epochs > 0:
        teacher = copy.deepcopy(model).eval() if recovery == "distill" else None
        cfg = finetune if recovery == "finetune" else TrainConfig(**{**finetune.__dict__, "distill_alpha": 0.7})
        train(result.model, task.train, task.val, cfg, teacher=teacher)
    elif recovery == "reconstruct":
        reconstruct(model, result.model, result.plan, data, samples=calibration)
    elif recovery == "bn-recalibrate":
        bn_recalibrate(result.model, data)
    if recovery != "none":
        acc["recovered"] = evaluate(result.model, task.test)
    return result, acc


def demo(out_dir: str | Path = "runs/demo", epochs: int = 8, finetune_epochs: int = 4, keep_macs: float = 0.25,
         criterion: str = "l1", seed: int = 0, force: bool = False) -> dict:
    """Train the HAPT activity CNN, prune it to `keep_macs` of its MACs, fine-tune, verify,
    export ONNX (checked in ONNX Runtime) and print a before/after table. Everything lands in
    `out_dir` in one step at the end; an earlier demo there is replaced, anything else refused."""
    from edgeprune.outputs import check_output, writing
    from edgeprune.report import widths_svg
    from edgeprune.store import write_model_files

    t0 = time.time()
    check_output(out_dir, force=force, replace_kind="demo")
    torch.manual_seed(seed)
    out_dir = Path(out_dir)
    say = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    say(f"[1/5] loading HAPT (shipped with edgeprune) and training har_cnn for {epochs} epochs")
    task = load_task("hapt", seed=seed)
    model = MODELS["har_cnn"].factory(num_classes=task.num_classes)
    train(model, task.train, task.val, TrainConfig(epochs=epochs, seed=seed))
    say(f"[2/5] pruning to {keep_macs:.0%} of the MACs ({criterion}), verifying against the masked original")
    result, acc = prune_and_recover(model, task, PruneConfig(criterion=criterion, keep_macs=keep_macs, seed=seed),
                                    TrainConfig(epochs=finetune_epochs, lr=1e-3, seed=seed))
    say(f"[3/5] fine-tuned for {finetune_epochs} epochs")
    example = torch.randn(1, *task.input_shape)
    with writing(out_dir, force=force, replace_kind="demo", kind="demo") as tmp:
        write_model_files(tmp / "dense", model, "har_cnn", {"num_classes": task.num_classes})
        write_model_files(tmp / "pruned", result.model, "har_cnn", {"num_classes": task.num_classes}, result.plan)
        (tmp / "widths.svg").write_text(widths_svg(result.plan))
        say("[4/5] exporting ONNX and checking it in ONNX Runtime")
        export_onnx(model, example, tmp / "dense.onnx")
        export_onnx(result.model, example, tmp / "pruned.onnx")
    say("[5/5] measuring (batch 1, one thread, median of repeats)")
    before = measure(model, example, latency=True, onnx=True, repeats=200)
    after = measure(result.model, example, latency=True, onnx=True, repeats=200)
    table = before_after_table(before, after, [("test accuracy (users 22-30)", acc["before"], acc["recovered"], "pct"),
                                               ("  right after pruning", None, acc["pruned"], "pct")])
    print(table)
    print(result.verification)
    print(f"models in {out_dir}/ (dense/, pruned/, dense.onnx, pruned.onnx, widths.svg); "
          f"{time.time() - t0:.0f} s in all")
    return {"accuracy": acc, "before": before.to_dict(), "after": after.to_dict(),
            "verification_error": result.verification.max_abs_error, "seconds": time.time() - t0}
