"""Entry points: `prune` (an nn.Module in, a pruned copy out) and its config/result types."""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import torch
from torch import nn

from edgeprune.criteria import get_criterion
from edgeprune.engine import PruningSession
from edgeprune.errors import ConfigError
from edgeprune.metrics import ModelStats, measure
from edgeprune.pruning import prune_steps, search_ratio, warn_repairs
from edgeprune.selection import expand_ignore
from edgeprune.surgery.plan import PrunePlan
from edgeprune.verify import VerifyReport


@dataclass(frozen=True)
class PruneConfig:
    """How to prune. `prune_ratio` is the fraction of each group's channels removed; or give a
    whole-model target as the fraction kept: `keep_macs` or `keep_params` (0-1)."""

    criterion: str = "l1"
    prune_ratio: float = 0.5
    keep_macs: float | None = None
    keep_params: float | None = None
    scope: str = "local"  # "local": same ratio in every group; "global": one ranking for all
    round_to: int = 1  # kept channels a multiple of this (SIMD width on microcontrollers)
    min_channels: int = 1  # per group
    ignore: tuple[str, ...] = ()  # module names (or "re:regex") whose output channels are kept
    layer_ratios: dict[str, float] = field(default_factory=dict)  # group name / "re:regex" -> ratio
    steps: int = 1  # iterative pruning: re-score after each step
    prune_outputs: bool = False  # let the model's outputs shrink too (their layers are pruned)
    strict: bool = True  # an unknown op that costs prunable channels raises
    verify: bool = True
    check_dtype: str = "float64"  # "float32": checks ~2x faster, 1e-4 relative tolerance
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.prune_ratio < 1.0:
            raise ConfigError(f"prune_ratio must be in [0, 1), got {self.prune_ratio}")
        for name in ("keep_macs", "keep_params"):
            v = getattr(self, name)
            if v is not None and not 0.0 < v <= 1.0:
                raise ConfigError(f"{name} is the fraction kept and must be in (0, 1], got {v}")
        if self.keep_macs is not None and self.keep_params is not None:
            raise ConfigError("give keep_macs or keep_params, not both")
        if self.scope not in ("local", "global"):
            raise ConfigError(f"scope must be 'local' or 'global', got {self.scope!r}")
        if self.round_to < 1 or self.min_channels < 1 or self.steps < 1:
            raise ConfigError("round_to, min_channels and steps must be >= 1")
        for k, v in self.layer_ratios.items():
            if not 0.0 <= v < 1.0:
                raise ConfigError(f"layer_ratios[{k!r}] must be in [0, 1), got {v}")
        get_criterion(self.criterion)
        if self.check_dtype not in ("float64", "float32"):
            raise ConfigError(f"check_dtype must be 'float64' or 'float32', got {self.check_dtype!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PruneResult:
    model: nn.Module
    plan: PrunePlan
    before: ModelStats
    after: ModelStats
    verification: VerifyReport | None
    tracer: str

    def table(self) -> str:
        from edgeprune.report_table import before_after_table
        return before_after_table(self.before, self.after)

    def __str__(self) -> str:
        return self.table() + (f"\n{self.verification}" if self.verification else "")


def _gradients(model: nn.Module, data: Iterable, loss_fn: Callable, batches: int) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    model.train()
    for i, (x, y) in enumerate(data):
        if i >= batches:
            break
        loss_fn(model(x), y).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    model.eval()
    return grads


def prune(model: nn.Module, config: PruneConfig | None = None, *, example_inputs: Any,
          data: Iterable | None = None, loss_fn: Callable | None = None, data_batches: int = 8,
          measure_latency: bool = False) -> PruneResult:
    """Return a structurally pruned copy of `model` with its plan, before/after figures and
    verification. `example_inputs` is what the model is called with (a tensor, tuple or dict),
    batch size 1 preferred. `data` (batches of (x, y)) and `loss_fn` feed gradient criteria."""
    config = config or PruneConfig()
    torch.manual_seed(config.seed)
    was_training = model.training
    model.eval()
    expand_ignore(model, config.ignore)  # a name the model lacks is refused before any work
    grads: dict[str, torch.Tensor] = {}
    if config.criterion == "taylor":
        if data is None:
            raise ConfigError("criterion 'taylor' needs data=... (batches of (inputs, targets))")
        grads = _gradients(copy.deepcopy(model), data, loss_fn or nn.functional.cross_entropy, data_batches)
    before = measure(model, example_inputs, latency=measure_latency)
    calib = None
    if data is not None:  # a few batches for activation-based criteria
        calib = []
        for batch in data:
            calib.append(batch[0] if isinstance(batch, (tuple, list)) else batch)
            if len(calib) >= data_batches:
                break
    session = PruningSession(model, example_inputs, ignore=config.ignore, strict=config.strict,
                             prune_outputs=config.prune_outputs, data=calib, grads=grads, seed=config.seed)
    target = config.keep_macs if config.keep_macs is not None else config.keep_params
    if target is None:
        step = prune_steps(session, config, config.prune_ratio, check=config.verify)
    else:
        key = "macs" if config.keep_macs is not None else "params"
        step = search_ratio(session, config, key, target, getattr(before, key))
    pruned, plan, blocks = step.model.eval(), step.plan, session.blocks
    report = None
    if config.verify:
        if step.check is not None and config.steps == 1:  # the last check compared every op: reuse it
            c = step.check
            report = VerifyReport.measured(c.max_abs_error, c.output_scale, c.tolerance, step.graph.tracer)
        else:
            report = session.verify(pruned, plan)
    after = measure(pruned, example_inputs, latency=measure_latency)
    if blocks.reasons:
        plan.meta["kept_by_checks"] = blocks.reasons
        warn_repairs(model, blocks)
    plan.meta.update({"config": {k: v for k, v in config.to_dict().items() if k != "layer_ratios"},
                      "tracer": step.graph.tracer})
    model.train(was_training)
    pruned.train(was_training)
    return PruneResult(pruned, plan, before, after, report, step.graph.tracer)
