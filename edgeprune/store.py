"""A model on disk, safe to load: `model.json` (zoo name and arguments), `plan.json` (when
pruned) and `weights.safetensors`. Loading builds the architecture from the zoo, replays the
plan and loads tensors; nothing is unpickled."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from edgeprune.errors import ConfigError
from edgeprune.surgery.apply import apply_plan
from edgeprune.surgery.plan import PrunePlan
from edgeprune.zoo import create_model


def save_model(model: nn.Module, directory: str | Path, arch: str, arch_kwargs: dict | None = None,
               plan: PrunePlan | None = None, meta: dict | None = None) -> Path:
    """Write the model directory atomically (a temporary directory renamed into place)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    try:
        (tmp / "model.json").write_text(json.dumps({"arch": arch, "kwargs": arch_kwargs or {},
                                                    "meta": meta or {}}, indent=1))
        if plan is not None:
            plan.save(tmp / "plan.json")
        state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        save_file(state, tmp / "weights.safetensors")
        if directory.exists():
            shutil.rmtree(directory)
        tmp.rename(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def load_model(directory: str | Path) -> tuple[nn.Module, dict]:
    """Return (model in eval mode, the model.json record)."""
    directory = Path(directory)
    info_path = directory / "model.json"
    if not info_path.exists():
        raise ConfigError(f"{directory} is not an edgeprune model directory (no model.json).\n"
                          "help: create one with `edgeprune train` or edgeprune.store.save_model")
    info = json.loads(info_path.read_text())
    kwargs = dict(info.get("kwargs", {}))
    fbs = kwargs.pop("fbs_density", None)
    model = create_model(info["arch"], **kwargs)
    if fbs is not None:  # dynamic channel gates wrap the convolutions
        from edgeprune.methods.fbs import add_fbs
        add_fbs(model, fbs)
    for name in info.get("meta", {}).get("removed_blocks", []):  # layer pruning
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, nn.Identity())
    if (directory / "plan.json").exists():
        apply_plan(model, PrunePlan.load(directory / "plan.json"))
    model.load_state_dict(load_file(directory / "weights.safetensors"))
    return model.eval(), info
