"""JSON from files edgeprune did not necessarily write (model folders, plans, checkpoints):
bounded in size and nesting, every failure one ConfigError that names the file."""
from __future__ import annotations

import json
import os
from pathlib import Path

from edgeprune.errors import ConfigError

MAX_JSON_BYTES = 64 * 2 ** 20
MAX_DEPTH = 32


def _depth(value: object, limit: int) -> int:
    """Nesting depth, iteratively (a recursive walk is what a hostile file would exploit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            if d > limit:
                return d
            deepest = max(deepest, d)
            stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


def parse_json(text: str | bytes, what: str = "JSON", max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_DEPTH):
    """Parse untrusted JSON text; ConfigError naming `what` on anything wrong."""
    if len(text) > max_bytes:
        raise ConfigError(f"{what} is {len(text)} bytes, more than the {max_bytes} edgeprune reads")
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        value = json.loads(text)  # deep nesting ends in RecursionError, caught below
    except RecursionError:
        raise ConfigError(f"{what} is nested too deeply to be a file edgeprune wrote") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{what} is not valid JSON ({str(exc).splitlines()[0][:120]})") from None
    if _depth(value, max_depth) > max_depth:
        raise ConfigError(f"{what} is nested more than {max_depth} levels deep")
    return value


def read_json(path: str | os.PathLike, what: str = "JSON file", max_bytes: int = MAX_JSON_BYTES,
              max_depth: int = MAX_DEPTH):
    """Read and parse an untrusted JSON file; ConfigError naming the file on anything wrong."""
    path = Path(path)
    label = f"{what} {path}"
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ConfigError(f"{label} is {size} bytes, more than the {max_bytes} edgeprune reads")
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise ConfigError(f"{label} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{label} is a folder, not a file") from None
    except OSError as exc:
        raise ConfigError(f"{label} cannot be read: {exc.strerror}") from None
    return parse_json(data, label, max_bytes, max_depth)
