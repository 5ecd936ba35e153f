"""Model registry. A spec also records the input a model expects, so tools can build
example inputs without asking."""
from __future__ import annotations

import fnmatch
import inspect
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from edgeprune.errors import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    factory: Callable[..., nn.Module]
    input_shape: tuple[int, ...]  # one sample, no batch dim
    task: str  # "hapt", "mnist", "cifar10", "anomaly", ...
    description: str


MODELS: dict[str, ModelSpec] = {}


def register_model(name: str, input_shape: tuple[int, ...], task: str, description: str = ""):
    def wrap(factory):
        MODELS[name] = ModelSpec(name, factory, input_shape, task, description or (factory.__doc__ or "").strip())
        return factory
    return wrap


def create_model(name: str, **kwargs) -> nn.Module:
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {list_models()}")
    return MODELS[name].factory(**kwargs)


MAX_PARAMETERS = 500_000_000  # a zoo model this large is a damaged or hostile model.json
MAX_COUNT = 1_000_000


def check_model_args(name: str, kwargs: object, source: str = "model arguments") -> dict:
    """Validate constructor arguments read from a file against the factory's signature and
    sane limits, then build the model on the meta device (no memory) to bound its size.
    Returns the arguments; ConfigError names the first bad one."""
    if name not in MODELS:
        raise ConfigError(f"{source}: unknown model {name!r}; choose one of {list_models()}")
    if not isinstance(kwargs, dict):
        raise ConfigError(f"{source}: 'kwargs' must be an object of constructor arguments")
    params = inspect.signature(MODELS[name].factory).parameters
    for key, value in kwargs.items():
        if key not in params:
            raise ConfigError(f"{source}: {name} takes no argument {key!r} (it takes {sorted(params)})")
        default = params[key].default
        problem = _bad_value(value, default)
        if problem:
            raise ConfigError(f"{source}: {name} argument {key}={value!r} {problem}")
    try:
        with torch.device("meta"):
            model = MODELS[name].factory(**kwargs)
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError, AssertionError) as exc:
        raise ConfigError(f"{source}: {name}({kwargs}) cannot be built: {str(exc).splitlines()[0][:160]}") from None
    count = sum(p.numel() for p in model.parameters())
    if count > MAX_PARAMETERS:
        raise ConfigError(f"{source}: {name}({kwargs}) would have {count:,} parameters, more than the "
                          f"{MAX_PARAMETERS:,} edgeprune builds from a file")
    return kwargs


def _bad_value(value: object, default: object) -> str:
    """Why `value` cannot stand for a parameter whose default is `default` ('' if it can)."""
    def count_ok(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_COUNT

    if isinstance(default, bool):
        return "" if isinstance(value, bool) else "must be true or false"
    if isinstance(default, int):
        return "" if count_ok(value) else f"must be an integer from 1 to {MAX_COUNT:,}"
    if isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 < value <= 1e3
        return "" if ok else "must be a finite number in (0, 1000]"
    if isinstance(default, (tuple, list)):
        ok = isinstance(value, (list, tuple)) and 0 < len(value) <= 64 and all(count_ok(v) for v in value)
        return "" if ok else f"must be a list of 1-64 integers from 1 to {MAX_COUNT:,}"
    if isinstance(default, str):
        return "" if isinstance(value, str) and len(value) <= 100 else "must be a short string"
    return "cannot be given in a file"


def list_models(pattern: str = "*") -> list[str]:
    return sorted(n for n in MODELS if fnmatch.fnmatch(n, pattern))


def example_input(name: str, batch: int = 1, input_shape: tuple[int, ...] | None = None) -> torch.Tensor:
    return torch.randn(batch, *(input_shape or MODELS[name].input_shape))
