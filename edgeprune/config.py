"""Method configs: one frozen dataclass per method, registered by name (edgeprune.registry),
run by one verb (`prune`, `sparsify`, `search`, or training with `prune_while_training`).

Fields are declared with `option(...)`: a default, one line of help, bounds or choices. The
bounds are checked when a config is made (one ConfigError line naming the field and what it
must be), the command line builds its flags from the same fields (`--prune-ratio` for
`prune_ratio`), and `to_dict` / `config_from_dict` round-trip a config through JSON with its
method name and version.

    @register_method("my_method")
    @dataclass(frozen=True)
    class MyConfig(SparsifyConfig):
        \"\"\"What it does, in one line (shown in `edgeprune sparsify --help` and docs/methods.md).\"\"\"
        sparsity: float = option(0.5, "fraction of weights removed", low=0, high=1, high_open=True)
        def masks(self, model, inputs): ...
"""
from __future__ import annotations

import math
import types
import typing
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, ClassVar

from edgeprune.errors import ConfigError


def option(default: Any, help: str, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, choices: tuple | None = None,
           cli: bool = True, aliases: tuple[str, ...] = (), registry: str | None = None) -> Any:
    """A config field with its help text and bounds; `cli=False` keeps it out of the command
    line (Python-only options); `aliases` are extra flags that set it (older names);
    `registry` names the registry whose names it takes ("criterion", "recovery")."""
    meta = {"help": help, "low": low, "high": high, "low_open": low_open, "high_open": high_open,
            "choices": choices, "cli": cli, "aliases": aliases, "registry": registry}
    if isinstance(default, (dict, list, set)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


def bounds_text(meta: dict) -> str:
    """'in [0, 1)', '>= 1', ... for a field's bounds ('' when it has none)."""
    lo, hi = meta.get("low"), meta.get("high")
    if lo is not None and hi is not None:
        return f"in {'(' if meta['low_open'] else '['}{lo:g}, {hi:g}{')' if meta['high_open'] else ']'}"
    if lo is not None:
        return f"{'>' if meta['low_open'] else '>='} {lo:g}"
    if hi is not None:
        return f"{'<' if meta['high_open'] else '<='} {hi:g}"
    return ""


def _out_of_bounds(v: Any, meta: dict) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    if not math.isfinite(v):
        return True
    lo, hi = meta.get("low"), meta.get("high")
    if lo is not None and (v <= lo if meta["low_open"] else v < lo):
        return True
    return hi is not None and (v >= hi if meta["high_open"] else v > hi)


def field_type(cls: type, f: Field) -> Any:
    """The field's annotation resolved to a type (configs use `from __future__ import annotations`)."""
    hints = typing.get_type_hints(cls)
    return hints.get(f.name, Any)


def scalar_type(tp: Any) -> tuple[type | None, bool]:
    """(int/float/str/bool, optional?) for `X` or `X | None`; (None, _) for other annotations."""
    optional = False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        tp = args[0] if len(args) == 1 else None
    return (tp if tp in (int, float, str, bool) else None), optional


@dataclass(frozen=True)
class MethodConfig:
    """Base of every method config (see the module docstring)."""

    method: ClassVar[str] = ""  # set by @register_method
    verb: ClassVar[str] = ""
    version: ClassVar[int] = 1

    def __post_init__(self) -> None:
        for f in fields(self):
            meta = f.metadata
            if not meta:
                continue
            v = getattr(self, f.name)
            if v is None:
                continue
            if meta.get("choices") is not None and v not in meta["choices"]:
                raise ConfigError(f"{self.method or type(self).__name__}: {f.name} must be one of "
                                  f"{list(meta['choices'])}, got {v!r}")
            if _out_of_bounds(v, meta):
                raise ConfigError(f"{self.method or type(self).__name__}: {f.name} must be "
                                  f"{bounds_text(meta) or 'finite'}, got {v}")

    @classmethod
    def options(cls) -> list[Field]:
        """The fields the command line offers (declared with `option`, not `cli=False`)."""
        return [f for f in fields(cls) if f.metadata and f.metadata.get("cli", True)]

    def to_dict(self) -> dict:
        opts = {}
        for f in fields(self):
            v = getattr(self, f.name)
            opts[f.name] = list(v) if isinstance(v, tuple) else v
        return {"method": self.method, "version": self.version, "options": opts}


def config_from_dict(data: dict) -> MethodConfig:
    """The config `MethodConfig.to_dict` wrote (its method looked up in the registry)."""
    from edgeprune.registry import METHODS
    if not isinstance(data, dict) or not isinstance(data.get("method"), str):
        raise ConfigError("a method config is {'method': name, 'version': n, 'options': {...}}")
    cls = METHODS.get(data["method"]).obj
    if data.get("version", 1) > cls.version:
        raise ConfigError(f"{data['method']} config version {data['version']} is newer than this edgeprune's "
                          f"({cls.version}); upgrade edgeprune")
    known = {f.name: f for f in fields(cls)}
    opts = data.get("options", {})
    unknown = sorted(set(opts) - set(known))
    if unknown:
        raise ConfigError(f"{data['method']} has no option {unknown[0]!r}; its options: {sorted(known)}")
    values = {k: tuple(v) if isinstance(v, list) and isinstance(known[k].default, tuple) else v for k, v in opts.items()}
    return cls(**values)


class PruneMethodConfig(MethodConfig):
    """A one-shot structured method: `edgeprune.prune(model, config, example_inputs=x)`."""

    verb = "prune"


class SparsifyConfig(MethodConfig):
    """An unstructured or N:M method: `edgeprune.sparsify(model, config, ...)`. Subclasses
    give `masks(model, inputs) -> SparseMasks` (edgeprune.sparse.base.SparsifyInputs); those
    that prune while training set `trains = True` (no fine-tuning is added after them)."""

    verb = "sparsify"
    trains: ClassVar[bool] = False


class SearchConfig(MethodConfig):
    """A per-layer width search for a budget: `edgeprune.search(model, config, task=...)`."""

    verb = "search"


class TrainingMethodConfig(MethodConfig):
    """A method that prunes while the model trains: `edgeprune.prune_while_training(...)`.
    Subclasses give `build(model, example_inputs, steps) -> TrainingHooks` and
    `finalize(hooks, model, example_inputs, task) -> PruneResult`, or `run(model, task,
    train_config, example_inputs)` for a method with its own training loop. `keep_best`:
    whether the best-validation checkpoint may be restored; `replay_on_load`: the hooks'
    `prepare` (structural changes) runs again when a saved model is loaded; `trains_after_prune`:
    the method goes on training the pruned network itself (no recovery is added after it);
    `shortcuts`: command-line flags that choose the method and set one option (`{"--fbs": "density"}`)."""

    verb = "train"
    keep_best: ClassVar[bool] = True
    trains_after_prune: ClassVar[bool] = False
    replay_on_load: ClassVar[bool] = False
    shortcuts: ClassVar[dict] = {}


__all__ = ["MethodConfig", "PruneMethodConfig", "SearchConfig", "SparsifyConfig", "TrainingMethodConfig",
           "bounds_text", "config_from_dict", "option", "scalar_type", "field_type", "MISSING"]
