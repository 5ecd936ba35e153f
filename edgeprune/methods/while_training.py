"""`prune_while_training(model, config, task=..., train_config=...)`: the verb of every method
that acts during training (registered with verb "train"): build its hooks, let it change the
model's structure (`prepare`), train with the hooks, finalize (usually a physical, verified
prune). Methods with a training loop of their own give `run` instead."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from edgeprune.api import PruneResult
from edgeprune.config import TrainingMethodConfig
from edgeprune.errors import ConfigError
from edgeprune.training import TrainConfig, train


def prune_while_training(model: nn.Module, config: TrainingMethodConfig, *, task, train_config: TrainConfig,
                         example_inputs: Any = None) -> PruneResult:
    """Train `model` in place with `config`'s method; returns the final model (pruned where the
    method prunes) as a PruneResult. `example_inputs` default: one random input of the task."""
    if not isinstance(config, TrainingMethodConfig):
        raise ConfigError(f"prune_while_training takes a training-time method's config, got {type(config).__name__}")
    x = example_inputs if example_inputs is not None else torch.randn(1, *task.input_shape)
    if hasattr(config, "run"):
        result = config.run(model, task, train_config, x)
    else:
        hooks = config.build(model, x, train_config.epochs * len(task.train))
        hooks.prepare(model)
        cfg = replace(train_config, keep_best=train_config.keep_best and config.keep_best)
        train(model, task.train, task.val, cfg, methods=[hooks])
        result = config.finalize(hooks, model.eval(), x, task)
    result.details = {"method": config.method, **result.details}
    return result


__all__ = ["prune_while_training"]
