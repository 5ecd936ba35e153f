"""The model both ends agree on: a zoo architecture, optionally pruned by a plan (JSON), and
its weights as a list of float32 arrays in state_dict order (buffers included)."""
from __future__ import annotations

import json

import numpy as np
import torch
from torch import nn

from edgeprune.surgery.apply import apply_plan
from edgeprune.surgery.plan import PrunePlan
from edgeprune.zoo import create_model


def build(arch: str, kwargs: dict, plan_json: str = "") -> nn.Module:
    model = create_model(arch, **kwargs)
    if plan_json:
        apply_plan(model, PrunePlan.from_dict(json.loads(plan_json)))
    return model


def get_weights(model: nn.Module) -> list[np.ndarray]:
    return [v.detach().cpu().numpy().astype(np.float32) for v in model.state_dict().values()]


def counter_slots(model: nn.Module) -> tuple[int, ...]:
    """Positions in get_weights' list of integer buffers (step counters, not weights)."""
    return tuple(i for i, v in enumerate(model.state_dict().values()) if not v.is_floating_point())


def set_weights(model: nn.Module, arrays: list[np.ndarray]) -> None:
    keys = list(model.state_dict())
    if len(keys) != len(arrays):
        raise ValueError(f"expected {len(keys)} tensors, got {len(arrays)}")
    state = {}
    for k, a, ref in zip(keys, arrays, model.state_dict().values()):
        if tuple(a.shape) != tuple(ref.shape):
            raise ValueError(f"{k}: expected shape {tuple(ref.shape)}, got {tuple(a.shape)}")
        state[k] = torch.from_numpy(np.asarray(a)).to(ref.dtype)
    model.load_state_dict(state)
