"""Least-squares reconstruction of the layers that lost input channels, without training.

For each such layer, in forward order, find the weights that best reproduce the *original*
layer's output (on its kept output channels) from the *pruned* model's input to that layer,
over a few hundred calibration samples: a ridge regression, solved in closed form, with
convolutions unfolded into patches. This is the layer-wise reconstruction of He, Zhang & Sun,
"Channel Pruning for Accelerating Very Deep Neural Networks" (ICCV 2017) and ThiNet (Luo et
al., ICCV 2017), used here after the channels were chosen, with no backpropagation.
Batch norms are then re-calibrated. Grouped and depthwise convolutions keep their weights.
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from edgeprune.example_inputs import call_with
from edgeprune.recovery.bn_recalibrate import bn_recalibrate
from edgeprune.registry import RECOVERIES
from edgeprune.rules import layer_kind
from edgeprune.surgery.plan import PrunePlan


def _capture(model: nn.Module, name: str, x, want: str) -> torch.Tensor:
    """Input or output of module `name` when `model` runs on `x` (a tensor, tuple or dict)."""
    box: list[torch.Tensor] = []
    mod = model.get_submodule(name)

    def hook(m, args, out):
        box.append(args[0] if want == "input" else out)
        raise _Stop
    h = mod.register_forward_hook(hook)
    try:
        call_with(model, x)
    except _Stop:
        pass
    finally:
        h.remove()
    return box[0]


class _Stop(Exception):
    """Ends a forward pass once the wanted activation is captured."""


def _patches(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Rows of the regression: (positions, in_features) for Linear or unfolded Conv1d/Conv2d."""
    if layer_kind(layer) == "linear":
        return x.reshape(-1, x.shape[-1])
    if len(layer.kernel_size) == 1:
        x = x.unsqueeze(2)
        k, s, p, d = (1, layer.kernel_size[0]), (1, layer.stride[0]), (0, layer.padding[0]), (1, layer.dilation[0])
    else:
        k, s, p, d = layer.kernel_size, layer.stride, layer.padding, layer.dilation
    cols = F.unfold(x, k, dilation=d, padding=p, stride=s)  # (N, C*k, positions)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def _targets(layer: nn.Module, y: torch.Tensor) -> torch.Tensor:
    if layer_kind(layer) == "linear":
        return y.reshape(-1, y.shape[-1])
    return y.flatten(2).transpose(1, 2).reshape(-1, y.shape[1])  # (N*positions, C_out)


def _eligible(layer: nn.Module) -> bool:
    if layer_kind(layer) == "linear":
        return True
    return layer_kind(layer) == "conv" and len(layer.kernel_size) <= 2 and layer.groups == 1 and isinstance(layer.padding, tuple) \
        and layer.padding_mode == "zeros"


@torch.no_grad()
def reconstruct(original: nn.Module, pruned: nn.Module, plan: PrunePlan, data: Iterable, *,
                samples: int = 1000, ridge: float = 1e-3, recalibrate: bool = True) -> nn.Module:
    """Re-fit, in place, every Linear/Conv1d/Conv2d of `pruned` whose input channels `plan`
    removed, then re-calibrate batch norms. `data`: batches of inputs or (inputs, targets);
    at most `samples` samples are used. Returns `pruned` in eval mode."""
    xs, n = [], 0
    for batch in data:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if isinstance(x, dict):  # keyword inputs (e.g. input_ids, attention_mask): whole batches
            xs.append(x)
            n += len(next(iter(x.values())))
        else:
            xs.append(x[: samples - n])
            n += len(xs[-1])
        if n >= samples:
            break
    original.eval()
    if recalibrate:  # inputs of later layers should come from sensible statistics
        bn_recalibrate(pruned, xs)
    names = [name for name, m in pruned.named_modules() if _eligible(m)
             and any(plan.removed.get(f"{name}.weight", {}).get(1, []) for _ in [0])]
    for name in names:
        layer = pruned.get_submodule(name)
        kept_out = _kept(plan, f"{name}.weight", 0, original.get_submodule(name).weight.shape[0])
        gram = xty = None
        for x in xs:
            inp = _patches(layer, _capture(pruned.eval(), name, x, "input"))
            out = _capture(original, name, x, "output")
            target = _targets(layer, out)[:, kept_out]
            if layer.bias is not None:
                inp = torch.cat([inp, torch.ones(len(inp), 1, dtype=inp.dtype)], 1)
            inp64, tgt64 = inp.double(), target.double()
            gram = inp64.T @ inp64 if gram is None else gram + inp64.T @ inp64
            xty = inp64.T @ tgt64 if xty is None else xty + inp64.T @ tgt64
        reg = ridge * gram.diagonal().mean().clamp_min(1e-12) * torch.eye(len(gram), dtype=gram.dtype)
        sol = torch.linalg.solve(gram + reg, xty)  # (features [+1], out)
        w = sol[:-1] if layer.bias is not None else sol
        layer.weight.copy_(w.T.reshape(layer.weight.shape).to(layer.weight.dtype))
        if layer.bias is not None:
            layer.bias.copy_(sol[-1].to(layer.bias.dtype))
        if recalibrate:
            bn_recalibrate(pruned, xs)
    return pruned.eval()


def _kept(plan: PrunePlan, tensor: str, dim: int, size: int) -> torch.Tensor:
    gone = set(plan.removed.get(tensor, {}).get(dim, []))
    return torch.tensor([i for i in range(size) if i not in gone], dtype=torch.long)


@RECOVERIES.register("reconstruct")
def reconstruct_recovery(original, pruned, plan, task, config, calib) -> None:
    """Least squares from calibration samples, no training (devices that cannot train)."""
    if config.least_squares_first:
        return  # done already
    from edgeprune.data import calibration_batches
    reconstruct(original, pruned, plan, calib or calibration_batches(task, config.calibration),
                samples=config.calibration)
