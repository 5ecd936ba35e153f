"""Check a pruned model against the original with the removed channels masked.

The reference is the *original* model replayed op by op (in float64, eval mode) with every
removed channel zeroed where an op consumes it. Zeroing a conv filter is not enough (a
following batch norm would turn the zeros into its bias), which is why the masking happens at
each consumer. Normalisations over the channel axis (LayerNorm) are evaluated over the kept
channels. The pruned model must then give the same outputs, to float tolerance.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

from edgeprune.errors import VerificationError
from edgeprune.example_inputs import call_with
from edgeprune.graph.coupling import ChannelGroup, build_groups
from edgeprune.graph.trace import Recorder, canonical_name, run_recorded, trace
from edgeprune.opgraph import OpGraph, Slot, Value
from edgeprune.rules.base import has_rule, masked_op, rule_for
from edgeprune.surgery.plan import PrunePlan


@dataclass
class VerifyReport:
    ok: bool
    max_abs_error: float
    output_scale: float
    tolerance: float
    tracer: str
    message: str = ""

    @classmethod
    def measured(cls, err: float, scale: float, tol: float, tracer: str) -> "VerifyReport":
        weak = "" if scale > 1e-12 else "warning: the outputs are ~0 on these inputs, so the check is weak"
        return cls(err <= tol, err, scale, tol, tracer, weak)

    def __str__(self) -> str:
        state = "OK" if self.ok else "FAILED"
        return (f"verification {state}: max |pruned - masked original| = {self.max_abs_error:.3g} "
                f"(tolerance {self.tolerance:.3g}, output scale {self.output_scale:.3g}, tracer {self.tracer})"
                + (f"\n{self.message}" if self.message else ""))


def removed_slots(groups: list[ChannelGroup], plan: PrunePlan) -> dict[tuple, np.ndarray]:
    """Per slot (value or tensor axis), the indices the plan removes. Checks that the plan
    removes whole coupled units only, and nothing that is not a unit."""
    out: dict[tuple, list[np.ndarray]] = {}
    covered: dict[tuple, list[np.ndarray]] = {}
    for g in groups:
        flags = []
        for slot in g.param_slots:
            gone = plan.removed.get(slot[1], {}).get(slot[2])
            m = g.slots[slot]
            hit = np.isin(m, gone) if gone else np.zeros(m.shape, bool)
            if (hit.any(1) & ~hit.all(1)).any():
                raise VerificationError(f"the plan removes part of a coupled unit of {g.name} "
                                        f"({slot[1]} dim {slot[2]}): coupled channels must go together")
            flags.append(hit.all(1))
        flags = np.stack(flags)
        if (flags.any(0) & ~flags.all(0)).any():
            raise VerificationError(f"the plan removes a unit of {g.name} from some coupled layers only")
        units = np.nonzero(flags.all(0))[0]
        for slot, idx in g.removed(units.tolist()).items():
            out.setdefault(slot, []).append(idx)
            if slot[0] == "p":
                covered.setdefault((slot[1], slot[2]), []).append(idx)
    for name, dims in plan.removed.items():
        for d, idx in dims.items():
            have = np.concatenate(covered.get((name, d), [np.zeros(0, np.int64)]))
            extra = np.setdiff1d(np.asarray(idx, dtype=np.int64), have)
            if extra.size:
                raise VerificationError(f"the plan removes indices {extra[:5].tolist()} of {name} dim {d}, "
                                        "which are not a prunable unit of the original model")
    return {s: np.unique(np.concatenate(v)) for s, v in out.items()}


class _Masker(Recorder):
    """Replays the model, zeroing removed channels at every op input (node k = graph.nodes[k])."""

    def __init__(self, model: nn.Module, graph: OpGraph, removed: dict[tuple, np.ndarray]):
        super().__init__(has_rule, model)
        self.ref, self.removed = graph, removed

    def _params_of(self, module: nn.Module) -> dict[str, dict[int, np.ndarray]]:
        """Removed indices of the module's own tensors, by local name (indexed once)."""
        if not hasattr(self, "_by_owner"):
            self._by_owner: dict[str, dict[str, dict[int, np.ndarray]]] = {}
            for slot, idx in self.removed.items():
                if slot[0] == "p":
                    owner, _, local = slot[1].rpartition(".")
                    self._by_owner.setdefault(owner, {}).setdefault(local, {})[slot[2]] = idx
        name = self.module_names.get(id(module), "")
        out = dict(self._by_owner.get(name, {}))
        prefix = name + "." if name else ""
        for owner, tensors in self._by_owner.items():  # tensors of submodules (MHA's out_proj)
            if owner.startswith(prefix) and owner != name and prefix:
                for local, dims in tensors.items():
                    out[f"{owner[len(prefix):]}.{local}"] = dims
        return out

    def _node_removed(self, v: Value) -> dict[int, np.ndarray]:
        out = {}
        for d in range(v.ndim):
            slot = Slot.of(v, d)
            if slot in self.removed:
                out[d] = self.removed[slot]
        return out

    def _mask(self, k: int, kind: str, target: str, args: tuple, kwargs: dict):
        if k >= len(self.ref.nodes) or self.ref.nodes[k].target != target or self.ref.nodes[k].kind != kind:
            return args, kwargs, {}
        inputs = iter(self.ref.nodes[k].inputs)
        per_input: dict[int, dict] = {}
        counter = iter(range(10**9))

        def zero(t):
            if not isinstance(t, torch.Tensor):
                return t
            j, v = next(counter), next(inputs, None)
            rem = self._node_removed(v) if v is not None and tuple(v.shape) == tuple(t.shape) else {}
            if rem:
                per_input[j] = rem
                for d, idx in rem.items():
                    t = t.index_fill(d, torch.as_tensor(idx, dtype=torch.long, device=t.device), 0)
            return t
        leaves, spec = tree_flatten((args, kwargs))
        args, kwargs = spec.unflatten([zero(t) for t in leaves]) if leaves else (args, kwargs)
        return args, kwargs, per_input

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.leaf_depth:
            return func(*args, **kwargs)
        name = canonical_name(func)
        args, kwargs, per_input = self._mask(len(self.nodes), "function", name, args, kwargs)
        pending = self._refs(args, kwargs)
        special = masked_op(name)
        out = special(args, kwargs, per_input) if special and per_input else func(*args, **kwargs)
        self._finish("function", name, pending, out, None)
        return out

    def pre_hook(self, module, args, kwargs):
        if self.leaf_depth == 0:
            with torch._C.DisableTorchFunction():
                args, kwargs, per_input = self._mask(len(self.nodes), "module", self.module_names[id(module)],
                                                     args, kwargs)
                self._per_input = per_input
                self._pending.append(self._refs(args, kwargs))
        self.leaf_depth += 1
        return args, kwargs

    def post_hook(self, module, args, kwargs, out):
        if self.leaf_depth == 1 and (getattr(self, "_per_input", None) or self._params_of(module)):
            with torch._C.DisableTorchFunction():
                special = rule_for(module).masked_call(module, args, kwargs, self._per_input,
                                                       self._params_of(module))
                out = out if special is None else special
        super().post_hook(module, args, kwargs, out)
        return out


def masked_forward(model: nn.Module, graph: OpGraph, removed: dict[tuple, np.ndarray], example_inputs: Any) -> Any:
    return run_recorded(_Masker(model, graph, removed), model, example_inputs)


def _cast(x: Any, dtype: torch.dtype) -> Any:
    return tree_map(lambda t: t.to(dtype) if isinstance(t, torch.Tensor) and t.is_floating_point() else t, x)


def _to64(x: Any) -> Any:
    return _cast(x, torch.float64)


def verify(original: nn.Module, pruned: nn.Module, plan: PrunePlan, example_inputs: Any, *,
           rtol: float = 1e-6, atol: float = 0.0, raise_on_failure: bool = True,
           ignore: list[str] | None = None, prune_outputs: bool = False) -> VerifyReport:
    """Compare `pruned` with `original` masked by `plan` on `example_inputs` (float64, eval).

    Use it on any pruning result; edgeprune.prune() calls it by default."""
    ref = copy.deepcopy(original).double().eval()
    small = copy.deepcopy(pruned).double().eval()
    inputs = _to64(example_inputs)
    graph = trace(ref, inputs)
    groups = build_groups(ref, graph, ignore=ignore, strict=False, prune_outputs=prune_outputs)
    removed = removed_slots(groups, plan)
    expected = [_drop(t, v, removed) for t, v in zip(
        [t for t in tree_flatten(masked_forward(ref, graph, removed, inputs))[0] if isinstance(t, torch.Tensor)],
        graph.outputs)]
    with torch.no_grad():
        try:
            got = [t for t in tree_flatten(call_with(small, inputs))[0] if isinstance(t, torch.Tensor)]
        except Exception as exc:
            report = VerifyReport(False, float("inf"), 0.0, 0.0, graph.tracer, f"the pruned model fails to run: {exc}")
            if raise_on_failure:
                raise VerificationError(str(report)) from exc
            return report
    msg = ""
    if len(got) != len(expected) or any(a.shape != b.shape for a, b in zip(got, expected)):
        msg = (f"output shapes differ: pruned {[tuple(t.shape) for t in got]}, "
               f"masked original {[tuple(t.shape) for t in expected]}")
        report = VerifyReport(False, float("inf"), 0.0, 0.0, graph.tracer, msg)
    else:
        scale = max((float(t.abs().max()) for t in expected if t.numel() and t.is_floating_point()), default=0.0)
        err = max((float((a.double() - b.double()).abs().max()) for a, b in zip(got, expected) if a.numel()), default=0.0)
        report = VerifyReport.measured(err, scale, atol + rtol * scale, graph.tracer)
    if not report.ok and raise_on_failure:
        raise VerificationError(str(report) + "\nhelp: this is a bug in a pruning rule (or a custom rule); "
                                "please report it with the model.")
    return report


@dataclass
class Failure:
    node: int  # index of the first op of the original graph whose pruned result is wrong
    reason: str


@dataclass
class CheckResult:
    failure: Failure | None
    max_abs_error: float = float("inf")  # on the model outputs
    output_scale: float = 0.0
    tolerance: float = 0.0


def _drop(t: torch.Tensor, v: Value, removed: dict[tuple, np.ndarray]) -> torch.Tensor:
    for d in range(min(t.ndim, v.ndim)):
        slot = Slot.of(v, d)
        if slot in removed:
            keep = np.setdiff1d(np.arange(t.shape[d]), removed[slot])
            t = t.index_select(d, torch.as_tensor(keep, dtype=torch.long, device=t.device))
    return t


def locate_failure(original: nn.Module, pruned: nn.Module, graph: OpGraph, groups: list[ChannelGroup],
                   plan: PrunePlan, example_inputs: Any, rtol: float = 1e-6,
                   dtype: torch.dtype = torch.float64) -> CheckResult:
    """Compare the pruned model with the masked original (in `dtype`). When they differ, replay
    both op by op and name the first op whose output differs on the kept channels."""
    rtol = rtol if dtype == torch.float64 else max(rtol, 1e-4)
    small = copy.deepcopy(pruned).to(dtype).eval()
    inputs = _cast(example_inputs, dtype)
    rec = Recorder(has_rule, small)  # a crash is located at the op that raised
    try:
        got = run_recorded(rec, small, inputs)
    except Exception as exc:
        return CheckResult(Failure(min(len(rec.nodes), len(graph.nodes) - 1), f"{type(exc).__name__}: {exc}"))
    del rec
    ref = copy.deepcopy(original).to(dtype).eval()
    removed = removed_slots(groups, plan)
    want = run_recorded(_Masker(ref, graph, removed), ref, inputs)
    got = [t for t in tree_flatten(got)[0] if isinstance(t, torch.Tensor)]
    want = [_drop(t, v, removed) for t, v in zip(
        [t for t in tree_flatten(want)[0] if isinstance(t, torch.Tensor)], graph.outputs)]
    if len(got) == len(want) and all(a.shape == b.shape for a, b in zip(got, want)):
        scale = max((float(t.abs().max()) for t in want if t.numel() and t.is_floating_point()), default=0.0)
        err = max((float((a.double() - b.double()).abs().max()) for a, b in zip(got, want) if a.numel()), default=0.0)
        if err <= rtol * scale:
            return CheckResult(None, err, scale, rtol * scale)
    return CheckResult(_first_difference(ref, small, graph, removed, inputs, rtol))


def _first_difference(ref: nn.Module, small: nn.Module, graph: OpGraph, removed: dict, inputs: Any,
                      rtol: float) -> Failure:
    masker = _Masker(ref, graph, removed)
    masker.keep_outputs = True
    run_recorded(masker, ref, inputs)
    rec = Recorder(has_rule, small)
    rec.keep_outputs = True
    try:
        run_recorded(rec, small, inputs)
    except Exception as exc:
        return Failure(min(len(rec.nodes), len(graph.nodes) - 1), f"{type(exc).__name__}: {exc}")
    for k, (node, want_list) in enumerate(zip(graph.nodes, masker.node_outputs)):
        if k >= len(rec.node_outputs):
            return Failure(k, "the pruned model runs fewer ops")
        for v, want, got in zip(node.outputs, want_list, rec.node_outputs[k]):
            if not want.is_floating_point():
                continue
            want = _drop(want, v, removed)
            if want.shape != got.shape:
                return Failure(k, f"shape {tuple(got.shape)} instead of {tuple(want.shape)}")
            scale = float(want.abs().max()) if want.numel() else 0.0
            if want.numel() and float((want - got.double()).abs().max()) > rtol * max(scale, 1e-30) + 1e-12:
                return Failure(k, "values differ from the masked original")
    return Failure(len(graph.nodes) - 1, "model outputs differ from the masked original")
