"""Save and load pruned models of any architecture without pickle: plan JSON + safetensors
weights, written in one step and read as untrusted files (see edgeprune.store for folders
that also name a zoo architecture)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors.torch import save_file
from torch import nn

from edgeprune.errors import ConfigError, PlanMismatchError
from edgeprune.outputs import writing
from edgeprune.surgery.apply import apply_plan
from edgeprune.surgery.plan import PrunePlan


def save_pruned(model: nn.Module, plan: PrunePlan, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write `plan.json` and `weights.safetensors` to a new folder `directory` (replacing an
    earlier edgeprune folder only with `overwrite=True`)."""
    from edgeprune.weights_io import state_tensors

    with writing(directory, force=overwrite, kind="pruned") as tmp:
        save_file(state_tensors(model), tmp / "weights.safetensors", metadata={"edgeprune": "1"})
        (tmp / "plan.json").write_text(json.dumps(plan.to_dict(), indent=1))
    return Path(directory)


def load_pruned(model: nn.Module, directory: str | os.PathLike) -> nn.Module:
    """Rebuild a pruned model: apply the saved plan to `model` (a fresh instance of the same
    architecture), then load the saved weights (safetensors: no code is unpickled)."""
    from edgeprune.weights_io import load_weights

    directory = Path(directory)
    try:
        plan = PrunePlan.load(directory / "plan.json")
        apply_plan(model, plan)
    except PlanMismatchError as exc:
        raise ConfigError(f"{directory / 'plan.json'}: {str(exc).splitlines()[0]}") from None
    load_weights(model, directory / "weights.safetensors")
    return model
