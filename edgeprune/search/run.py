"""Compatibility: `search_prune(model, task, "amc", target, key, finetune, SearchOptions(...))`,
the earlier front door of the width searches, now a thin wrapper over the registered configs
and `edgeprune.search` (edgeprune.search.job)."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from edgeprune.api import PruneResult
from edgeprune.registry import METHODS
from edgeprune.search.job import search
from edgeprune.training import TrainConfig, evaluate, train


@dataclass(frozen=True)
class SearchOptions:
    episodes: int = 300  # AMC
    warmup: int = 100  # AMC
    cycles: int = 10  # ABC
    fitness_batches: int = 20  # ABC: training batches per candidate (the paper trains 2 epochs)
    search_epochs: int = 3  # DSA: epochs of joint training while allocating
    calibration: int = 500  # samples for AMC's least-squares refit
    val_samples: int = 2000  # held-out samples that score candidates
    progress: bool = True


def search_prune(model: nn.Module, task, method: str, target: float, key: str = "macs",
                 finetune: TrainConfig | None = None, options: SearchOptions | None = None,
                 seed: int = 0) -> tuple[PruneResult, dict, dict]:
    """Returns (verified result, accuracies {before, searched, recovered}, search details)."""
    o = options or SearchOptions()
    cls = METHODS.get(method, verb="search").obj
    given = {"episodes": o.episodes, "warmup": o.warmup, "calibration": o.calibration, "cycles": o.cycles,
             "fitness_batches": o.fitness_batches, "search_epochs": o.search_epochs}
    fields = set(cls.__dataclass_fields__)
    config = cls(**{k: v for k, v in given.items() if k in fields}, seed=seed, val_samples=o.val_samples,
                 progress=o.progress, **({"keep_macs": target} if key == "macs" else {"keep_params": target}))
    result = search(model, config, task=task, finetune=finetune)
    acc = dict(result.accuracy)
    if finetune is not None and finetune.epochs > 0:
        train(result.model, task.train, task.val, finetune)
        acc["recovered"] = evaluate(result.model, task.test)
    return result, acc, result.details


__all__ = ["SearchOptions", "search_prune"]
