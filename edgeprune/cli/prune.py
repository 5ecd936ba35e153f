"""`edgeprune prune MODEL`: structured pruning by any registered method (verbs "prune" and
"search": a criterion, RED, layer removal, or a width search for a budget), verified, then
recovered (`--recover`), saved with its plan."""
from __future__ import annotations

import json
from pathlib import Path

from edgeprune.cli.common import add_data, add_force, add_recovery, check_out, recovery_config, task
from edgeprune.cli.options import add_config_flag, add_method_options, method_config
from edgeprune.errors import ConfigError

VERBS = ("prune", "search")


def add(sub) -> None:
    s = sub.add_parser("prune", help="prune a trained model (structured), verify, recover")
    s.add_argument("model", type=Path, help="model directory (from `edgeprune train`)")
    s.add_argument("--out", type=Path, required=True)
    add_recovery(s)
    add_data(s)
    add_force(s)
    add_config_flag(s)
    add_method_options(s, VERBS, "criterion", taken={"seed", "calibration"})
    s.set_defaults(fn=run)


def run(a) -> int:
    import torch

    from edgeprune.api import prune
    from edgeprune.data import calibration_batches
    from edgeprune.model_io import load_model
    from edgeprune.recovery import recover
    from edgeprune.search.job import search
    from edgeprune.training import TrainConfig, evaluate

    config = method_config(a, VERBS, "criterion", shared={"seed": a.seed})
    model, info = load_model(a.model, finite=True)
    if (Path(a.model) / "plan.json").exists():
        raise ConfigError(f"{a.model} is already pruned; prune its dense parent, or use --steps for iterative pruning")
    check_out(a, a.model)
    t = task(a)
    rec = recovery_config(a)
    if config.verb == "search":
        result = search(model, config, task=t, finetune=TrainConfig(epochs=a.finetune_epochs, lr=a.lr, seed=a.seed))
        acc = dict(result.accuracy)
    else:
        acc = {"before": evaluate(model, t.test)}
        result = prune(model, config, example_inputs=torch.randn(1, *t.input_shape),
                       data=calibration_batches(t, a.calibration))
        acc["pruned"] = evaluate(result.model, t.test)
    if rec.method != "none" and not (rec.method in ("finetune", "distill") and rec.epochs == 0):
        recover(model, result.model, result.plan, t, rec)
        acc["recovered"] = evaluate(result.model, t.test)
    result.accuracy = acc
    _save(a, result, info, config)
    _print(a, result, acc)
    return 0


def _save(a, result, info, config) -> None:
    from edgeprune.model_io import save_model
    from edgeprune.report import widths_svg

    meta = {"data": a.data, "accuracy": result.accuracy, "method": config.to_dict(), "parent": str(a.model),
            **result.details}
    save_model(result.model, a.out, info["arch"], info.get("kwargs"), meta=meta, overwrite=a.force,
               plan=None if result.plan.is_empty else result.plan, extra={"widths.svg": widths_svg(result.plan)})


def _print(a, result, acc) -> None:
    from edgeprune.report_table import before_after_table

    if a.json:
        print(json.dumps(result.to_dict(), default=float))
        return
    after = acc.get("recovered", acc.get("pruned", acc.get("searched")))
    print(before_after_table(result.before, result.after, [("test accuracy", acc["before"], after, "pct")]))
    details = {k: v for k, v in result.details.items() if k not in ("keep", "method")}
    if details:
        print(", ".join(f"{k}: {v}" for k, v in details.items()))
    if result.verification is not None:
        print(result.verification)
    print(f"saved to {a.out} (per-layer widths: {a.out}/widths.svg)")
