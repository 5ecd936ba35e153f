"""Save and load pruned models without pickle: plan JSON + safetensors weights."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from edgeprune.surgery.apply import apply_plan
from edgeprune.surgery.plan import PrunePlan


def save_pruned(model: nn.Module, plan: PrunePlan, directory: str | os.PathLike) -> Path:
    """Write `plan.json` and `weights.safetensors` to `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".safetensors")
    os.close(fd)
    try:
        save_file(state, tmp, metadata={"edgeprune": "1"})
        os.replace(tmp, directory / "weights.safetensors")
    except BaseException:
        os.unlink(tmp)
        raise
    plan.save(directory / "plan.json")
    return directory


def load_pruned(model: nn.Module, directory: str | os.PathLike) -> nn.Module:
    """Rebuild a pruned model: apply the saved plan to `model` (a fresh instance of the same
    architecture), then load the saved weights (safetensors: no code is unpickled)."""
    directory = Path(directory)
    plan = PrunePlan.from_dict(json.loads((directory / "plan.json").read_text()))
    apply_plan(model, plan)
    model.load_state_dict(load_file(directory / "weights.safetensors"))
    return model
