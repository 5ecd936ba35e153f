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

import json
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from edgeprune.fit.config import Candidate, FitConfig, FitResult
from edgeprune.fit.deploy import finish
from edgeprune.fit.widths import _Fitter, calibrate_on_emulator, find_widths
from edgeprune.outputs import check_output, writing
from edgeprune.recovery import RecoveryConfig, recover
from edgeprune.training import TrainConfig, evaluate, train


def fit(model: nn.Module, task, config: FitConfig | None = None, out_dir: str | Path | None = None, *,
        overwrite: bool = False, inputs: tuple = (), arch: str | None = None,
        arch_kwargs: dict | None = None) -> FitResult:
    """Search, prune, recover and quantize `model` for `config.device`; see the module docstring.

    With `out_dir`, every file (ONNX, C, report, and with `arch` the model folder `model/`)
    is written there in one step at the end; an earlier edgeprune output is replaced only with
    `overwrite=True`, a folder holding anything else never (checked before any work)."""
    if out_dir is not None:
        check_output(out_dir, force=overwrite, inputs=inputs)
    cfg = config or FitConfig()
    t0 = time.time()
    torch.manual_seed(cfg.seed)
    f = _Fitter(model, task, cfg)
    emulate = calibrate_on_emulator(f)
    f.smallest()
    result = find_widths(f, emulate)
    pruned = result.model
    acc = {"dense": evaluate(f.model, task.test), "pruned": evaluate(pruned, task.test)}
    # least squares first: fine-tuning then starts close to the dense function
    recover(f.model, pruned, result.plan, task, RecoveryConfig(
        method=cfg.recover, epochs=cfg.finetune_epochs, lr=cfg.lr, calibration=cfg.calibration, seed=cfg.seed,
        least_squares_first=True), data=f.calib)
    acc["recovered"] = evaluate(pruned, task.test)
    if cfg.qat_epochs > 0:
        _quantization_aware(pruned, task, cfg, acc)
    if out_dir is None:
        return finish(pruned, result, f, cfg, task, acc, Path(tempfile.mkdtemp(prefix="edgeprune-fit-")), t0,
                      c_code=False)
    with writing(out_dir, force=overwrite, inputs=inputs, kind="fit") as tmp:
        out = finish(pruned, result, f, cfg, task, acc, tmp, t0)
        _write(out, tmp, pruned, result.plan, f.profile.name, acc, arch, arch_kwargs)
    out.files = {k: Path(out_dir) / v for k, v in out.files.items()}
    return out


def _quantization_aware(pruned: nn.Module, task, cfg: FitConfig, acc: dict) -> None:
    """Fine-tuning with int8 fake quantisation of weights and activations (edgeprune.deploy.qat)."""
    from edgeprune.deploy.qat import FakeQuant
    fq = FakeQuant(pruned)
    train(pruned, task.train, task.val, TrainConfig(epochs=cfg.qat_epochs, lr=cfg.lr / 10, seed=cfg.seed,
                                                    keep_best=False))
    fq.remove()
    acc["after_qat_float"] = evaluate(pruned, task.test)


def _write(out: FitResult, tmp: Path, pruned: nn.Module, plan, device: str, acc: dict, arch: str | None,
           arch_kwargs: dict | None) -> None:
    from edgeprune.model_io import write_model_files
    from edgeprune.report.fit_report import fit_report_html
    if arch is not None:
        write_model_files(tmp / "model", pruned, arch, arch_kwargs, plan, {"device": device, "accuracy": acc})
        out.files["model"] = Path("model")
    out.files.update(report=Path("report.html"), summary=Path("fit.json"))
    (tmp / "fit.json").write_text(json.dumps(out.summary(), indent=1, default=float))
    (tmp / "report.html").write_text(fit_report_html(out))


__all__ = ["Candidate", "FitConfig", "FitResult", "fit"]
