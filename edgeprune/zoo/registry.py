"""Model registry. A spec also records the input a model expects, so tools can build
example inputs without asking."""
from __future__ import annotations

import fnmatch
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


def list_models(pattern: str = "*") -> list[str]:
    return sorted(n for n in MODELS if fnmatch.fnmatch(n, pattern))


def example_input(name: str, batch: int = 1, input_shape: tuple[int, ...] | None = None) -> torch.Tensor:
    return torch.randn(batch, *(input_shape or MODELS[name].input_shape))
