"""`edgeprune demo`: the main job on the shipped HAPT data (edgeprune.workflow.demo)."""
from __future__ import annotations

import json
from pathlib import Path

from edgeprune.cli.common import (
    EPOCHS,
    KEEP,
    SEED,
    add_force,
)


def cmd_demo(a) -> int:
    from edgeprune.workflow import demo

    res = demo(a.out, force=a.force, epochs=a.epochs, finetune_epochs=a.finetune_epochs, keep_macs=a.keep_macs,
               criterion=a.criterion, seed=a.seed)
    if a.json:
        print(json.dumps(res))
    return 0


def add(sub) -> None:
    s = sub.add_parser("demo", help="train on HAPT, prune to 1/4 of the MACs, fine-tune, verify, export")
    s.add_argument("--out", type=Path, default=Path("runs/demo"))
    s.add_argument("--epochs", type=EPOCHS, default=8)
    s.add_argument("--finetune-epochs", type=EPOCHS, default=4)
    s.add_argument("--keep-macs", type=KEEP, default=0.25)
    s.add_argument("--criterion", default="l1")
    s.add_argument("--seed", type=SEED, default=0)
    add_force(s)
    s.set_defaults(fn=cmd_demo)
