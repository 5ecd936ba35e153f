"""Apply a PrunePlan: slice tensors in place, then let each layer's rule fix its attributes."""
from __future__ import annotations

import torch
from torch import nn

from edgeprune.errors import PlanMismatchError
from edgeprune.rules.base import attribute_rule
from edgeprune.surgery.plan import PrunePlan

# attributes some models read in forward() for a width (torchvision's ViT reads hidden_dim)
_WIDTH_ATTRS = ("hidden_dim", "embed_dim", "dim", "channels", "num_features", "hidden_size", "width")


def _keep_index(size: int, removed: list[int], device) -> torch.Tensor:
    if min(removed) < 0 or max(removed) >= size or len(set(removed)) != len(removed) or len(removed) >= size:
        raise PlanMismatchError(f"the plan removes indices {min(removed)}..{max(removed)} ({len(removed)} of them) "
                                f"from a dimension of size {size}.\nhelp: the plan is damaged; prune again")
    mask = torch.ones(size, dtype=torch.bool)
    mask[torch.as_tensor(removed, dtype=torch.long)] = False
    return mask.nonzero().squeeze(1).to(device)


def _replace_modules(model: nn.Module, replaced: dict[str, str]) -> None:
    modules = dict(model.named_modules())
    missing = [n for n in replaced if n not in modules or not n]
    if missing:
        raise PlanMismatchError(f"the plan replaces '{missing[0]}', which this model does not have.\n"
                                "help: apply the plan to the architecture it was made for.")
    for name in replaced:  # "identity" is the only replacement a plan may name (checked on load)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, nn.Identity())


def apply_plan(model: nn.Module, plan: PrunePlan) -> nn.Module:
    """Prune `model` in place following `plan` and return it: whole layers replaced first,
    then every tensor cut."""
    if plan.replaced:
        _replace_modules(model, plan.replaced)
    owners: dict[str, tuple[nn.Module, str]] = {}
    for mname, mod in model.named_modules(remove_duplicate=False):
        for tname, _ in list(mod.named_parameters(recurse=False)) + list(mod.named_buffers(recurse=False)):
            owners.setdefault(f"{mname}.{tname}" if mname else tname, (mod, tname))
    for name, shape in plan.shapes.items():
        if name not in owners:
            raise PlanMismatchError(f"the plan prunes '{name}', which this model does not have.\n"
                                    "help: apply the plan to the architecture it was made for.")
        actual = list(getattr(owners[name][0], owners[name][1]).shape)
        if actual != shape:
            raise PlanMismatchError(f"'{name}' has shape {actual}, the plan expects {shape}.\n"
                                    "help: apply the plan to a fresh, unpruned instance of the same architecture.")
    for name, dims in plan.removed.items():  # every index checked before anything is cut
        if name not in plan.shapes:
            raise PlanMismatchError(f"the plan prunes '{name}' without recording its shape.\n"
                                    "help: the plan is damaged; prune again")
        for d, idx in dims.items():
            if not 0 <= d < len(plan.shapes[name]):
                raise PlanMismatchError(f"the plan prunes dimension {d} of '{name}', which has "
                                        f"{len(plan.shapes[name])}.\nhelp: the plan is damaged; prune again")
            if idx:
                _keep_index(plan.shapes[name][d], idx, "cpu")
    # a tensor shared by several owners (tied weights) is cut once and set on every owner; the
    # groups are found by name before anything is cut (a replaced tensor has a new identity)
    by_id: dict[int, list[str]] = {}
    for name, (mod, tname) in owners.items():
        by_id.setdefault(id(getattr(mod, tname)), []).append(name)
    aliases = {name: group for group in by_id.values() for name in group}
    touched: dict[int, tuple[nn.Module, dict[int, tuple[int, int]]]] = {}
    done: set[str] = set()
    for name, dims in plan.removed.items():
        if name in done:
            continue
        mod, tname = owners[name]
        t = getattr(mod, tname)
        shared = aliases[name]
        for other in shared:
            if plan.removed.get(other, dims) != dims:
                raise PlanMismatchError(f"'{name}' and '{other}' are one shared tensor, but the plan cuts them "
                                        "differently.\nhelp: the plan is damaged; prune again")
        done.update(shared)
        new = t.detach()
        sizes: dict[int, tuple[int, int]] = {}
        for d, idx in dims.items():
            if idx:
                sizes.setdefault(d, (t.shape[d], t.shape[d] - len(idx)))
                new = new.index_select(d, _keep_index(t.shape[d], idx, t.device))
        with torch.no_grad():
            replacement = nn.Parameter(new, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else new
        for alias in shared:
            owner, attr = owners[alias]
            touched.setdefault(id(owner), (owner, {}))[1].update(sizes)
            if isinstance(t, nn.Parameter):
                setattr(owner, attr, replacement)
            else:
                owner._buffers[attr] = replacement
    for mod, sizes in touched.values():
        rule = attribute_rule(mod)
        if rule is not None:
            rule.update(mod)
        elif sizes:
            for attr in _WIDTH_ATTRS:
                v = getattr(mod, attr, None)
                for old, new in sizes.values():
                    if isinstance(v, int) and not isinstance(v, bool) and v == old:
                        setattr(mod, attr, new)
    return model
