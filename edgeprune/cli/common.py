"""What every command shares: argparse types that say what a bad number must be, the data and
output options, and loading a task or a model folder."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch


class UsageError(Exception):
    """A command-line value argparse rejected (reported like every other bad input)."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print usage and exit; we report it our way
        raise UsageError(f"{message}\nhelp: {self.prog} --help")


def number(kind: type, low: float | None = None, high: float | None = None, low_open: bool = False,
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


COUNT = number(int, 1)           # 1, 2, ...
EPOCHS = number(int, 0, 100_000)
SEED = number(int, 0, 2 ** 32 - 1)
RATIO = number(float, 0, 1, high_open=True)                # fraction removed: [0, 1)
KEEP = number(float, 0, 1, low_open=True)                  # fraction kept: (0, 1]
POSITIVE = number(float, 0, low_open=True)
NONNEG = number(float, 0)


def add_force(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="replace an earlier edgeprune output in --out (a folder "
                   "holding anything edgeprune did not write is never replaced)")


def add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="hapt", choices=["hapt", "hapt12", "mnist", "fashion_mnist", "cifar10"],
                   help="hapt (shipped), hapt12, mnist, fashion_mnist or cifar10")
    p.add_argument("--npz", help="local .npz copy of an image dataset (instead of torchvision)")
    p.add_argument("--root", default="~/.cache/edgeprune", help="torchvision dataset folder")
    p.add_argument("--download", action="store_true", help="let torchvision download the dataset")
    p.add_argument("--batch-size", type=COUNT, default=64)
    p.add_argument("--seed", type=SEED, default=0)


def add_recovery(p: argparse.ArgumentParser, default: str = "finetune", epochs: int = 4, lr: bool = True) -> None:
    """--recover and what it needs (every command that prunes offers the same recoveries);
    `lr=False` where the command's own --lr means something else (train)."""
    from edgeprune.registry import RECOVERIES
    names = RECOVERIES.names()
    p.add_argument("--recover", default=default, choices=names + [n.replace("_", "-") for n in names if "_" in n],
                   help="how accuracy comes back: " + "; ".join(f"{e.name}: {e.summary}" for e in RECOVERIES.entries()))
    p.add_argument("--distill", action="store_true", help="same as --recover distill")
    p.add_argument("--finetune-epochs", type=EPOCHS, default=epochs)
    if lr:
        p.add_argument("--lr", type=POSITIVE, default=1e-3)
    p.add_argument("--calibration", type=COUNT, default=1000, help="calibration samples (training data)")


def recovery_config(a, lr: float | None = None, **kw):
    from edgeprune.recovery import RecoveryConfig
    return RecoveryConfig(method="distill" if a.distill else a.recover, epochs=a.finetune_epochs,
                          lr=lr if lr is not None else a.lr, calibration=a.calibration, seed=a.seed, **kw)


def task(a):
    from edgeprune.data import load_task
    return load_task(a.data, a.batch_size, a.npz, a.root, a.download, seed=a.seed)


def check_out(a, *inputs) -> None:
    """Refuse a --out edgeprune must not write to before any work starts (edgeprune.outputs)."""
    from edgeprune.outputs import check_output
    check_output(a.out, force=a.force, inputs=inputs)


def example(model_dir: Path, finite: bool = False):
    """(model, info, one zero-batch random input of its architecture) from a model folder."""
    from edgeprune.model_io import load_model
    from edgeprune.zoo import MODELS
    model, info = load_model(model_dir, finite=finite)
    return model, info, torch.randn(1, *MODELS[info["arch"]].input_shape)
