"""Registries: every method, criterion, recovery and federated strategy enters edgeprune
through one, by name. Registering is one decorator in the method's own file, and a registry
finds the files of its plugin packages itself (every module of the package is imported on the
first lookup), so adding a method is adding a file: no list, table or CLI to edit. Packages
installed separately join through the entry-point group `edgeprune.plugins` (each entry a
module to import).

    @register_method("wanda")
    @dataclass(frozen=True)
    class WandaConfig(SparsifyConfig): ...

    METHODS.names(verb="sparsify")   # ['dns', 'dpf', 'gmp', ..., 'wanda']
    METHODS.get("wanda").obj          # the config class
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from edgeprune.errors import ConfigError


@dataclass(frozen=True)
class Entry:
    """One registered item: its name, the object (a config class or a function), and for
    methods the verb that runs it ("prune", "sparsify", "search", "train")."""

    name: str
    obj: Any
    verb: str = ""
    info: dict = field(default_factory=dict)

    @property
    def summary(self) -> str:
        """The first line of the object's docstring."""
        doc = (getattr(self.obj, "__doc__", None) or "").strip()
        return doc.splitlines()[0].rstrip(".") if doc else ""


class Registry:
    """Names -> entries for one kind of thing, filled by decorators in the plugin packages."""

    def __init__(self, kind: str, packages: Iterable[str] = ()):
        self.kind, self.packages = kind, tuple(packages)
        self._entries: dict[str, Entry] = {}
        self._discovered = False

    def register(self, name: str, obj: Any = None, *, verb: str = "", **info) -> Any:
        """`registry.register("name", obj)`, or as a decorator `@registry.register("name")`."""
        def add(o: Any) -> Any:
            old = self._entries.get(name)
            if old is not None and old.obj is not o and getattr(old.obj, "__qualname__", None) != \
                    getattr(o, "__qualname__", None):
                raise ConfigError(f"two {self.kind}s are registered as {name!r}: {old.obj!r} and {o!r}")
            self._entries[name] = Entry(name, o, verb or getattr(o, "verb", ""), info)
            return o
        return add if obj is None else add(obj)

    def discover(self) -> None:
        """Import every module of the plugin packages (and entry-point plugins) once."""
        if self._discovered:
            return
        self._discovered = True
        for package in self.packages:
            pkg = importlib.import_module(package)
            for m in pkgutil.iter_modules(getattr(pkg, "__path__", [])):
                if not m.name.startswith("_"):
                    importlib.import_module(f"{package}.{m.name}")
        _load_entry_point_plugins()

    def get(self, name: str, verb: str | None = None) -> Entry:
        self.discover()
        entry = self._entries.get(name)
        if entry is None or (verb is not None and entry.verb != verb):
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of {self.names(verb)}")
        return entry

    def names(self, verb: str | None = None) -> list[str]:
        return [e.name for e in self.entries(verb)]

    def entries(self, verb: str | None = None) -> list[Entry]:
        self.discover()
        return sorted((e for e in self._entries.values() if verb is None or e.verb == verb), key=lambda e: e.name)

    def __contains__(self, name: str) -> bool:
        self.discover()
        return name in self._entries


_plugins_loaded = False


def _load_entry_point_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points
    for ep in entry_points(group="edgeprune.plugins"):
        ep.load()


# the registries, each with the packages whose files register into it
CRITERIA = Registry("criterion", ("edgeprune.criteria",))
METHODS = Registry("method", ("edgeprune.methods", "edgeprune.sparse", "edgeprune.search"))
RECOVERIES = Registry("recovery", ("edgeprune.recovery",))
STRATEGIES = Registry("federated strategy", ("edgeprune.federated.strategies",))


def register_method(name: str) -> Callable[[type], type]:
    """Class decorator for a method's config: `@register_method("fpgm_soft")`; the config's
    base class (PruneMethodConfig, SparsifyConfig, SearchConfig, TrainingConfig) says which
    verb runs it."""
    def wrap(cls: type) -> type:
        cls.method = name
        METHODS.register(name, cls, verb=cls.verb)
        return cls
    return wrap


def list_methods(verb: str | None = None) -> list[str]:
    """Names of the registered methods (of one verb: "prune", "sparsify", "search", "train")."""
    return METHODS.names(verb)


def method_config(name: str, **options: Any):
    """The config of method `name` with `options` (the rest at their defaults):
    `method_config("wanda", sparsity=0.5)`."""
    return METHODS.get(name).obj(**options)


__all__ = ["CRITERIA", "Entry", "METHODS", "RECOVERIES", "Registry", "STRATEGIES", "list_methods", "method_config",
           "register_method"]
