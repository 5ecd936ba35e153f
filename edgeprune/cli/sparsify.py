"""`edgeprune sparsify MODEL`: unstructured or N:M sparsity by any registered method (verb
"sparsify"), fine-tuned with the masks held, saved with the storage each format would take."""
from __future__ import annotations

import json
from pathlib import Path

from edgeprune.cli.common import EPOCHS, POSITIVE, add_data, add_force, check_out, task
from edgeprune.cli.options import add_config_flag, add_method_options, method_config


def add(sub) -> None:
    s = sub.add_parser("sparsify", help="unstructured or N:M sparsity by method name, fine-tuned with masks held")
    s.add_argument("model", type=Path)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--finetune-epochs", type=EPOCHS, default=0,
                   help="fine-tuning with the masks held (methods that prune while training: their training)")
    s.add_argument("--lr", type=POSITIVE, default=1e-3)
    add_data(s)
    add_force(s)
    add_config_flag(s)
    add_method_options(s, ("sparsify",), "magnitude", taken={"seed"})
    s.set_defaults(fn=run)


def run(a) -> int:
    from edgeprune.model_io import load_model, save_model
    from edgeprune.sparsify import sparsify
    from edgeprune.surgery.plan import PrunePlan
    from edgeprune.training import TrainConfig, evaluate

    config = method_config(a, ("sparsify",), "magnitude", shared={"seed": a.seed})
    model, info = load_model(a.model, finite=True)
    check_out(a, a.model)
    t = task(a)
    before = evaluate(model, t.test)
    r = sparsify(model, config, task=t, finetune=TrainConfig(epochs=a.finetune_epochs, lr=a.lr, seed=a.seed))
    report = {**{k: v for k, v in r.details.items() if k != "method"},
              "accuracy": {"before": before, "after": evaluate(r.model, t.test)}}
    parent_plan = Path(a.model) / "plan.json"
    plan = PrunePlan.load(parent_plan) if parent_plan.exists() else None
    save_model(r.model, a.out, info["arch"], info.get("kwargs"), plan=plan, overwrite=a.force,
               meta={"sparsity": report["sparsity"], "method": config.to_dict(), "accuracy": report["accuracy"],
                     "parent": str(a.model)})
    if a.json:
        print(json.dumps(report))
    else:
        st = report["storage_int8_bytes"]
        print(f"sparsity {report['sparsity']:.4f}; test accuracy {before:.4f} -> {report['accuracy']['after']:.4f}")
        print(f"int8 weight storage: dense {st['dense']} B, bitmask {st['bitmask']} B, CSR {st['csr']} B, "
              f"best per layer {st['best_per_layer']} B; saved to {a.out}")
    return 0
