"""What edgeprune's C kernels cost per layer on each Cortex-M core, measured once and stored with
their provenance, and a model's latency from them.

The table (kernel_costs.json beside this file) is written by

    python -m benchmarks.kernels --calibrate

which builds one-layer models of every kernel kind the generator emits (`layer_kind`), at
several sizes and shape classes ("x4": output channels and inputs per output multiples of 4,
which the M0+ four-row and the M4/M7 SIMD loops want; "3x3": a depthwise layer's unrolled
kernel, "k3" a 1-D depthwise one's; "any": the rest), runs each on the
emulated core (exact instruction counts, outputs checked bit for bit), prices them with the
per-class cycle model (edgeprune.deploy.timing) and fits, per (core, kind, class),

    cycles = a MACs + b outputs + c copied bytes + c' border bytes + d loop runs
             + e input elements + f

by non-negative least squares of the relative error (copied bytes: what the kernel copies
into its scratch buffer, im2col columns or a depthwise layer's padded plane; border bytes:
the part of it, or of a direct loop's taps, at positions whose window reaches into the
padding, which take the bounds-checked path; loop runs: how
often its innermost loop starts, e.g. one im2col copy per position, channel and kernel row;
input elements: the input copy the emulation counts with a one-layer model's layer; f: the
call). Data reads from flash per MAC and per output are fitted the
same way, so a profile's flash wait states can be charged (`flash_misses`: one miss per flash
line streamed, or per read without a cache). The fit's worst relative error on its own shapes
is stored with every entry.

Ops other than convolution, linear and max pooling (residual adds, global pooling, copies)
are not in the table; fit emulates the dense model once and scales the table's estimate to
it, so they are accounted for on average."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
from torch import nn

from edgeprune.deploy.cgen import csr_pays
from edgeprune.errors import ConfigError
from edgeprune.rules import layer_kind

FEATURES = ("macs", "outputs", "copied_bytes", "border_bytes", "loop_runs", "input_elements", "calls")
KINDS = ("linear", "conv1d", "conv2d", "conv1d_depthwise", "conv1d_grouped", "conv2d_depthwise", "conv2d_grouped",
         "linear_csr", "conv1d_csr", "conv2d_csr", "maxpool1d", "maxpool2d")


@dataclass(frozen=True)
class Layer:
    """One kernel call as the generator will emit it."""

    name: str
    kind: str
    shape_class: str
    features: tuple[float, ...]  # FEATURES


def _inside(m: nn.Module, x_shape: tuple, y_shape: tuple) -> int:
    """Output positions whose window lies wholly inside the input (no padding read)."""
    count = 1
    for d, k in enumerate(m.kernel_size):
        s, p, n_in = m.stride[d], m.padding[d], x_shape[1 + d]
        count *= sum(1 for o in range(y_shape[1 + d]) if o * s - p >= 0 and o * s - p + k <= n_in)
    return count


def _conv_layer(name: str, m: nn.Module, x_shape: tuple, y_shape: tuple, sparse: bool, wide: bool) -> Layer:
    cin, cout, groups = m.in_channels, m.out_channels, m.groups
    taps = math.prod(m.kernel_size)
    kh = m.kernel_size[0]
    n = cin // groups * taps  # inputs per output
    positions = math.prod(y_shape[1:])
    border = positions - _inside(m, x_shape, y_shape)
    outputs = cout * positions
    macs = outputs * n
    w = m.weight.detach()
    nnz = int((w != 0).sum())
    dims = len(m.kernel_size)
    csr = sparse and csr_pays(nnz, cout, w.numel())
    x_elems = math.prod(x_shape)
    if csr:  # each non-zero weight runs a loop over the output positions (per output row in 2-D)
        runs = nnz * (y_shape[1] if dims == 2 else 1)
        return Layer(name, f"conv{dims}d_csr", "any", (nnz * positions, outputs, 0, 0, runs, x_elems, 1))
    if groups == 1:  # im2col: one copy run per (position, input channel, kernel row); bounds checks at the border
        cls = "x4" if cout % 4 == 0 and n % 4 == 0 else "any"
        runs = positions * cin * (kh if dims == 2 else 1)
        return Layer(name, f"conv{dims}d", cls, (macs, outputs, (positions - border) * n, border * n, runs, x_elems, 1))
    if groups == cin:  # depthwise: the input plane (row) copied once with its padding (wide cores: if it has any)
        copies = any(m.padding) or not wide
        padded = math.prod(x_shape[1 + d] + 2 * p for d, p in enumerate(m.padding)) if copies else 0
        if dims == 2:  # one run per output row
            cls = "3x3" if tuple(m.kernel_size) == (3, 3) else "any"  # the unrolled kernel, or the loops
            return Layer(name, "conv2d_depthwise", cls, (macs, outputs, cin * padded, 0, cout * y_shape[1], x_elems, 1))
        cls = "k3" if kh == 3 else "any"  # one run per channel
        return Layer(name, "conv1d_depthwise", cls, (macs, outputs, cin * padded, 0, cout, x_elems, 1))
    runs = outputs * (cin // groups) * (kh if dims == 2 else 1)  # direct loops: per output, channel, row
    return Layer(name, f"conv{dims}d_grouped", "any", (macs, outputs, 0, border * cout * n, runs, x_elems, 1))


def model_layers(model: nn.Module, example_inputs: Any, sparse: bool = False, graph=None,
                 core: str | None = None) -> list[Layer]:
    """The table-priced kernel calls of `model` (batch 1) built for `core`, in execution order."""
    from edgeprune.deploy.cgen import WIDE_CORES
    from edgeprune.graph.trace import trace
    wide = core in WIDE_CORES
    graph = graph or trace(model, example_inputs)
    layers = []
    for node in graph.nodes:
        if not node.inputs or not node.outputs:
            continue
        m, name = node.module, node.target
        x_shape, y_shape = tuple(node.inputs[0].shape[1:]), tuple(node.outputs[0].shape[1:])
        if node.kind == "function":
            if node.target in ("max_pool1d", "max_pool2d"):  # pooling modules trace as their functions
                dims = 1 if node.target == "max_pool1d" else 2
                k = node.arg(1, "kernel_size")
                taps = k ** dims if isinstance(k, int) else math.prod(k)
                outs = math.prod(y_shape)
                kh = k if isinstance(k, int) else k[0]
                runs = outs * (kh if dims == 2 else 1)
                layers.append(Layer(name, f"maxpool{dims}d", "any", (outs * taps, outs, 0, 0, runs, math.prod(x_shape), 1)))
            continue
        if layer_kind(m) == "conv":
            layers.append(_conv_layer(name, m, x_shape, y_shape, sparse, wide))
        elif layer_kind(m) == "linear":
            w = m.weight.detach()
            nnz = int((w != 0).sum())
            csr = sparse and csr_pays(nnz, m.out_features, w.numel())
            if csr:
                layers.append(Layer(name, "linear_csr", "any", (nnz, m.out_features, 0, 0, 0, m.in_features, 1)))
            else:
                cls = "x4" if m.out_features % 4 == 0 and m.in_features % 4 == 0 else "any"
                layers.append(Layer(name, "linear", cls, (w.numel(), m.out_features, 0, 0, 0, m.in_features, 1)))
    return layers


@lru_cache(maxsize=1)
def table() -> dict:
    """The stored table: {"provenance": {...}, "cores": {core: {kind: {class: entry}}}}."""
    try:
        text = resources.files("edgeprune.deploy").joinpath("kernel_costs.json").read_text()
    except FileNotFoundError:
        return {"provenance": {}, "cores": {}}
    return json.loads(text)


def entry(core: str, kind: str, shape_class: str) -> dict | None:
    kinds = table()["cores"].get(core, {}).get(kind, {})
    return kinds.get(shape_class) or kinds.get("any") or kinds.get("x4")


def has_core(core: str) -> bool:
    return core in table()["cores"]


@dataclass
class Estimate:
    cycles: float  # zero-wait-state cycles of the priced layers, input copies included
    flash_reads: float
    flash_bytes: float
    per_layer: list[tuple[str, float]]
    unpriced: list[str]  # kinds with no table entry for this core

    def wait_cycles(self, wait_states: int, line_bytes: int, cache_lines: int) -> float:
        """Flash misses x wait states: each line streamed once with a cache, every read without."""
        if not wait_states:
            return 0.0
        misses = self.flash_reads if cache_lines == 0 else min(self.flash_reads, self.flash_bytes / line_bytes)
        return misses * wait_states


def estimate(layers: list[Layer], core: str) -> Estimate:
    """Cycles and flash traffic of `layers` on `core` from the stored table."""
    if not has_core(core):
        raise ConfigError(f"no kernel costs are stored for {core!r}; measured cores: {sorted(table()['cores'])}")
    total, reads, nbytes, per, unpriced = 0.0, 0.0, 0.0, [], []
    for layer in layers:
        e = entry(core, layer.kind, layer.shape_class)
        if e is None:
            unpriced.append(layer.kind)
            continue
        f = np.asarray(layer.features, dtype=np.float64)
        c = float(np.dot(e["cycles"], f))
        total += c
        reads += float(np.dot(e["flash_reads"], f))
        nbytes += float(np.dot(e["flash_bytes"], f))
        per.append((layer.name, c))
    return Estimate(total, reads, nbytes, per, sorted(set(unpriced)))


def fit_entry(features: np.ndarray, cycles: np.ndarray, reads: np.ndarray, nbytes: np.ndarray,
              instructions: np.ndarray) -> dict:
    """Non-negative least squares of the relative error per target over the calibration
    shapes (rows of `features`); columns that are zero for every shape get a zero coefficient."""
    used = features.any(0)

    def solve(y: np.ndarray) -> list[float]:
        from scipy.optimize import nnls
        coef = np.zeros(features.shape[1])
        if not y.any():
            return [0.0] * features.shape[1]
        wgt = 1.0 / np.maximum(y, 1.0)  # each shape's error relative to its size
        cols = np.nonzero(used)[0]
        scale = np.abs(features[:, cols]).max(0)  # columns of comparable size for the solver
        sol, _ = nnls(features[:, cols] / scale * wgt[:, None], y * wgt)
        coef[cols] = sol / scale
        return [float(v) for v in coef]

    out = {"cycles": solve(cycles), "instructions": solve(instructions), "flash_reads": solve(reads),
           "flash_bytes": solve(nbytes), "shapes": int(len(features))}
    pred = features @ np.asarray(out["cycles"])
    out["max_relative_error"] = float(np.max(np.abs(pred - cycles) / np.maximum(cycles, 1.0)))
    return out


__all__ = ["FEATURES", "KINDS", "Layer", "Estimate", "model_layers", "estimate", "table", "entry", "has_core",
           "fit_entry"]
