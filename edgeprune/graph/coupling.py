"""From an OpGraph to channel units and groups.

Every channel axis (a dim of a traced value, or of a parameter) is a *slot*; every index of a
slot is an *element*. Rules tie elements of different slots; the connected components are
the *units*: sets of indices that can only be removed together (a conv filter, its batch-norm
entries, the matching input columns of every consumer, the spatial block it becomes after a
flatten, the same channel on every branch of a residual add...). A unit is prunable when it
holds at least one parameter element and no blocked element. Units whose parameter slots are
the same form a *group*: one layer's (or one coupled set of layers') channels, ranked together.

Reshapes are resolved last: a dim that splits into several (C -> heads x head_dim, or the
view of a channel shuffle) carries its units on one factor only, chosen from what the other
ops allow (a factor that is blocked elsewhere is never chosen; one tied to parameters is
preferred; otherwise the largest).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from torch import nn

from edgeprune.errors import ConfigError, UnsupportedLayerError
from edgeprune.opgraph import OpGraph, OpNode, Slot, Value
from edgeprune.rules.base import CouplingContext, op_rule, rule_for


@dataclass
class ChannelGroup:
    """Channels ranked and removed together. `index[slot]` is a (units, k) array: row u holds the
    k indices of that axis removed with unit u (k > 1 for heads, flattened maps, ...)."""

    index: int
    name: str
    slots: dict[Slot, np.ndarray]
    param_slots: list[Slot] = field(default_factory=list)
    roles: dict[Slot, str] = field(default_factory=dict)  # the rules' axis roles (CouplingContext)

    @property
    def producer_slots(self) -> list[Slot]:
        """The axes of the weights that produce the group's channels (filters, rows of a linear
        layer, an embedding's columns), in model order: what filter criteria rank."""
        return [s for s in self.param_slots if self.roles.get(s) == "out"]

    def slots_with_role(self, role: str) -> list[Slot]:
        return [s for s in self.param_slots if self.roles.get(s) == role]

    def __len__(self) -> int:
        return len(next(iter(self.slots.values())))

    @property
    def channels_per_unit(self) -> int:
        """Channels of the group's first parameter axis removed per unit (1, or a head's width)."""
        return self.slots[self.param_slots[0]].shape[1]

    @property
    def units(self) -> list[dict[Slot, np.ndarray]]:
        return [{s: m[u] for s, m in self.slots.items()} for u in range(len(self))]

    def removed(self, units: list[int]) -> dict[Slot, np.ndarray]:
        """slot -> indices removed when `units` go."""
        rows = np.asarray(units, dtype=np.int64)
        return {s: np.sort(m[rows].ravel()) for s, m in self.slots.items()} if len(rows) else {}

    def __repr__(self) -> str:
        return f"ChannelGroup({self.name}, {len(self)} units, {len(self.param_slots)} param axes)"


class Coupler(CouplingContext):
    def __init__(self, graph: OpGraph, tensors: dict[str, "object"]):
        self.graph, self.tensors = graph, tensors
        self.base: dict[Slot, int] = {}
        self.sizes: dict[Slot, int] = {}
        self.n = 0
        self._ea: list[np.ndarray] = []
        self._eb: list[np.ndarray] = []
        self.slot_links: list[tuple[Slot, Slot]] = []
        self.blocked: set[Slot] = set()
        self.unknown: dict[Slot, str] = {}
        self.mentioned: set[Slot] = set()
        self.roles: dict[Slot, str] = {}  # axis roles the rules tagged (CouplingContext)
        self.reshapes: list[tuple[OpNode, Value, Value]] = []
        self.prune_outputs = False
        self.tensor_rank = {name: i for i, name in enumerate(tensors)}

    # CouplingContext ------------------------------------------------------
    def _ensure(self, slot: Slot, size: int) -> Slot:
        if slot not in self.base:
            self.base[slot], self.sizes[slot] = self.n, size
            self.n += size
        return slot

    def value(self, v: Value, dim: int, role: str | None = None) -> Slot:
        dim = dim % v.ndim
        slot = Slot.of(v, dim)
        self.mentioned.add(slot)
        if role is not None:
            self.roles.setdefault(slot, role)
        return self._ensure(slot, v.shape[dim])

    def param(self, name: str, dim: int, role: str | None = None) -> Slot:
        t = self.tensors[name]
        slot = Slot.param(name, dim % t.ndim)
        if role is not None:
            self.roles.setdefault(slot, role)
        return self._ensure(slot, t.shape[dim])

    def size(self, slot: Slot) -> int:
        return self.sizes[slot]

    def same(self, a: Slot, b: Slot, a_start: int = 0, b_start: int = 0, length: int | None = None) -> None:
        length = self.sizes[a] - a_start if length is None else length
        idx = np.arange(length)
        self.link(a, idx + a_start, b, idx + b_start)

    def link(self, a: Slot, a_idx: np.ndarray, b: Slot, b_idx: np.ndarray) -> None:
        a_idx, b_idx = np.asarray(a_idx, dtype=np.int64), np.asarray(b_idx, dtype=np.int64)
        if a_idx.shape != b_idx.shape or (a_idx.size and (a_idx.max() >= self.sizes[a] or b_idx.max() >= self.sizes[b])):
            raise ValueError(f"rule linked {a} and {b} with mismatched indices")
        self._ea.append(a_idx + self.base[a])
        self._eb.append(b_idx + self.base[b])
        self.slot_links.append((a, b))

    def reshape(self, src: Value, dst: Value) -> None:
        self.reshapes.append((self._node, src, dst))

    def link_aliases(self, model: nn.Module) -> None:
        """A tensor shared by several modules (a tied embedding and output layer) is one
        tensor: its names' slots are tied on every dim, so it is cut once, the same way."""
        names: dict[int, list[str]] = {}
        for n, t in self.tensors.items():
            names.setdefault(id(t), []).append(n)
        for group in names.values():
            first = group[0]
            t = self.tensors[first]
            for other in group[1:]:
                for d in range(t.ndim):
                    self.same(self.param(first, d), self.param(other, d))

    # the pass -------------------------------------------------------------
    def block_value(self, v: Value, reason: str | None = None) -> None:
        for d in range(v.ndim):
            slot = Slot.of(v, d)
            self._ensure(slot, v.shape[d])
            (self.unknown.__setitem__(slot, reason) if reason else self.blocked.add(slot))

    def _close_node(self, node: OpNode) -> None:
        for v in node.inputs + node.outputs:
            for d in range(v.ndim):
                slot = Slot.of(v, d)
                if slot not in self.mentioned:
                    self._ensure(slot, v.shape[d])
                    self.blocked.add(slot)

    def run(self, ignore_params: set[str], blocked_nodes: set[int] = frozenset(),
            blocked_values: set[int] = frozenset()) -> None:
        deferred = []
        for node in self.graph.nodes:
            self._node, self.mentioned = node, set()
            if node.index in blocked_nodes:  # found unsafe by a check of an earlier plan
                for v in node.inputs + node.outputs:
                    self.block_value(v)
                continue
            if node.kind == "module":
                rule = rule_for(node.module)
                rule.couple(self, node, node.target + "." if node.target else "")
            else:
                rule = op_rule(node.target)
                if rule is None:
                    for v in node.inputs + node.outputs:
                        self.block_value(v, reason=(node.target, f"op #{node.index}, inside {node.site[0]}"))
                    continue
                rule(self, node)
            if any(r[0] is node for r in self.reshapes):
                deferred.append((node, set(self.mentioned)))
            else:
                self._close_node(node)
        for v in self.graph.inputs + ([] if self.prune_outputs else self.graph.outputs):
            self.block_value(v)
        for v in self.graph.values.values():
            if v.producer is None and v.param is None and v not in self.graph.inputs:
                self.block_value(v)  # a constant made outside the trace: its size is fixed
        for vid in blocked_values:
            self.block_value(self.graph.values[vid])
        for name in ignore_params:  # outputs kept: vectors whole, matrices/kernels on dim 0
            t = self.tensors[name]
            for d in range(t.ndim):
                if t.ndim == 1 or d != 1 or "Transpose" in self.owner_type.get(name, ""):
                    self.blocked.add(self._ensure(Slot.param(name, d), t.shape[d]))
        self._resolve_reshapes(deferred)

    # reshapes -------------------------------------------------------------
    def _dim_flags(self) -> tuple[dict[Slot, int], np.ndarray, np.ndarray]:
        slots = list(self.base)
        pos = {s: i for i, s in enumerate(slots)}
        a = np.array([pos[x] for x, _ in self.slot_links], dtype=np.int64)
        b = np.array([pos[y] for _, y in self.slot_links], dtype=np.int64)
        m = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(slots), len(slots)))
        _, lab = connected_components(m, directed=False)
        blocked = np.zeros(lab.max() + 1 if len(lab) else 0, bool)
        has_param = np.zeros_like(blocked)
        for s, i in pos.items():
            if s in self.blocked or s in self.unknown:
                blocked[lab[i]] = True
            if s[0] == "p":
                has_param[lab[i]] = True
        return {s: lab[i] for s, i in pos.items()}, blocked, has_param

    def _resolve_reshapes(self, deferred: list[tuple[OpNode, set]]) -> None:
        if not deferred:
            return
        comp, blocked, has_param = self._dim_flags()

        def score(v: Value, d: int, inferred: set[int] = frozenset()) -> tuple:
            slot = Slot.of(v, d)
            c = comp.get(slot)
            free = c is None or not blocked[c]
            # a size the code asked to infer (-1) is the one it lets vary: (-1, head_size) splits heads
            return (free, d in inferred, c is not None and bool(has_param[c]), v.shape[d], -d)

        by_node = {id(n): m for n, m in deferred}
        # first the reshapes whose carriers are forced (one dim each side) or named by the code
        # (an inferred -1 among split dims: (-1, head_size) splits into heads); what they link
        # then tells the ambiguous ones (merges like (heads, head_size) -> C) where units run
        decided = [r for r in self.reshapes if _decided(r[0], r[1], r[2])]
        rest = [r for r in self.reshapes if not _decided(r[0], r[1], r[2])]
        for batch in (decided, rest):
            if batch is rest and decided:
                comp, blocked, has_param = self._dim_flags()
            for node, src, dst in batch:
                self._node, self.mentioned = node, by_node[id(node)]
                inferred = _inferred_dims(node)
                for s_dims, d_dims in _factor_groups(src.shape, dst.shape):
                    s_dims = [d for d in s_dims if src.shape[d] > 1]
                    d_dims = [d for d in d_dims if dst.shape[d] > 1]
                    if not s_dims or not d_dims:
                        continue
                    cs = max(s_dims, key=lambda d: score(src, d))
                    cd = max(d_dims, key=lambda d: score(dst, d, inferred))
                    flat = np.arange(int(np.prod([src.shape[d] for d in s_dims])))
                    self.link(self.value(src, cs), _digit(flat, src.shape, s_dims, cs),
                              self.value(dst, cd), _digit(flat, dst.shape, d_dims, cd))
        for node, _ in deferred:
            self.mentioned = by_node[id(node)]
            self._close_node(node)

    # components -----------------------------------------------------------
    def groups(self, graph: OpGraph) -> tuple[list[ChannelGroup], list[str]]:
        n = self.n
        a = np.concatenate(self._ea) if self._ea else np.zeros(0, np.int64)
        b = np.concatenate(self._eb) if self._eb else np.zeros(0, np.int64)
        m = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
        ncomp, lab = connected_components(m, directed=False)
        bad = np.zeros(ncomp, bool)
        unknown_comp: dict[int, str] = {}
        for s in self.blocked:
            bad[lab[self.base[s]:self.base[s] + self.sizes[s]]] = True
        for s, why in self.unknown.items():
            for c in np.unique(lab[self.base[s]:self.base[s] + self.sizes[s]]):
                unknown_comp.setdefault(int(c), why)
        param = np.zeros(ncomp, bool)
        for s in self.base:
            if s[0] == "p":
                param[lab[self.base[s]:self.base[s] + self.sizes[s]]] = True
        problems = sorted({why for c, why in unknown_comp.items() if param[c] and not bad[c]})
        for c in unknown_comp:
            bad[c] = True
        good = param & ~bad
        comps, slots, idxs = [], [], []
        slot_list = list(self.base)
        for k, s in enumerate(slot_list):
            lab_s = lab[self.base[s]:self.base[s] + self.sizes[s]]
            sel = np.nonzero(good[lab_s])[0]
            if sel.size:
                comps.append(lab_s[sel]); idxs.append(sel); slots.append(np.full(sel.size, k))
        if not comps:
            return [], problems
        comps, slots, idxs = map(np.concatenate, (comps, slots, idxs))
        order = np.lexsort((idxs, slots, comps))
        comps, slots, idxs = comps[order], slots[order], idxs[order]
        # (unit, slot) runs: their slot and length make each unit's signature
        key_change = np.nonzero((np.diff(comps) != 0) | (np.diff(slots) != 0))[0] + 1
        run_start = np.concatenate([[0], key_change])
        run_len = np.diff(np.concatenate([run_start, [len(comps)]]))
        run_comp, run_slot = comps[run_start], slots[run_start]
        comp_first_run = np.concatenate([[0], np.nonzero(np.diff(run_comp))[0] + 1])
        n_runs = np.diff(np.concatenate([comp_first_run, [len(run_comp)]]))
        # a unit's signature (its axes and their widths) hashed without a Python loop per unit
        pos = np.arange(len(run_comp)) - np.repeat(comp_first_run, n_runs)
        code = (run_slot.astype(np.uint64) << np.uint64(20)) + run_len.astype(np.uint64)
        rng = np.random.default_rng(12345)
        hashes = []
        for _ in range(2):
            mult = rng.integers(1, 2 ** 62, size=int(pos.max()) + 1, dtype=np.uint64) | np.uint64(1)
            with np.errstate(over="ignore"):
                hashes.append(np.add.reduceat(code * mult[pos], comp_first_run))
        key = np.stack([hashes[0], hashes[1], n_runs.astype(np.uint64)], 1)
        _, sig_id = np.unique(key, axis=0, return_inverse=True)
        sig_id = sig_id.ravel()
        unit_comp = run_comp[comp_first_run]
        unit_start = dict(zip(unit_comp.tolist(), run_start[comp_first_run].tolist()))
        sigs: dict[tuple, list[int]] = {}
        for sid in range(int(sig_id.max()) + 1 if len(sig_id) else 0):
            members = np.nonzero(sig_id == sid)[0]
            r0, nr = comp_first_run[members[0]], n_runs[members[0]]
            sig = (tuple(run_slot[r0:r0 + nr].tolist()), tuple(run_len[r0:r0 + nr].tolist()))
            sigs[sig] = unit_comp[members].tolist()
        groups = []
        for (sig_slots, sig_lens), units in sigs.items():
            offsets = np.concatenate([[0], np.cumsum(sig_lens)[:-1]])
            starts = np.array([unit_start[c] for c in units])
            matrices = {}
            for s_id, length, off in zip(sig_slots, sig_lens, offsets):
                pos = starts[:, None] + off + np.arange(length)[None, :]
                matrices[slot_list[s_id]] = idxs[pos]
            # the producers (output axis of a weight matrix or kernel) name the group, in model order
            rank = self.tensor_rank
            producers = sorted((s for s in matrices if s[0] == "p" and self.roles.get(s) == "out"),
                               key=lambda s: (rank.get(s[1], 0), s[2]))
            pslots = producers + sorted((s for s in matrices if s[0] == "p" and s not in producers),
                                        key=lambda s: (rank.get(s[1], 0), s[2]))
            order_u = np.argsort(matrices[pslots[0]][:, 0], kind="stable")
            matrices = {s: m[order_u] for s, m in matrices.items()}
            name = pslots[0][1].rsplit(".", 1)[0] + (f" (+{len(producers) - 1})" if len(producers) > 1 else "")
            groups.append(ChannelGroup(len(groups), name, matrices, pslots,
                                       {s: self.roles[s] for s in pslots if s in self.roles}))
        groups.sort(key=lambda g: rank.get(g.param_slots[0][1], 0))
        for i, g in enumerate(groups):
            g.index = i
        return groups, problems


def _decided(node: OpNode, src: Value, dst: Value) -> bool:
    inferred = _inferred_dims(node)
    for s_dims, d_dims in _factor_groups(src.shape, dst.shape):
        s_dims = [d for d in s_dims if src.shape[d] > 1]
        d_dims = [d for d in d_dims if dst.shape[d] > 1]
        if len(s_dims) > 1 or (len(d_dims) > 1 and not inferred & set(d_dims)):
            return False
    return True


def _inferred_dims(node: OpNode) -> set[int]:
    """Output dims a view/reshape call gave as -1."""
    if node.target not in ("view", "reshape"):
        return set()
    sizes = [a for a in node.args[1:] if not isinstance(a, dict)]
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = list(sizes[0])
    return {d for d, a in enumerate(sizes) if isinstance(a, int) and a == -1}


def _factor_groups(src: tuple, dst: tuple) -> list[tuple[list[int], list[int]]]:
    """Split two shapes of equal numel into runs of dims with equal products."""
    out, i, j = [], 0, 0
    while i < len(src) or j < len(dst):
        si, dj = [i], [j]
        ps = src[i] if i < len(src) else 1
        pd = dst[j] if j < len(dst) else 1
        i, j = i + 1, j + 1
        while ps != pd:
            if ps < pd and i < len(src):
                ps *= src[i]; si.append(i); i += 1
            elif j < len(dst):
                pd *= dst[j]; dj.append(j); j += 1
            else:
                break
        out.append(([d for d in si if d < len(src)], [d for d in dj if d < len(dst)]))
    return out


def _digit(flat: np.ndarray, shape: tuple, dims: list[int], d: int) -> np.ndarray:
    """Index along dim `d` of each flat position within the run of `dims` (row-major)."""
    inner = int(np.prod([shape[k] for k in dims if k > d]))
    return (flat // inner) % shape[d]


def model_tensors(model: nn.Module) -> dict[str, "object"]:
    """Every parameter and buffer by every name it has (a tied weight appears once per owner)."""
    tensors = dict(model.named_parameters(remove_duplicate=False))
    tensors.update(dict(model.named_buffers(remove_duplicate=False)))
    return tensors


def _refuse_parametrizations(model: nn.Module) -> None:
    from torch.nn.utils import parametrize

    for name, m in model.named_modules():
        if parametrize.is_parametrized(m):
            which = ", ".join(sorted(m.parametrizations.keys()))
            raise ConfigError(
                f"{name or 'the model'}.{which} is computed by a parametrization "
                f"({type(m.parametrizations[next(iter(m.parametrizations))][0]).__name__}); pruning it would change "
                "what the parametrization computes.\nhelp: bake it into a plain weight first with "
                f"torch.nn.utils.parametrize.remove_parametrizations(model.get_submodule({name!r}), {which.split(',')[0]!r})")


def build_groups(model: nn.Module, graph: OpGraph, ignore: list[str] | None = None,
                 strict: bool = True, blocked_nodes: set[int] = frozenset(),
                 blocked_values: set[int] = frozenset(), prune_outputs: bool = False) -> list[ChannelGroup]:
    """Channel groups of `model` traced as `graph`. Modules named in `ignore` keep their output
    channels (their inputs may still shrink when the layer before them is pruned). The model's
    outputs keep their size unless `prune_outputs`.
    Raises UnsupportedLayerError when an unknown op costs prunable channels (unless strict=False)."""
    _refuse_parametrizations(model)
    tensors = model_tensors(model)
    ignore = ignore or []
    ignore_params = {n for n in tensors if any(n == p or n.startswith(p + ".") for p in ignore)}
    coupler = Coupler(graph, tensors)
    coupler.prune_outputs = prune_outputs
    coupler.owner_type = {f"{mn}.{tn}" if mn else tn: type(m).__name__ for mn, m in model.named_modules()
                          for tn, _ in list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False))}
    coupler.link_aliases(model)
    coupler.run(ignore_params, blocked_nodes, blocked_values)
    groups, problems = coupler.groups(graph)
    if problems and strict:
        raise UnsupportedLayerError(*problems[0])
    return groups
