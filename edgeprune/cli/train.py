"""`edgeprune train`: train a zoo model, optionally with a training-time method (`--method`,
any registered with verb "train"), which ends with its own prune; the pruned model is then
recovered like every pruned model (`--recover`)."""
from __future__ import annotations

import json
from pathlib import Path

from edgeprune.cli.common import EPOCHS, POSITIVE, add_data, add_force, add_recovery, check_out, recovery_config, task
from edgeprune.cli.options import add_config_flag, add_method_options, method_config


def add(sub) -> None:
    s = sub.add_parser("train", help="train a zoo model, optionally pruning while it trains (--method)")
    s.add_argument("--model", default="har_cnn", help="zoo architecture (edgeprune.zoo.list_models())")
    s.add_argument("--epochs", type=EPOCHS, default=10)
    s.add_argument("--lr", type=POSITIVE, default=2e-3)
    s.add_argument("--out", type=Path, required=True)
    add_recovery(s, default="finetune", epochs=4, lr=False)  # after a method's prune
    add_data(s)
    add_force(s)
    add_config_flag(s)
    add_method_options(s, ("train",), None, taken={"seed", "lr", "calibration"}, method_aliases=("--regularizer",))
    s.set_defaults(fn=run)


def run(a) -> int:
    import torch

    from edgeprune.methods.while_training import prune_while_training
    from edgeprune.model_io import save_model
    from edgeprune.recovery import recover
    from edgeprune.training import TrainConfig, evaluate, train
    from edgeprune.zoo import create_model

    config = method_config(a, ("train",), None, shared={"seed": a.seed})
    check_out(a)
    t = task(a)
    kwargs = {"num_classes": t.num_classes}
    model = create_model(a.model, **kwargs)
    cfg = TrainConfig(epochs=a.epochs, lr=a.lr, seed=a.seed)
    details, plan = {}, None
    if config is None:
        train(model, t.train, t.val, cfg)
    else:
        result = prune_while_training(model, config, task=t, train_config=cfg,
                                      example_inputs=torch.randn(1, *t.input_shape))
        if not result.plan.is_empty:  # the method pruned: recovered like every pruned model
            if not config.trains_after_prune:
                recover(model, result.model, result.plan, t, recovery_config(a, lr=1e-3))
            plan = result.plan
        model, details = result.model, {k: v for k, v in result.details.items() if k != "method"}
        if result.verification is not None and not a.json:
            print(result.verification)
    acc = evaluate(model, t.test)
    meta = {"data": a.data, "test_accuracy": acc, **({"method": config.to_dict()} if config else {}), **details}
    save_model(model, a.out, a.model, kwargs, plan=plan, overwrite=a.force, meta=meta,
               prepared=[config] if config is not None else None)
    if a.json:
        print(json.dumps({"test_accuracy": acc, "out": str(a.out), **details}, default=float))
    else:
        for k, v in details.items():
            print(f"{k}: {v}")
        print(f"test accuracy {acc:.4f}; saved to {a.out}")
    return 0
