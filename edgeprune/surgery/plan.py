"""PrunePlan: which indices of which tensors were removed, by qualified name. JSON on disk,
replayable on a fresh instance of the same architecture without tracing it again."""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeprune.errors import PlanMismatchError
from edgeprune.graph.coupling import ChannelGroup

PLAN_VERSION = 1


@dataclass
class PrunePlan:
    """`removed[tensor][dim]` = sorted indices removed along `dim` of that parameter/buffer.
    `shapes[tensor]` = its shape before pruning (checked when replaying). `replaced[module]` =
    "identity" for whole layers removed (layer pruning), replaced before any cut."""

    removed: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    shapes: dict[str, list[int]] = field(default_factory=dict)
    groups: list[dict] = field(default_factory=list)  # for reports: name, units before, removed
    meta: dict = field(default_factory=dict)
    replaced: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_groups(cls, groups: list[ChannelGroup], removed_units: dict[int, list[int]],
                    tensors: dict[str, "object"]) -> "PrunePlan":
        plan = cls()
        acc: dict[str, dict[int, list[np.ndarray]]] = {}
        for g in groups:
            units = removed_units.get(g.index, [])
            producing = g.producer_slots or [s for s in g.param_slots if g.roles.get(s) not in (None, "in")]
            layers = [s.key.rsplit(".", 1)[0] for s in producing]
            plan.groups.append({"name": g.name, "units": len(g), "removed": len(units),
                                "channels_per_unit": g.channels_per_unit, "layer": layers[0] if layers else ""})
            for slot, idx in g.removed(units).items():
                if slot[0] == "p":
                    acc.setdefault(slot[1], {}).setdefault(slot[2], []).append(idx)
        for name, dims in acc.items():
            plan.removed[name] = {d: np.unique(np.concatenate(arrs)).tolist() for d, arrs in dims.items()}
            plan.shapes[name] = list(tensors[name].shape)
        return plan

    def merge(self, later: "PrunePlan") -> "PrunePlan":
        """The plan equal to applying `self`, then `later` (whose indices refer to the smaller model)."""
        out = PrunePlan({k: {d: list(v) for d, v in dims.items()} for k, dims in self.removed.items()},
                        dict(self.shapes), self.groups + later.groups, {**self.meta, **later.meta},
                        {**self.replaced, **later.replaced})
        for name, dims in later.removed.items():
            out.shapes.setdefault(name, later.shapes[name])
            for d, idx in dims.items():
                before = out.removed.setdefault(name, {}).setdefault(d, [])
                kept = [i for i in range(out.shapes[name][d]) if i not in set(before)]
                out.removed[name][d] = sorted(set(before) | {kept[i] for i in idx})
        return out

    @property
    def is_empty(self) -> bool:
        return not self.replaced and not any(any(v) for dims in self.removed.values() for v in dims.values())

    def to_dict(self) -> dict:
        return {"version": PLAN_VERSION, "removed": {k: {str(d): v for d, v in dims.items()}
                                                     for k, dims in self.removed.items()},
                "shapes": self.shapes, "groups": self.groups, "meta": self.meta,
                **({"replaced": self.replaced} if self.replaced else {})}

    @classmethod
    def from_dict(cls, data: dict) -> "PrunePlan":
        """Build a plan from its JSON form, refusing anything malformed (the file is untrusted)."""
        bad = lambda what: PlanMismatchError(f"malformed pruning plan: {what}")  # noqa: E731
        if not isinstance(data, dict):
            raise bad("the top level is not an object")
        if data.get("version") != PLAN_VERSION:
            raise bad(f"version {data.get('version')!r} is not {PLAN_VERSION}")
        removed_in, shapes_in = data.get("removed"), data.get("shapes")
        if not isinstance(removed_in, dict) or not isinstance(shapes_in, dict):
            raise bad("'removed' and 'shapes' must be objects")
        shapes: dict[str, list[int]] = {}
        for name, shape in shapes_in.items():
            if not (isinstance(shape, list) and 0 < len(shape) <= 8 and all(_is_count(n) for n in shape)):
                raise bad(f"shape of {name!r} must be a list of 1-8 positive integers")
            shapes[name] = list(shape)
        removed: dict[str, dict[int, list[int]]] = {}
        for name, dims in removed_in.items():
            if name not in shapes:
                raise bad(f"{name!r} is pruned but has no recorded shape")
            if not isinstance(dims, dict):
                raise bad(f"removed[{name!r}] must map dimensions to index lists")
            removed[name] = {}
            for d, idx in dims.items():
                if not (isinstance(d, str) and d.isdigit() and int(d) < len(shapes[name])):
                    raise bad(f"{name!r} has no dimension {d!r}")
                size = shapes[name][int(d)]
                if not (isinstance(idx, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in idx)):
                    raise bad(f"removed[{name!r}][{d}] must be a list of integers")
                if any(i < 0 or i >= size for i in idx) or len(set(idx)) != len(idx):
                    raise bad(f"removed[{name!r}][{d}] has indices outside 0..{size - 1} or repeated ones")
                if len(idx) >= size:
                    raise bad(f"removed[{name!r}][{d}] removes every one of its {size} channels")
                removed[name][int(d)] = sorted(idx)
        groups = data.get("groups", [])
        if not (isinstance(groups, list) and all(isinstance(g, dict) and isinstance(g.get("name", ""), str)
                                                 and _is_count(g.get("units", 1)) and isinstance(g.get("removed", 0), int)
                                                 and 0 <= g.get("removed", 0) <= g.get("units", 1) for g in groups)):
            raise bad("'groups' must be a list of {name, units, removed} records")
        meta = data.get("meta", {})
        if not isinstance(meta, dict):
            raise bad("'meta' must be an object")
        replaced = data.get("replaced", {})
        if not (isinstance(replaced, dict) and all(isinstance(k, str) and k and v == "identity"
                                                   for k, v in replaced.items())):
            raise bad("'replaced' must map module names to \"identity\"")
        return cls(removed, shapes, groups, meta, dict(replaced))

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PrunePlan":
        from edgeprune.safe_json import read_json
        return cls.from_dict(read_json(path, what="pruning plan"))


def _is_count(n: object) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and 0 < n <= 2 ** 40


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write via a temporary file and rename: never a half-written file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
