"""Model weights as files: safetensors only, written whole and read as untrusted (no pickle,
a size cap, every tensor checked against the model it is loaded into)."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from edgeprune.errors import ConfigError

MAX_WEIGHTS_BYTES = 4 * 2 ** 30


def state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as safetensors stores it: shared storage is written once per name."""
    return {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}

def load_weights(model: nn.Module, path: Path) -> None:
    """Load a safetensors file into `model`, strictly: every tensor present, of the right
    shape and dtype class; one ConfigError naming the file otherwise."""
    if not path.is_file():
        raise ConfigError(f"{path} is missing.\nhelp: the model folder is incomplete; save it again")
    if path.stat().st_size > MAX_WEIGHTS_BYTES:
        raise ConfigError(f"{path} is larger than {MAX_WEIGHTS_BYTES >> 30} GiB; edgeprune will not load it")
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head[:1] == b"\x80" or head == b"PK":
        raise ConfigError(f"{path} is a pickle or zip (torch.save) file, not safetensors; edgeprune never "
                          "unpickles files.\nhelp: convert it with safetensors.torch.save_file in a trusted session")
    try:
        state = load_file(path)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"{path} is not a readable safetensors file ({str(exc).splitlines()[0][:120]})") from None
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {list(state[k].shape)} (model: {list(v.shape)})" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    kinds = [k for k, v in expected.items() if k in state and state[k].is_floating_point() != v.is_floating_point()]
    for label, items in (("is missing", missing), ("has tensors the model does not", unexpected),
                         ("has tensors of the wrong shape:", wrong), ("has tensors of the wrong type:", kinds)):
        if items:
            raise ConfigError(f"{path} {label} {', '.join(items[:3])}{' and more' if len(items) > 3 else ''}.\n"
                              "help: the weights do not belong to this model.json/plan.json; save the model again")
    model.load_state_dict(state)

def nonfinite_tensors(model: nn.Module) -> list[str]:
    """Names of floating-point parameters and buffers holding NaN or infinity."""
    return [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
