"""Command-line options generated from the method registry: `--method` takes every method
registered for a command's verbs, and every option of their configs becomes a flag of the same
name (`prune_ratio` -> `--prune-ratio`), typed and bounded as the config declares it. A method
registered in its own file is on the command line at once; this module names no method.

Only flags given on the command line (or in `--config run.toml`) reach the config: every
method keeps its own defaults. A flag the chosen method does not take is ignored with a
warning saying which methods take it."""
from __future__ import annotations

import argparse
import warnings
from dataclasses import MISSING, fields
from pathlib import Path

import tomllib

from edgeprune.cli.common import number
from edgeprune.config import bounds_text, field_type, scalar_type
from edgeprune.errors import ConfigError
from edgeprune.registry import CRITERIA, METHODS, RECOVERIES

_REGISTRIES = {"criterion": CRITERIA, "recovery": RECOVERIES}
_SHORTCUT = "shortcut_"


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"must be true or false, got {text!r}")


_BOUNDS = ("low", "high", "low_open", "high_open")


def _typed(tp, metas: list[dict] | None = None) -> dict:
    """argparse keywords for a field's annotation: a type that refuses a value outside the
    field's bounds (when every method taking it has the same), or nargs for a tuple."""
    scalar, _ = scalar_type(tp)
    if scalar is bool:
        return {"type": _parse_bool, "metavar": "true|false"}
    if scalar in (int, float):
        bounds = {tuple(m.get(k) for k in _BOUNDS) for m in metas or [{}]}
        lo, hi, lo_open, hi_open = bounds.pop() if len(bounds) == 1 else (None, None, False, False)
        return {"type": number(scalar, lo, hi, bool(lo_open), bool(hi_open))}
    if scalar is not None:
        return {"type": scalar}
    if getattr(tp, "__origin__", None) is tuple:
        return {"nargs": "*"}
    return {"type": str}


def _default_text(f) -> str:
    if f.default is not MISSING:
        return "none" if f.default is None else str(f.default if not isinstance(f.default, tuple) else list(f.default))
    return "-"


def add_method_options(p: argparse.ArgumentParser, verbs: tuple[str, ...], default: str | None,
                       taken: set[str] = frozenset(), method_aliases: tuple[str, ...] = ()) -> None:
    """`--method` (and `method_aliases`, older spellings) over the methods of `verbs`, and the
    union of their configs' options; option names in `taken` belong to the command already."""
    entries = [e for v in verbs for e in METHODS.entries(v)]
    lines = [f"{e.name}: {e.summary}" for e in entries]
    p.add_argument("--method", *method_aliases, dest="method", default=None, choices=[e.name for e in entries],
                   metavar="NAME", help=f"default {default or 'none'}; " + "; ".join(lines))
    uses: dict[str, list] = {}
    for e in entries:
        for f in e.obj.options():
            uses.setdefault(f.name, []).append((e, f))
    for name in sorted(uses):
        if name in taken:
            continue
        e0, f0 = uses[name][0]
        meta = f0.metadata
        kw = _typed(field_type(e0.obj, f0), [f.metadata for _, f in uses[name]])
        reg = _REGISTRIES.get(meta.get("registry"))
        if reg is not None:
            kw["choices"] = reg.names()
        elif meta.get("choices"):
            kw["choices"] = sorted({c for _, f in uses[name] for c in (f.metadata.get("choices") or ())})
        helps = {}
        for e, f in uses[name]:  # one meaning, or each method's own
            b = bounds_text(f.metadata)
            helps.setdefault(f.metadata["help"] + (f" ({b})" if b else ""), []).append(f"{e.name}: {_default_text(f)}")
        if len(helps) == 1:
            (text, defaults), = helps.items()
            help_ = f"{text}; default {', '.join(defaults)}"
        else:
            help_ = "; ".join(f"[{', '.join(d)}] {t}" for t, d in helps.items())
        flags = [f"--{name.replace('_', '-')}"] + [a for _, f in uses[name] for a in f.metadata.get("aliases", ())]
        p.add_argument(*dict.fromkeys(flags), dest=name, default=argparse.SUPPRESS, help=help_, **kw)
    for e in entries:  # flags that choose a method and set one of its options (--fbs 0.5)
        for flag, field_name in getattr(e.obj, "shortcuts", {}).items():
            f = next(f for f in fields(e.obj) if f.name == field_name)
            p.add_argument(flag, dest=_SHORTCUT + flag.lstrip("-").replace("-", "_"), default=argparse.SUPPRESS,
                           metavar=field_name.upper(), help=f"same as --method {e.name} --{field_name.replace('_', '-')} "
                           f"{field_name.upper()}", **_typed(field_type(e.obj, f), [f.metadata]))


def method_config(a: argparse.Namespace, verbs: tuple[str, ...], default: str | None, shared: dict | None = None):
    """The config the command line asks for (None when no method was chosen and there is no
    default). `shared`: values of the command's own options that configs with a field of that
    name take too (the seed)."""
    given = dict(vars(a))
    chosen = a.method
    shortcut_values = {}
    for e in (e for v in verbs for e in METHODS.entries(v)):
        for flag, field_name in getattr(e.obj, "shortcuts", {}).items():
            key = _SHORTCUT + flag.lstrip("-").replace("-", "_")
            if key in given:
                if chosen not in (None, e.name):
                    raise ConfigError(f"{flag} chooses the method {e.name}, but --method {chosen} was given")
                chosen, shortcut_values[field_name] = e.name, given[key]
    chosen = chosen or default
    if chosen is None:
        return None
    cls = METHODS.get(chosen).obj
    names = {f.name for f in fields(cls)}
    values = {k: v for k, v in (shared or {}).items() if k in names}
    option_names = {f.name for v in verbs for e in METHODS.entries(v) for f in e.obj.options()}
    for k in sorted(option_names & set(given)):
        if k in names:
            values[k] = tuple(given[k]) if isinstance(given[k], list) else given[k]
        elif k not in (shared or {}):
            takers = [e.name for v in verbs for e in METHODS.entries(v) if k in {f.name for f in fields(e.obj)}]
            warnings.warn(f"--{k.replace('_', '-')} is not an option of {chosen} (ignored; it is one of "
                          f"{', '.join(takers)})", stacklevel=2)
    values.update(shortcut_values)
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{chosen}: {exc}") from None


def apply_config_file(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """`--config run.toml` anywhere after the command: its keys (option names, with _ or -)
    become the command's defaults, so flags given on the command line override them."""
    if "--config" not in argv:
        return
    i = argv.index("--config")
    if i + 1 >= len(argv):
        raise ConfigError("--config needs a TOML file")
    path = Path(argv[i + 1])
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable TOML file ({str(exc).splitlines()[0]})") from None
    command = next((t for t in argv if not t.startswith("-")), None)
    sub = _subparser(parser, command)
    dests = {a.dest for a in sub._actions}
    values = {k.replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(k for k in values if k not in dests or k in ("help", "config"))
    if unknown:
        raise ConfigError(f"{path}: {command} has no option {unknown[0]!r}; see edgeprune {command} --help")
    sub.set_defaults(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()})
    del argv[i:i + 2]


def _subparser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    raise ConfigError(f"--config needs a command before it; see {parser.prog} --help")


def add_config_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="RUN.TOML", help="options from a TOML file (keys as the flags, without "
                   "--); flags given here override them")


__all__ = ["add_config_flag", "add_method_options", "apply_config_file", "method_config"]
