"""ABCPruner: channel pruning by artificial bee colony (Lin, Ji, Zhang, Zhang, Wu, Huang, Tian,
IJCAI 2020, arXiv 2001.08565).

A food source is a structure: the kept fraction of every channel group, on the grid
{10 %, ..., max_preserve x 10 %}. Its fitness is the accuracy of the pruned network (channels
picked at random and weights inherited, the official `random_pretrain` rule: build the
ChannelSpace with criterion="random") after a short training (`fitness(model)` does it).
Each cycle, employed bees perturb `honeychange_num` positions of every source towards or away
from another source (x' = x + r (x - x_k), r in [-1, 1]) and keep the change if fitter;
onlooker bees do the same on sources drawn in proportion to fitness; a source not improved
for `food_limit` cycles is abandoned for a random one (scout). Defaults from the official
code: 10 food sources, limit 5, 2 positions changed, 10 cycles, max_preserve 9.

Addition (ours, the paper has no explicit budget): with `target`, a structure over the
budget is shrunk towards the lower bound by one common factor until it fits (cost model of
ChannelSpace), so every candidate the colony evaluates meets the budget."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from edgeprune.config import option
from edgeprune.errors import ConfigError
from edgeprune.registry import register_method
from edgeprune.search.job import WidthSearchConfig
from edgeprune.search.space import ChannelSpace, check_reachable, scale_to_budget


@dataclass(frozen=True)
class ABCConfig:
    target: float | None = 0.5  # kept fraction of `key`, or None (no budget, as in the paper)
    key: str = "macs"
    food_number: int = 10
    food_limit: int = 5
    honeychange_num: int = 2
    max_cycle: int = 10
    max_preserve: int = 9
    seed: int = 0
    progress: bool = True

    def __post_init__(self):
        if not 1 <= self.max_preserve <= 10:
            raise ConfigError("max_preserve counts tenths of the channels kept: 1-10")
        if self.food_number < 2:
            raise ConfigError("food_number must be >= 2 (bees compare sources)")


@dataclass
class ABCResult:
    keep: list[float]
    fitness: float
    model: nn.Module  # the best structure's trained network (warm start for fine-tuning)
    history: list[dict] = field(default_factory=list)  # every evaluated structure


class ABCPruner:
    """`ABCPruner(space, fitness, ABCConfig(target=0.5)).search()` -> ABCResult. `fitness(model)`
    trains the pruned candidate briefly (in place) and returns its held-out accuracy."""

    def __init__(self, space: ChannelSpace, fitness: Callable[[nn.Module], float], config: ABCConfig | None = None):
        self.space, self.fitness_fn, self.cfg = space, fitness, config or ABCConfig()
        if self.cfg.target is not None:
            check_reachable(space, self.cfg.key, self.cfg.target, 0.1)
        self.rng = np.random.default_rng(self.cfg.seed)
        self.history: list[dict] = []
        self.best: tuple[float, list[float], nn.Module] | None = None

    def _keep(self, code: np.ndarray) -> list[float]:
        keep = (code / 10.0).tolist()
        if self.cfg.target is not None:
            keep = scale_to_budget(self.space, keep, self.cfg.key, self.cfg.target, lower=0.1)
        return keep

    def _evaluate(self, code: np.ndarray) -> float:
        keep = self._keep(code)
        model = self.space.prune(keep)
        fit = float(self.fitness_fn(model))
        cost = self.space.cost(self.cfg.key)(self.space.fractions(keep)) / self.space.cost(self.cfg.key).c0
        self.history.append({"keep": keep, "fitness": fit, "cost": cost})
        if self.best is None or fit > self.best[0]:
            self.best = (fit, keep, model)
        return fit

    def _random(self) -> np.ndarray:
        return self.rng.integers(1, self.cfg.max_preserve + 1, len(self.space))

    def _neighbour(self, codes: list[np.ndarray], i: int) -> np.ndarray:
        k = self.rng.choice([j for j in range(len(codes)) if j != i])
        new = codes[i].copy()
        for pos in self.rng.choice(len(new), min(self.cfg.honeychange_num, len(new)), replace=False):
            r = self.rng.uniform(-1, 1)
            new[pos] = int(round(new[pos] + r * (new[pos] - codes[k][pos])))
            if new[pos] == codes[i][pos]:  # equal sources would never move: step to a random neighbour
                new[pos] += self.rng.choice([-1, 1])
        return np.clip(new, 1, self.cfg.max_preserve)

    def search(self) -> ABCResult:
        cfg = self.cfg
        codes = [self._random() for _ in range(cfg.food_number)]
        fits = [self._evaluate(c) for c in codes]
        trials = [0] * cfg.food_number

        def try_improve(i: int) -> None:
            cand = self._neighbour(codes, i)
            f = self._evaluate(cand)
            if f > fits[i]:
                codes[i], fits[i], trials[i] = cand, f, 0
            else:
                trials[i] += 1

        for _ in tqdm(range(cfg.max_cycle), desc="ABC cycles", disable=not cfg.progress, leave=False):
            for i in range(cfg.food_number):  # employed bees
                try_improve(i)
            p = np.asarray(fits) + 1e-12
            for _ in range(cfg.food_number):  # onlooker bees
                try_improve(int(self.rng.choice(cfg.food_number, p=p / p.sum())))
            for i in range(cfg.food_number):  # scouts
                if trials[i] > cfg.food_limit:
                    codes[i], trials[i] = self._random(), 0
                    fits[i] = self._evaluate(codes[i])
        fit, keep, model = self.best
        return ABCResult(keep, fit, model, self.history)


@register_method("abc")
@dataclass(frozen=True)
class ABCSearchConfig(WidthSearchConfig):
    """ABCPruner: an artificial bee colony searches the widths, candidates briefly trained (Lin et al., IJCAI 2020)."""

    cycles: int = option(10, "bee-colony cycles", low=1)
    fitness_batches: int = option(20, "training batches per candidate before it is scored (the paper: 2 epochs)", low=1)

    def search(self, model: nn.Module, task, finetune=None):
        import itertools

        from edgeprune.data import take_samples
        from edgeprune.training import evaluate
        key, target = self.budget()
        val = take_samples(task.val, self.val_samples)
        space = ChannelSpace(model, torch.randn(1, *task.input_shape), "random")
        batches = list(itertools.islice(itertools.cycle(task.train), self.fitness_batches))

        def fitness(m: nn.Module) -> float:
            opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
            m.train()
            for x, y in batches:
                opt.zero_grad()
                nn.functional.cross_entropy(m(x), y).backward()
                opt.step()
            return evaluate(m, val)

        cfg = ABCConfig(target=target, key=key, max_cycle=self.cycles, seed=self.seed, progress=self.progress)
        found = ABCPruner(space, fitness, cfg).search()
        # the best structure's briefly trained weights warm-start fine-tuning (the paper's rule)
        removed = {g.index: space.order[g.index][: len(g) - u]
                   for g, u in zip(space.groups, space.kept_units(found.keep))}
        result = space.finalize(removed=removed, check=True)
        result.model.load_state_dict(found.model.state_dict())
        result.details = {"keep": found.keep, "evaluated": len(found.history), "best_fitness": found.fitness}
        return result
