"""The search methods as one job (the CLI's `prune --method amc|abc|dsa` and the benchmark):
search per-group widths for a budget on a task, remove the channels (verified), fine-tune."""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, replace

import torch
from torch import nn

from edgeprune.api import PruneResult
from edgeprune.errors import ConfigError
from edgeprune.training import TrainConfig, evaluate, take_samples, train

SEARCH_METHODS = ("amc", "abc", "dsa")


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
    from edgeprune.data import calibration_batches
    from edgeprune.recovery import reconstruct
    from edgeprune.search.abc import ABCConfig, ABCPruner
    from edgeprune.search.amc import AMC, AMCConfig
    from edgeprune.search.dsa import DSA, DSAConfig
    from edgeprune.search.space import ChannelSpace

    if method not in SEARCH_METHODS:
        raise ConfigError(f"unknown search method {method!r}; choose one of {SEARCH_METHODS}")
    opts = options or SearchOptions()
    torch.manual_seed(seed)
    model = model.eval()
    example = torch.randn(1, *task.input_shape)
    val = take_samples(task.val, opts.val_samples)
    acc = {"before": evaluate(model, task.test)}
    info: dict = {"method": method}
    if method == "amc":
        space = ChannelSpace(model, example, "l1")
        calib = calibration_batches(task, opts.calibration)
        refit = lambda m, plan: reconstruct(model, m, plan, calib, samples=opts.calibration)
        cfg = AMCConfig(target=target, key=key, episodes=opts.episodes, warmup=opts.warmup, seed=seed,
                        progress=opts.progress)
        found = AMC(space, lambda m: evaluate(m, val), cfg, refit=refit).search()
        result = space.finalize(found.keep)
        reconstruct(model, result.model, result.plan, calib, samples=opts.calibration)
        info.update(keep=found.keep, episodes=len(found.history), best_episode_accuracy=found.accuracy)
    elif method == "abc":
        space = ChannelSpace(model, example, "random")
        batches = list(itertools.islice(itertools.cycle(task.train), opts.fitness_batches))

        def fitness(m: nn.Module) -> float:
            opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
            m.train()
            for x, y in batches:
                opt.zero_grad()
                nn.functional.cross_entropy(m(x), y).backward()
                opt.step()
            return evaluate(m, val)

        cfg = ABCConfig(target=target, key=key, max_cycle=opts.cycles, seed=seed, progress=opts.progress)
        found = ABCPruner(space, fitness, cfg).search()
        # the best structure's briefly trained weights warm-start fine-tuning (the paper's rule)
        removed = {g.index: space.order[g.index][: len(g) - u] for g, u in zip(space.groups, space.kept_units(found.keep))}
        result = space.finalize(removed=removed, check=True)
        result.model.load_state_dict(found.model.state_dict())
        info.update(keep=found.keep, evaluated=len(found.history), best_fitness=found.fitness)
    else:
        work = copy.deepcopy(model)
        space = ChannelSpace(work, example, "l1")
        steps = opts.search_epochs * len(task.train)
        dsa = DSA(work, space, DSAConfig(target=target, key=key, seed=seed), total_steps=steps)
        base = finetune or TrainConfig()
        train(work, task.train, None, replace(base, epochs=opts.search_epochs, keep_best=False, progress=opts.progress),
              on_step=dsa.step)
        result = dsa.finalize()
        info.update(keep=dsa.alpha.tolist())
    acc["searched"] = evaluate(result.model, task.test)
    if finetune is not None and finetune.epochs > 0:
        train(result.model, task.train, task.val, finetune)
        acc["recovered"] = evaluate(result.model, task.test)
    return result, acc, info
