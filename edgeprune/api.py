"""Entry points: `prune` (an nn.Module in, a pruned copy out) and its config/result types."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
from torch import nn

from edgeprune.config import PruneMethodConfig, option
from edgeprune.criteria import get_criterion
from edgeprune.engine import PruningSession
from edgeprune.errors import ConfigError
from edgeprune.metrics import ModelStats, measure
from edgeprune.pruning import prune_steps, search_ratio, warn_repairs
from edgeprune.registry import register_method
from edgeprune.selection import expand_ignore
from edgeprune.surgery.plan import PrunePlan
from edgeprune.verify import VerifyReport


@register_method("criterion")
@dataclass(frozen=True)
class PruneConfig(PruneMethodConfig):
    """Channels ranked by a criterion and removed per group (or by one global ranking): the default method."""

    criterion: str = option("l1", "how channels are ranked", registry="criterion")
    prune_ratio: float = option(0.5, "fraction of each group's channels removed", low=0, high=1, high_open=True,
                                aliases=("--ratio",))
    keep_macs: float | None = option(None, "fraction of the model's MACs kept (instead of --prune-ratio)",
                                     low=0, high=1, low_open=True)
    keep_params: float | None = option(None, "fraction of the model's parameters kept", low=0, high=1, low_open=True)
    scope: str = option("local", "local: the same ratio in every group; global: one ranking for all",
                        choices=("local", "global"))
    round_to: int = option(1, "kept channels a multiple of this (SIMD width on microcontrollers)", low=1)
    min_channels: int = option(1, "channels kept at least, per group", low=1)
    ignore: tuple[str, ...] = option((), "modules whose output channels are kept (names, or re:regex)")
    layer_ratios: dict[str, float] = option({}, "group name / re:regex -> ratio", cli=False)
    steps: int = option(1, "iterative pruning: steps, each re-scored on the model pruned so far", low=1, high=100)
    prune_outputs: bool = option(False, "let the model's outputs shrink too", cli=False)
    strict: bool = option(True, "an unknown op that costs prunable channels raises", cli=False)
    verify: bool = option(True, "compare the pruned model with the masked original", cli=False)
    check_dtype: str = option("float64", "precision of the checks (float32: ~2x faster, 1e-4 tolerance)",
                              choices=("float64", "float32"), cli=False)
    seed: int = option(0, "seed (random criterion, sampling)", low=0)

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
        super().__post_init__()


@dataclass
class PruneResult:
    """What every verb returns (`prune`, `sparsify`, `search`, `prune_while_training`): the new
    model (a copy; the input model is left as it was), the plan of what was removed (empty for
    masks), figures before and after (when example inputs were given), the verification,
    masks (unstructured methods), details of the method, and accuracies where a workflow
    measured them. Prints as a before/after table; `to_dict()` for JSON."""

    model: nn.Module
    plan: PrunePlan
    before: ModelStats | None
    after: ModelStats | None
    verification: VerifyReport | None
    tracer: str
    masks: Any = None  # edgeprune.sparse.SparseMasks, for unstructured methods
    details: dict = field(default_factory=dict)
    accuracy: dict = field(default_factory=dict)

    def table(self) -> str:
        from edgeprune.report_table import before_after_table
        if self.before is None or self.after is None:
            return ", ".join(f"{k}: {v}" for k, v in self.details.items())
        return before_after_table(self.before, self.after)

    def __str__(self) -> str:
        return self.table() + (f"\n{self.verification}" if self.verification else "")

    def to_dict(self) -> dict:
        return {"before": self.before.to_dict() if self.before else None,
                "after": self.after.to_dict() if self.after else None,
                "verification_error": self.verification.max_abs_error if self.verification else None,
                "verified": self.verification.ok if self.verification else None,
                "removed_channels": {g["name"]: g["removed"] for g in self.plan.groups},
                "sparsity": self.masks.sparsity() if self.masks is not None else None,
                "details": self.details, "accuracy": self.accuracy}


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
    if not isinstance(config, PruneConfig):
        if not isinstance(config, PruneMethodConfig):
            raise ConfigError(f"prune takes a structured method's config, got {type(config).__name__} "
                              "(unstructured methods: edgeprune.sparsify; width searches: edgeprune.search)")
        return config.prune(model, example_inputs=example_inputs, data=None if data is None else list(data))
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
    plan.meta.update({"config": {k: v for k, v in config.to_dict()["options"].items() if k != "layer_ratios"},
                      "tracer": step.graph.tracer})
    model.train(was_training)
    pruned.train(was_training)
    return PruneResult(pruned, plan, before, after, report, step.graph.tracer)
