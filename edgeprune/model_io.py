"""Models on disk, safe to load (the one place that reads and writes them):

- a zoo model folder: `model.json` (zoo name and arguments, and the training-time methods
  whose structural changes must be replayed, e.g. FBS gates), `plan.json` (when pruned) and
  `weights.safetensors` (`save_model` / `load_model`);
- any architecture: `plan.json` + `weights.safetensors`, replayed on a fresh instance the user
  builds (`save_pruned` / `load_pruned`).

Loading builds the architecture, replays the plan and loads tensors; nothing is unpickled, and
every file is treated as untrusted: a damaged or hostile folder gives one ConfigError naming
the file, never a traceback or a huge allocation. Writing goes through edgeprune.outputs
(atomic, never over foreign files)."""
from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from edgeprune.config import config_from_dict
from edgeprune.errors import ConfigError, PlanMismatchError
from edgeprune.outputs import writing
from edgeprune.safe_json import read_json
from edgeprune.surgery.apply import apply_plan
from edgeprune.surgery.plan import PrunePlan
from edgeprune.weights_io import (  # noqa: F401
    MAX_WEIGHTS_BYTES,
    load_weights,
    nonfinite_tensors,
    state_tensors,
)
from edgeprune.zoo.registry import MODELS, check_model_args


def save_model(model: nn.Module, directory: str | os.PathLike, arch: str, arch_kwargs: dict | None = None,
               plan: PrunePlan | None = None, meta: dict | None = None, *, overwrite: bool = False,
               extra: dict[str, str | bytes] | None = None, prepared: list | None = None) -> Path:
    """Write a model folder in one step. An existing folder is replaced only with
    `overwrite=True` and only if it holds nothing edgeprune did not write (see
    edgeprune.outputs); `extra` adds files by name (e.g. widths.svg); `prepared`: configs of
    training-time methods whose structural changes (`replay_on_load`) the loader replays."""
    with writing(directory, force=overwrite, kind="model") as tmp:
        write_model_files(tmp, model, arch, arch_kwargs, plan, meta, prepared)
        for name, data in (extra or {}).items():
            (tmp / name).write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(directory)


def write_model_files(folder: Path, model: nn.Module, arch: str, arch_kwargs: dict | None = None,
                      plan: PrunePlan | None = None, meta: dict | None = None, prepared: list | None = None) -> None:
    """The files of a model folder, into a folder being built (inside `outputs.writing`)."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {"arch": arch, "kwargs": arch_kwargs or {}, "meta": meta or {}}
    replay = [c.to_dict() for c in prepared or () if getattr(c, "replay_on_load", False)]
    if replay:
        record["prepared"] = replay
    (folder / "model.json").write_text(json.dumps(record, indent=1, default=_jsonable))
    if plan is not None:
        (folder / "plan.json").write_text(json.dumps(plan.to_dict(), indent=1))
    save_file(state_tensors(model), folder / "weights.safetensors", metadata={"edgeprune": "1"})




def _jsonable(v: object) -> object:
    if isinstance(v, torch.Tensor):
        return v.tolist()
    if isinstance(v, Path):
        return str(v)
    return str(v)


def load_model(directory: str | os.PathLike, *, finite: bool = False) -> tuple[nn.Module, dict]:
    """Return (model in eval mode, the model.json record). `finite=True` refuses NaN or
    infinite weights (ConfigError); otherwise they are reported with a warning."""
    directory = Path(directory)
    from edgeprune.outputs import recover
    recover(directory)  # a writer killed mid-replacement on a system without atomic exchange
    if not directory.is_dir():
        raise ConfigError(f"{directory} is not a folder.\nhelp: give a model folder from `edgeprune train`")
    if not (directory / "model.json").exists():
        raise ConfigError(f"{directory} is not an edgeprune model directory (no model.json).\n"
                          "help: create one with `edgeprune train` or edgeprune.model_io.save_model")
    info = read_model_json(directory / "model.json")
    kwargs = dict(info["kwargs"])
    fbs = kwargs.pop("fbs_density", None)  # written by edgeprune before the method registry
    model = MODELS[info["arch"]].factory(**kwargs)
    prepared = info.get("prepared", []) + ([{"method": "fbs", "options": {"density": fbs}}] if fbs is not None else [])
    for record in prepared:  # structural changes of training-time methods (e.g. FBS gates)
        config = config_from_dict(record)
        config.build(model, None, 0).prepare(model)
    for name in info["meta"].get("removed_blocks", []):  # layer pruning
        parent, _, child = name.rpartition(".")
        try:
            owner = model.get_submodule(parent) if parent else model
            getattr(owner, child)
        except AttributeError:
            raise ConfigError(f"{directory / 'model.json'}: removed block {name!r} is not in {info['arch']}") from None
        setattr(owner, child, nn.Identity())
    if (directory / "plan.json").exists():
        try:
            apply_plan(model, PrunePlan.load(directory / "plan.json"))
        except PlanMismatchError as exc:
            raise ConfigError(f"{directory / 'plan.json'}: {str(exc).splitlines()[0]}") from None
    load_weights(model, directory / "weights.safetensors")
    _check_runs(model.eval(), info["arch"], directory)
    bad = nonfinite_tensors(model)
    if bad:
        msg = (f"{directory / 'weights.safetensors'} holds NaN or infinite values in {', '.join(bad[:3])}"
               f"{' and more' if len(bad) > 3 else ''}; the model is damaged")
        if finite:
            raise ConfigError(msg + ".\nhelp: retrain it or load an earlier copy")
        warnings.warn(msg + "; its outputs are meaningless", stacklevel=2)
    return model.eval(), info


def _check_runs(model: nn.Module, arch: str, directory: Path) -> None:
    """One forward pass on the architecture's example input: a plan that passed every check
    may still cut layers inconsistently (a hand-edited or hostile plan.json)."""
    x = torch.zeros(1, *MODELS[arch].input_shape)
    try:
        with torch.no_grad():
            model(x)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise ConfigError(f"{directory / 'plan.json'}: the pruned model does not run "
                          f"({str(exc).splitlines()[0][:120]}).\nhelp: the plan is damaged; prune again") from None


def read_model_json(path: Path) -> dict:
    """model.json, validated: a zoo architecture, constructor arguments that fit its signature
    and build a model of sane size, a meta record."""
    info = read_json(path, what="model file", max_bytes=2 ** 20)
    if not isinstance(info, dict) or not isinstance(info.get("arch"), str):
        raise ConfigError(f"{path}: expected an object with 'arch' (a zoo model name)")
    kwargs = info.get("kwargs", {})
    meta = info.get("meta", {})
    if not isinstance(meta, dict):
        raise ConfigError(f"{path}: 'meta' must be an object")
    blocks = meta.get("removed_blocks", [])
    if not (isinstance(blocks, list) and all(isinstance(b, str) and len(b) < 200 for b in blocks)):
        raise ConfigError(f"{path}: meta.removed_blocks must be a list of module names")
    if isinstance(kwargs, dict) and "fbs_density" in kwargs:
        d = kwargs["fbs_density"]
        if not (isinstance(d, (int, float)) and not isinstance(d, bool) and math.isfinite(d) and 0 < d <= 1):
            raise ConfigError(f"{path}: fbs_density must be a number in (0, 1]")
        kwargs = {k: v for k, v in kwargs.items() if k != "fbs_density"}
    prepared = info.get("prepared", [])
    if not (isinstance(prepared, list) and len(prepared) <= 8 and all(isinstance(r, dict) for r in prepared)):
        raise ConfigError(f"{path}: 'prepared' must be a list of method configs")
    for record in prepared:
        try:
            config = config_from_dict(record)
        except (ConfigError, TypeError) as exc:
            raise ConfigError(f"{path}: prepared method: {str(exc).splitlines()[0]}") from None
        if not getattr(config, "replay_on_load", False):
            raise ConfigError(f"{path}: {config.method} changes no structure to replay on load")
    check_model_args(info["arch"], kwargs, source=str(path))
    return {**info, "kwargs": info.get("kwargs", {}), "meta": meta}


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
