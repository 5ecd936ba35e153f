"""Folders and files edgeprune writes, and the only code that replaces or deletes them.

Rules (the README's "What edgeprune writes"):
- a new output is built in a hidden sibling folder and moved into place in one step, so a
  reader sees the old output or the new one, complete, never a mix (Linux: renameat2 with
  RENAME_EXCHANGE swaps the two folders atomically; elsewhere two renames, with the old
  folder restored on the next access if the process died between them);
- every folder carries `.edgeprune.json`, the list of files edgeprune put there; a folder is
  replaced only if it holds nothing else, and only when the caller says so (`--force`);
- the current folder, a folder above it, and a model being read are never an output;
- hidden leftovers of a killed writer (their process is gone) are removed at the next write.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from edgeprune.errors import ConfigError

MANIFEST = ".edgeprune.json"
WRITING = ".edgeprune-writing"  # inside a folder being built; names its writer
_TMP, _OLD = "edgeprune-tmp", "edgeprune-old"
_ACTIVE: set[Path] = set()  # temporary folders this process is writing right now
# folders written before manifests existed, by kind: (the file that marks them, every file
# they may hold); replaced only if they hold nothing else
_LEGACY = {
    "model": ("model.json", {"model.json", "plan.json", "weights.safetensors", "widths.svg"}),
    "federated": ("federated.json", {"federated.json", "federated.svg", "summary.md"}),
    "demo": ("dense/model.json", {"dense/model.json", "dense/weights.safetensors", "pruned/model.json",
                                  "pruned/plan.json", "pruned/weights.safetensors", "dense.onnx", "pruned.onnx",
                                  "widths.svg"}),
}


def _record(folder: Path) -> tuple[set[str], str] | None:
    """(files edgeprune wrote under `folder`, by relative path; its kind), or None."""
    manifest = folder / MANIFEST
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text()[:10_000_000])
            files, kind = data["files"], data.get("kind", "output")
            if isinstance(files, list) and all(isinstance(f, str) for f in files) and isinstance(kind, str):
                return set(files), kind
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return None
        return None
    entries = _entries(folder)
    for kind, (marker, allowed) in _LEGACY.items():
        if (folder / marker).is_file() and entries <= allowed:
            return entries, kind
    return None


def owned_files(folder: Path) -> set[str] | None:
    """The files under `folder` edgeprune wrote, by relative path; None if it has no record."""
    rec = _record(folder)
    return rec[0] if rec else None


def owned_kind(folder: Path) -> str | None:
    """The kind of output edgeprune recorded for a folder ("model", "fit", "demo", ...)."""
    rec = _record(folder)
    return rec[1] if rec else None


def _entries(folder: Path) -> set[str]:
    out = set()
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        out.update(str(rel / f) if str(rel) != "." else f for f in files)
        for d in dirs:
            if (Path(root) / d).is_symlink():
                out.add(str(rel / d) if str(rel) != "." else d)
    return out - {MANIFEST}


def foreign_entries(folder: Path) -> list[str]:
    """What in `folder` edgeprune did not write (empty: the folder is edgeprune's own)."""
    owned = owned_files(folder)
    entries = _entries(folder)
    if owned is None:
        return sorted(entries) or []
    return sorted(entries - owned)


def _is_within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_output(path: str | os.PathLike, *, force: bool = False, inputs: Iterable[str | os.PathLike | None] = (),
                 flag: str = "--out", replace_kind: str | None = None) -> Path:
    """Refuse an output folder edgeprune must not write to, before any work starts.

    Allowed: a new path, an empty folder, or a folder holding only what edgeprune wrote there
    when `force` is given or its record says it is of `replace_kind` (outputs cheap to
    rebuild, such as the demo's)."""
    raw = Path(path).expanduser()
    target = raw.resolve()
    cwd = Path.cwd().resolve()
    if _is_within(cwd, target):
        raise ConfigError(f"{flag} {raw} is the current folder or contains it; edgeprune will not replace it.\n"
                          f"help: name a new folder, e.g. {flag} runs/out")
    for given in inputs:
        if given is None:
            continue
        src = Path(given).expanduser().resolve()
        if _is_within(src, target) or _is_within(target, src):
            raise ConfigError(f"{flag} {raw} overlaps the input {given}; writing there would destroy the input.\n"
                              f"help: name a different folder for {flag}")
    recover(target)
    if raw.is_symlink():
        raise ConfigError(f"{flag} {raw} is a symbolic link; edgeprune writes only real folders.\n"
                          f"help: give the folder it points to, or a new name")
    if not target.exists():
        return target
    if not target.is_dir():
        raise ConfigError(f"{flag} {raw} is a file, not a folder; edgeprune will not replace it.\n"
                          f"help: name a new folder for {flag}")
    entries = _entries(target)
    if not entries:
        return target
    foreign = foreign_entries(target)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ConfigError(f"{flag} {raw} already holds files edgeprune did not write ({shown}); "
                          "edgeprune never deletes them.\nhelp: name a new or empty folder for " + flag)
    if not (force or (replace_kind is not None and owned_kind(target) == replace_kind)):
        raise ConfigError(f"{flag} {raw} holds an earlier edgeprune output.\n"
                          f"help: pass --force to replace it (only edgeprune's own folders are replaced), "
                          f"or name another folder")
    return target


# ---------------------------------------------------------------- atomic replacement

def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def temp_sibling(target: Path, kind: str) -> Path:
    return target.parent / f".{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leftovers(target: Path) -> Iterator[tuple[Path, str, int]]:
    """Hidden siblings `.NAME.edgeprune-tmp-PID-TOKEN` / `.NAME.edgeprune-old-PID-TOKEN`."""
    prefix = f".{target.name}."
    if not target.parent.is_dir():
        return
    for p in target.parent.iterdir():
        if not p.name.startswith(prefix) or p.is_symlink():
            continue
        parts = p.name[len(prefix):].split("-")
        if len(parts) == 4 and f"{parts[0]}-{parts[1]}" in (_TMP, _OLD) and parts[2].isdigit():
            yield p, f"{parts[0]}-{parts[1]}", int(parts[2])


def _discard(folder: Path) -> None:
    """Remove an edgeprune folder so that a kill at any point leaves it recognisable as ours
    (for recover): its files first, the manifest and the writing marker last."""
    marks = (MANIFEST, WRITING)
    for child in list(folder.iterdir()):
        if child.name not in marks:
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    child.unlink()
    for name in marks:
        with contextlib.suppress(OSError):
            (folder / name).unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()


def recover(target: Path) -> None:
    """Finish what a killed writer left: restore an old folder moved aside but never replaced
    (the fallback path without RENAME_EXCHANGE), remove abandoned temporary folders."""
    target = Path(target)
    for p, kind, pid in list(_leftovers(target)):
        if p in _ACTIVE or (pid != os.getpid() and _pid_alive(pid)):
            continue
        if not p.is_dir():  # a temporary file of write_file
            if kind == _TMP:
                with contextlib.suppress(OSError):
                    p.unlink()
            continue
        if kind == _OLD and not target.exists() and owned_files(p) is not None:
            with contextlib.suppress(OSError):
                os.rename(p, target)
                continue
        # ours beyond doubt: being written, recorded with nothing foreign, or created and killed
        # before its marker (empty)
        if (p / WRITING).exists() or not any(p.iterdir()) or (owned_files(p) is not None and not foreign_entries(p)):
            _discard(p)


def _fsync_tree(folder: Path) -> None:
    for root, _, files in os.walk(folder):
        for f in files:
            with open(Path(root) / f, "rb") as fh:
                os.fsync(fh.fileno())
        with contextlib.suppress(OSError):
            fd = os.open(root, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)


def _install(tmp: Path, target: Path, force: bool, replace_kind: str | None) -> None:
    try:
        os.rename(tmp, target)  # new name, or an empty folder: atomic
        return
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
    foreign = foreign_entries(target)
    if foreign:
        raise ConfigError(f"{target} gained files edgeprune did not write while it ran ({foreign[0]}, ...); "
                          "nothing was replaced.\nhelp: name a new folder")
    if not (force or (replace_kind is not None and owned_kind(target) == replace_kind)):
        raise ConfigError(f"{target} was written by another edgeprune process while this one ran; "
                          "nothing was replaced.\nhelp: pass --force to let the last writer win")
    if _exchange(tmp, target):
        old = tmp  # the previous output now sits where the new one was built
    else:  # two renames; recover() restores `old` if the process dies between them
        old = temp_sibling(target, _OLD)
        os.rename(target, old)
        os.rename(tmp, target)
    if foreign_entries(old):  # a file appeared in it at the last instant: keep it, out of the way
        keep = target.parent / f"{target.name}.displaced-{secrets.token_hex(3)}"
        os.rename(old, keep)
        raise ConfigError(f"files edgeprune did not write appeared in {target} while it was replaced; "
                          f"they are kept in {keep}")
    _discard(old)


@contextlib.contextmanager
def writing(path: str | os.PathLike, *, force: bool = False, inputs: Iterable[str | os.PathLike | None] = (),
            flag: str = "--out", replace_kind: str | None = None, kind: str = "output") -> Iterator[Path]:
    """Yield a fresh hidden folder to write an output into; on success it replaces `path` in
    one step (with the manifest of what was written), on any error it is removed and `path`
    is untouched.

        with writing("runs/pruned", force=True) as folder:
            (folder / "model.json").write_text(...)
    """
    target = check_output(path, force=force, inputs=inputs, flag=flag, replace_kind=replace_kind)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(target, _TMP)
    tmp.mkdir()
    _ACTIVE.add(tmp)
    try:
        (tmp / WRITING).write_text(str(os.getpid()))
        yield tmp
        files = sorted(_entries(tmp) - {WRITING})
        (tmp / MANIFEST).write_text(json.dumps({"written_by": "edgeprune", "kind": kind, "files": files}, indent=1))
        (tmp / WRITING).unlink()
        _fsync_tree(tmp)
        _install(tmp, target, force, replace_kind)
    finally:
        _ACTIVE.discard(tmp)
        if tmp.exists():
            _discard(tmp)


def write_file(path: str | os.PathLike, data: bytes | str, *, force: bool = False, flag: str = "--out",
               owned: bool = False) -> Path:
    """Write one file atomically (temporary file + rename). An existing file is replaced only
    with `force` and when `owned` says edgeprune wrote it."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise ConfigError(f"{flag} {target} is a folder; give a file name")
    if target.exists() and not (force and owned):
        how = "pass --force to replace it" if owned else "edgeprune did not write it, so it is kept"
        raise ConfigError(f"{flag} {target} exists.\nhelp: {how}, or name another file")
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    tmp = temp_sibling(target, _TMP)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return target


__all__ = ["MANIFEST", "check_output", "foreign_entries", "owned_files", "recover", "write_file", "writing"]
