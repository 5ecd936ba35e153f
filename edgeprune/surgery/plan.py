"""PrunePlan: which indices of which tensors were removed, by qualified name. JSON on disk,
replayable on a fresh instance of the same architecture without tracing it again."""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeprune.graph.coupling import ChannelGroup

PLAN_VERSION = 1


@dataclass
class PrunePlan:
    """`removed[tensor][dim]` = sorted indices removed along `dim` of that parameter/buffer.
    `shapes[tensor]` = its shape before pruning (checked when replaying)."""

    removed: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    shapes: dict[str, list[int]] = field(default_factory=dict)
    groups: list[dict] = field(default_factory=list)  # for reports: name, units before, removed
    meta: dict = field(default_factory=dict)

    @classmethod
    def from_groups(cls, groups: list[ChannelGroup], removed_units: dict[int, list[int]],
                    tensors: dict[str, "object"]) -> "PrunePlan":
        plan = cls()
        acc: dict[str, dict[int, list[np.ndarray]]] = {}
        for g in groups:
            units = removed_units.get(g.index, [])
            layers = [name.rsplit(".", 1)[0] for _, name, dim in g.param_slots if dim == 0]
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
                        dict(self.shapes), self.groups + later.groups, {**self.meta, **later.meta})
        for name, dims in later.removed.items():
            out.shapes.setdefault(name, later.shapes[name])
            for d, idx in dims.items():
                before = out.removed.setdefault(name, {}).setdefault(d, [])
                kept = [i for i in range(out.shapes[name][d]) if i not in set(before)]
                out.removed[name][d] = sorted(set(before) | {kept[i] for i in idx})
        return out

    @property
    def is_empty(self) -> bool:
        return not any(any(v) for dims in self.removed.values() for v in dims.values())

    def to_dict(self) -> dict:
        return {"version": PLAN_VERSION, "removed": {k: {str(d): v for d, v in dims.items()}
                                                     for k, dims in self.removed.items()},
                "shapes": self.shapes, "groups": self.groups, "meta": self.meta}

    @classmethod
    def from_dict(cls, data: dict) -> "PrunePlan":
        if data.get("version") != PLAN_VERSION:
            raise ValueError(f"pruning plan version {data.get('version')!r} is not {PLAN_VERSION}")
        removed = {k: {int(d): [int(i) for i in v] for d, v in dims.items()} for k, dims in data["removed"].items()}
        return cls(removed, {k: list(v) for k, v in data["shapes"].items()}, data.get("groups", []), data.get("meta", {}))

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PrunePlan":
        return cls.from_dict(json.loads(Path(path).read_text()))


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
