"""The part every width search shares as a method (`edgeprune.search`): the budget, stated
as the kept fraction of MACs or parameters, a seed, and the held-out samples that score
candidates; and the `search` verb that runs any registered search config on a task."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgeprune.api import PruneResult
from edgeprune.config import SearchConfig, option
from edgeprune.errors import ConfigError
from edgeprune.training import TrainConfig, evaluate


@dataclass(frozen=True)
class WidthSearchConfig(SearchConfig):
    """Base of the width searches' configs (not registered itself)."""

    keep_macs: float | None = option(None, "fraction of the MACs kept (default 0.5 when no budget is given)",
                                     low=0, high=1, low_open=True)
    keep_params: float | None = option(None, "fraction of the parameters kept", low=0, high=1, low_open=True)
    seed: int = option(0, "seed", low=0)
    val_samples: int = option(2000, "held-out samples that score candidates", low=1)
    progress: bool = option(True, "progress bar", cli=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.keep_macs is not None and self.keep_params is not None:
            raise ConfigError(f"{self.method}: give keep_macs or keep_params, not both")

    def budget(self) -> tuple[str, float]:
        """("macs" or "params", the kept fraction)."""
        if self.keep_params is not None:
            return "params", self.keep_params
        return "macs", self.keep_macs if self.keep_macs is not None else 0.5

    def search(self, model: nn.Module, task, finetune: TrainConfig | None) -> PruneResult:
        raise NotImplementedError


def search(model: nn.Module, config: WidthSearchConfig, *, task, finetune: TrainConfig | None = None) -> PruneResult:
    """Search per-layer widths for `config`'s budget on `task` (validation data scores the
    candidates), remove the channels (verified) and return the result, with test accuracy
    before and right after in `result.accuracy` and the search's record in `result.details`.
    `finetune` is the training some searches run while they search (DSA)."""
    if not isinstance(config, WidthSearchConfig):
        raise ConfigError(f"search takes a width search's config, got {type(config).__name__}")
    torch.manual_seed(config.seed)
    model = model.eval()
    before = evaluate(model, task.test)
    result = config.search(model, task, finetune)
    result.details = {"method": config.method, **result.details}
    result.accuracy = {"before": before, "searched": evaluate(result.model, task.test)}
    return result


__all__ = ["WidthSearchConfig", "search"]
