"""Recovery by training: fine-tuning the pruned model on the task, or distilling the unpruned
model into it (Hinton et al. 2015; edgeprune.training mixes the teacher's softened outputs with
the labels)."""
from __future__ import annotations

import copy

from edgeprune.registry import RECOVERIES
from edgeprune.training import TrainConfig, train


@RECOVERIES.register("finetune")
def finetune(original, pruned, plan, task, config, calib) -> None:
    """Fine-tune on the training data (cosine schedule, best validation checkpoint kept)."""
    if config.epochs > 0:
        train(pruned, task.train, task.val, TrainConfig(epochs=config.epochs, lr=config.lr, seed=config.seed))


@RECOVERIES.register("distill")
def distill(original, pruned, plan, task, config, calib) -> None:
    """Fine-tune with the unpruned model as teacher (knowledge distillation)."""
    if config.epochs > 0:
        teacher = copy.deepcopy(original).eval()
        train(pruned, task.train, task.val, TrainConfig(epochs=config.epochs, lr=config.lr, seed=config.seed,
                                                        distill_alpha=config.distill_alpha), teacher=teacher)
