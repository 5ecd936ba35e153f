"""What a model costs on a device: flash, peak RAM, latency and energy per inference.

- Flash: conv/linear weights in the chosen precision (int8: one byte each, stored dense or, with
  `sparse=True`, in the cheaper of bitmask and CSR per layer), per output channel a 32-bit bias
  and (int8) an 8-byte requantisation record, other parameters as 32-bit floats, batch norms
  folded away, plus the profile's fixed runtime cost.
- RAM: the activations alive at once in execution order (edgeprune.metrics.peak_activation_bytes,
  at the precision's element size), plus the generated C's scratch buffer for the profile's core
  (a dense convolution's im2col columns, widened to int16 on cores with the DSP extension, or a
  depthwise convolution's padded input plane),
  plus the runtime's fixed cost.
- Latency: for int8 on a Cortex-M core, the sum over layers of edgeprune's C kernels' measured
  costs (edgeprune.deploy.kernel_costs: per kernel kind, core and shape class) plus the
  profile's flash wait states; or executed MACs x a measured number of cycles per MAC
  (`cycles_per_mac`); else executed MACs / (MACs per cycle x clock), where with sparse
  kernels only non-zero weights are executed, each costing `sparse_overhead` dense MACs (the
  table prices edgeprune's CSR kernels as measured instead).
- Energy, after Yang, Chen & Sze (CVPR 2017): E = E_compute + E_data, with E_compute = cycles x
  energy per active cycle and E_data = sum over memory levels of accesses x cost per access,
  under a stated dataflow: every executed MAC reads its weight from flash and its input from
  SRAM, every output element is written to SRAM once. The per-access costs are estimates (see
  the profile's `estimates`).

Every figure is an estimate from counts and the profile, except `measured_latency_ms`, which is
measured on this host (ONNX Runtime, batch 1, one thread) when asked for."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from edgeprune.deploy import kernel_costs as kc
from edgeprune.devices.profiles import Budget, DeviceProfile
from edgeprune.errors import ConfigError
from edgeprune.graph.trace import trace
from edgeprune.metrics.measure import count_macs, peak_activation_bytes
from edgeprune.rules import layer_kind, weight_axes
from edgeprune.sparse.storage import bitmask_bytes, csr_bytes

PRECISION_BYTES = {"int8": 1, "fp32": 4}
_LAYERS = ("linear", "conv", "conv_transpose")  # layer kinds stored as weights, bias and requantisation
_FOLDED = ("batch_norm",)  # folded into the layer before them


@dataclass
class DeviceCost:
    flash_bytes: int
    ram_bytes: int
    latency_ms: float
    energy_mj: float
    macs: int
    executed_macs: int
    weight_bytes: int
    activation_bytes: int
    scratch_bytes: int
    measured_latency_ms: float | None = None
    cycles: float = 0.0
    latency_source: str = "profile macs_per_cycle"

    def to_dict(self) -> dict:
        return asdict(self)


def _weights_bytes(model: nn.Module, value_bytes: int, sparse: bool) -> tuple[int, float]:
    """Bytes of all parameters as deployed, and the fraction of conv/linear weights executed."""
    total, nnz, count = 0, 0, 0
    layer_params: set[int] = set()
    for m in model.modules():
        kind = layer_kind(m)
        if kind in _LAYERS:
            w = m.weight.detach()
            layer_params.add(id(m.weight))
            dense = w.numel() * value_bytes
            total += min(dense, bitmask_bytes(w, value_bytes), csr_bytes(w, value_bytes)) if sparse else dense
            out_ch = w.shape[weight_axes(m)[0]]
            total += out_ch * (4 + (8 if value_bytes == 1 else 0))  # bias (+ requantisation)
            if m.bias is not None:
                layer_params.add(id(m.bias))
            nnz += int((w != 0).sum()) if sparse else w.numel()
            count += w.numel()
        elif kind in _FOLDED:
            layer_params.update(id(p) for p in m.parameters(recurse=False))
    total += sum(p.numel() * 4 for p in model.parameters() if id(p) not in layer_params)
    return total, (nnz / count if count else 1.0)


def _scratch_bytes(graph, core: str) -> int:
    """The generated C's scratch buffer when built for `core`: the largest of a dense
    convolution's columns (edgeprune.deploy.cgen.dense_scratch_bytes) and a depthwise
    convolution's padded input plane (row), in whole words, as edgeprune.deploy.cgen sizes it."""
    from edgeprune.deploy.cgen import WIDE_CORES, dense_scratch_bytes
    wide = core in WIDE_CORES
    best = 0
    for n in graph.module_nodes():
        m = n.module
        if layer_kind(m) == "conv":
            if m.groups == 1:
                best = max(best, dense_scratch_bytes(m.in_channels * math.prod(m.kernel_size), wide))
            elif m.groups == m.in_channels and n.inputs and (any(m.padding) or not wide):  # the plane copy
                dims = n.inputs[0].shape[-len(m.kernel_size):]
                best = max(best, math.prod(d + 2 * p for d, p in zip(dims, m.padding)))
    return 4 * ((best + 3) // 4)


def model_cost(model: nn.Module, example_inputs: Any, profile: DeviceProfile, precision: str = "int8",
               sparse: bool = False, sparse_overhead: float = 1.5, measure_host: bool = False,
               cycles_per_mac: float | None = None, kernel_costs: bool = True,
               latency_scale: float = 1.0) -> DeviceCost:
    """Estimate `model` (batch 1 example inputs) on `profile`; see the module docstring.

    Cycles, in order of preference: `cycles_per_mac` x executed MACs (a measured rate); with
    `kernel_costs`, int8 and a core in edgeprune.deploy.kernel_costs' table, the sum of the
    stored per-kernel costs of every layer plus the profile's flash wait states, times
    `latency_scale` (edgeprune.fit sets it from the emulated model); else executed MACs over
    the profile's MACs per cycle."""
    if precision not in PRECISION_BYTES:
        raise ConfigError(f"precision must be one of {sorted(PRECISION_BYTES)}, got {precision!r}")
    vb = PRECISION_BYTES[precision]
    was = model.training
    model.eval()
    graph = trace(model, example_inputs)
    macs = count_macs(model, example_inputs, graph)
    weights, executed_fraction = _weights_bytes(model, vb, sparse)
    executed = int(round(macs * executed_fraction))
    source = "profile macs_per_cycle"
    if cycles_per_mac is not None:
        cycles, source = executed * cycles_per_mac, "measured cycles per MAC"
    elif kernel_costs and precision == "int8" and profile.core and kc.has_core(profile.core):
        est = kc.estimate(kc.model_layers(model, example_inputs, sparse, graph, profile.core), profile.core)
        wait = est.wait_cycles(profile.flash_wait_states, profile.flash_line_bytes, profile.flash_cache_lines)
        cycles = (est.cycles + wait) * latency_scale
        source = f"kernel cost table ({profile.core}, measured {kc.table()['provenance'].get('measured', '?')})"
        if latency_scale != 1.0:
            source += f" x {latency_scale:.3f} (emulated)"
    else:
        cycles = executed * (sparse_overhead if sparse else 1.0) / profile.throughput(precision)
    activations = peak_activation_bytes(graph, vb)
    scratch = _scratch_bytes(graph, profile.core) if precision == "int8" else 0
    outputs = sum(v.numel for n in graph.nodes for v in n.outputs if v.dtype.is_floating_point)
    energy_pj = (cycles * profile.pj_per_cycle + executed * vb * profile.pj_per_flash_byte
                 + (executed * vb + outputs * vb) * profile.pj_per_sram_byte)
    measured = None
    if measure_host:
        from edgeprune.metrics.measure import onnx_latency_ms
        measured = onnx_latency_ms(model, example_inputs)
    model.train(was)
    return DeviceCost(flash_bytes=weights + profile.runtime_flash_bytes,
                      ram_bytes=activations + scratch + profile.runtime_ram_bytes,
                      latency_ms=1000.0 * cycles / profile.clock_hz, energy_mj=energy_pj * 1e-9, macs=macs,
                      executed_macs=executed, weight_bytes=weights, activation_bytes=activations,
                      scratch_bytes=scratch, measured_latency_ms=measured, cycles=cycles, latency_source=source)


@dataclass
class Check:
    name: str
    value: float
    limit: float | None
    unit: str

    @property
    def ok(self) -> bool:
        return self.limit is None or self.value <= self.limit

    @property
    def margin(self) -> float | None:
        """Fraction of the limit left (negative: over budget)."""
        return None if self.limit is None else 1.0 - self.value / self.limit


def check_budget(cost: DeviceCost, budget: Budget) -> list[Check]:
    return [Check("flash", cost.flash_bytes, budget.flash_bytes, "B"),
            Check("RAM", cost.ram_bytes, budget.ram_bytes, "B"),
            Check("latency", cost.latency_ms, budget.latency_ms, "ms"),
            Check("energy", cost.energy_mj, budget.energy_mj, "mJ")]


def budget_table(checks: list[Check]) -> str:
    def fmt(v: float | None, unit: str) -> str:
        if v is None:
            return "-"
        if unit == "B":
            return f"{v / 1024:.1f} KiB" if v < 1024 ** 2 else f"{v / 1024 ** 2:.2f} MiB"
        return f"{v:.3f} {unit}"
    rows = [f"{'constraint':24} {'result':>14} {'budget':>14} {'margin':>8}  ok"]
    for c in checks:
        m = "-" if c.margin is None else f"{100 * c.margin:+.0f}%"
        rows.append(f"{c.name:24} {fmt(c.value, c.unit):>14} {fmt(c.limit, c.unit):>14} {m:>8}  {'yes' if c.ok else 'NO'}")
    return "\n".join(rows)
