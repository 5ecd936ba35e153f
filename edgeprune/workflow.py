"""The end-to-end jobs behind the CLI: train, prune + recover, evaluate, and the demo."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from edgeprune.api import PruneConfig, PruneResult, prune
from edgeprune.data.tasks import Task, calibration_batches, load_task  # noqa: F401 (their old home)
from edgeprune.export.onnx import export_onnx
from edgeprune.metrics import measure
from edgeprune.report_table import before_after_table
from edgeprune.training import TrainConfig, evaluate, train
from edgeprune.zoo import MODELS

RECOVERY = ("finetune", "distill", "reconstruct", "bn-recalibrate", "none")


def prune_and_recover(model: torch.nn.Module, task: Task, config: PruneConfig, finetune: TrainConfig | None,
                      recovery: str = "finetune", calibration: int = 1000) -> tuple[PruneResult, dict]:
    """Prune (verified), then recover (edgeprune.recovery.recover: fine-tune, distil from the
    unpruned model, or without training: least-squares reconstruction or batch-norm
    re-calibration from `calibration` training samples). Returns the result and accuracies
    {before, pruned, recovered}."""
    from edgeprune.recovery import RecoveryConfig, recover

    ft = finetune or TrainConfig(epochs=0)
    rec = RecoveryConfig(method=recovery, epochs=ft.epochs, lr=ft.lr, calibration=calibration, seed=ft.seed)
    example = torch.randn(1, *task.input_shape)
    acc = {"before": evaluate(model, task.test)}
    result = prune(model, config, example_inputs=example, data=calibration_batches(task, calibration))
    acc["pruned"] = evaluate(result.model, task.test)
    recover(model, result.model, result.plan, task, rec)
    if rec.method != "none":
        acc["recovered"] = evaluate(result.model, task.test)
    return result, acc


def demo(out_dir: str | Path = "runs/demo", epochs: int = 8, finetune_epochs: int = 4, keep_macs: float = 0.25,
         criterion: str = "l1", seed: int = 0, force: bool = False) -> dict:
    """Train the HAPT activity CNN, prune it to `keep_macs` of its MACs, fine-tune, verify,
    export ONNX (checked in ONNX Runtime) and print a before/after table. Everything lands in
    `out_dir` in one step at the end; an earlier demo there is replaced, anything else refused."""
    from edgeprune.model_io import write_model_files
    from edgeprune.outputs import check_output, writing
    from edgeprune.report import widths_svg

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
