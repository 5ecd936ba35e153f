"""Training and fine-tuning: cosine schedule, seeds, progress bar, validation, and optional
knowledge distillation from a teacher (Hinton et al. 2015: KL between temperature-softened
outputs, mixed with the label loss)."""
from __future__ import annotations

import copy
import math
import sys
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from edgeprune.data.tasks import take_samples  # noqa: F401 (its old home)
from edgeprune.errors import ConfigError
from edgeprune.hooks import TrainingHooks


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    lr: float = 2e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # or "sgd" (momentum 0.9, nesterov)
    seed: int = 0
    distill_alpha: float = 0.0  # weight of the distillation loss (0 = labels only)
    temperature: float = 4.0
    keep_best: bool = True  # restore the weights with the best validation accuracy
    progress: bool = True

    def __post_init__(self):
        if self.epochs < 0 or self.lr <= 0:
            raise ConfigError("epochs must be >= 0 and lr > 0")
        if not 0.0 <= self.distill_alpha <= 1.0:
            raise ConfigError("distill_alpha must be in [0, 1]")
        if self.optimizer not in ("adamw", "sgd"):
            raise ConfigError("optimizer must be 'adamw' or 'sgd'")


@dataclass
class TrainHistory:
    train_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    best_val_accuracy: float | None = None


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable) -> float:
    """Top-1 accuracy over `loader` (batches of (x, y))."""
    model.eval()
    correct = total = 0
    for x, y in loader:
        correct += (model(x).argmax(1) == y).sum().item()
        total += y.numel()
    return correct / max(total, 1)


def distillation_loss(student_logits, teacher_logits, labels, alpha: float, temperature: float):
    hard = F.cross_entropy(student_logits, labels)
    if alpha == 0.0:
        return hard
    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                    reduction="batchmean", log_target=True) * t * t
    return (1 - alpha) * hard + alpha * soft


def train(model: nn.Module, train_loader, val_loader=None, config: TrainConfig | None = None,
          teacher: nn.Module | None = None, on_step: Callable[[nn.Module, int], None] | None = None,
          penalty: Callable[[nn.Module], torch.Tensor] | None = None,
          on_epoch: Callable[[nn.Module, int], None] | None = None,
          before_forward: Callable[[nn.Module, int], None] | None = None,
          after_backward: Callable[[nn.Module], None] | None = None,
          methods: Sequence[TrainingHooks] = ()) -> TrainHistory:
    """Train `model` in place. With `teacher` and distill_alpha > 0, distil from it.
    `methods` act during training through the hooks of edgeprune.hooks.TrainingHooks (loss
    terms, masks, zeroing, gates). The callables are the same hooks one at a time:
    `penalty(model)` is added to the loss; `on_step(model, step)` runs after every optimiser
    step (1-based); `on_epoch(model, epoch)` after every epoch; `before_forward(model, step)` /
    `after_backward(model)` bracket each step's forward and backward."""
    hooks = list(methods) + [_Callables(on_step, penalty, on_epoch, before_forward, after_backward)]
    config = config or TrainConfig()
    torch.manual_seed(config.seed)
    if config.distill_alpha > 0 and teacher is None:
        raise ConfigError("distill_alpha > 0 needs a teacher model")
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)
    steps = max(1, config.epochs * len(train_loader))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    hist = TrainHistory()
    best_state, best = None, -1.0
    if teacher is not None:
        teacher.eval()
    show = config.progress and sys.stderr.isatty()
    global_step = 0
    for epoch in range(config.epochs):
        model.train()
        total, n = 0.0, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False, disable=not show)
        for x, y in bar:
            for h in hooks:
                h.before_forward(model, global_step)
            out = model(x)
            if teacher is not None and config.distill_alpha > 0:
                with torch.no_grad():
                    t_out = teacher(x)
                loss = distillation_loss(out, t_out, y, config.distill_alpha, config.temperature)
            else:
                loss = F.cross_entropy(out, y)
            for h in hooks:
                loss = h.regularize(loss, model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for h in hooks:
                h.after_backward(model, global_step)
            opt.step()
            sched.step()
            for h in hooks:
                h.after_step(model, global_step)
            global_step += 1
            total += loss.item() * y.numel()
            n += y.numel()
            bar.set_postfix(loss=f"{total / n:.4f}")
        hist.train_loss.append(total / max(n, 1))
        for h in hooks:
            h.after_epoch(model, epoch)
        if val_loader is not None:
            acc = evaluate(model, val_loader)
            hist.val_accuracy.append(acc)
            if acc > best:
                best, best_state = acc, copy.deepcopy(model.state_dict())
            if config.progress:
                print(f"  epoch {epoch + 1}/{config.epochs}: loss {hist.train_loss[-1]:.4f}, val acc {acc:.4f}",
                      file=sys.stderr, flush=True)
    if val_loader is not None and best_state is not None:
        hist.best_val_accuracy = best
        if config.keep_best:
            model.load_state_dict(best_state)
    model.eval()
    return hist


class _Callables(TrainingHooks):
    """The `train` keyword callables as hooks (their 1-based `on_step` count kept)."""

    def __init__(self, on_step, penalty, on_epoch, before_forward, after_backward):
        self.on_step, self.penalty, self.on_epoch = on_step, penalty, on_epoch
        self.before, self.after = before_forward, after_backward

    def regularize(self, loss, model):
        return loss + self.penalty(model) if self.penalty is not None else loss

    def before_forward(self, model, step):
        if self.before is not None:
            self.before(model, step)

    def after_backward(self, model, step):
        if self.after is not None:
            self.after(model)

    def after_step(self, model, step):
        if self.on_step is not None:
            self.on_step(model, step + 1)

    def after_epoch(self, model, epoch):
        if self.on_epoch is not None:
            self.on_epoch(model, epoch)
