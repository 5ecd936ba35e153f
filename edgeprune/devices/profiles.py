"""Device profiles: what a target offers (flash, RAM, clock, throughput per data type) and
what its work costs in energy. Built-in profiles live in builtin.toml with their sources;
`load_profile` also reads a user's TOML file of the same shape."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import tomllib

from edgeprune.errors import ConfigError

_REQUIRED = ("flash_bytes", "ram_bytes", "clock_hz", "macs_per_cycle", "pj_per_cycle")


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    kind: str  # "mcu", "sbc" or "host"
    flash_bytes: int
    ram_bytes: int
    clock_hz: float
    macs_per_cycle: dict[str, float]  # by precision: "int8", "fp32"
    pj_per_cycle: float  # active energy of the core per cycle (includes the MAC)
    pj_per_flash_byte: float = 0.0
    pj_per_sram_byte: float = 0.0
    runtime_flash_bytes: int = 0  # fixed cost of the inference code
    runtime_ram_bytes: int = 0
    core: str = ""
    c_opt: str = "-O2"  # the optimisation level generated C is built with for this device
    channel_multiple: int = 1  # fit keeps channel counts a multiple of this (round_to)
    # flash as the cycle model sees it (edgeprune.deploy.timing.FlashModel): wait states at clock_hz,
    # bytes per flash read, and lines of the data cache or line buffers in front of it
    flash_wait_states: int = 0
    flash_line_bytes: int = 8
    flash_cache_lines: int = 0
    sources: tuple[str, ...] = ()
    estimates: tuple[str, ...] = ()

    def throughput(self, precision: str) -> float:
        if precision not in self.macs_per_cycle:
            raise ConfigError(f"profile {self.name!r} has no throughput for {precision!r}; "
                              f"it knows {sorted(self.macs_per_cycle)}")
        return self.macs_per_cycle[precision]


@dataclass
class Budget:
    """Limits a model must meet on a device; None = no limit. Defaults from the profile."""

    flash_bytes: int | None = None
    ram_bytes: int | None = None
    latency_ms: float | None = None
    energy_mj: float | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, profile: DeviceProfile, latency_ms: float | None = None, energy_mj: float | None = None,
           flash_bytes: int | None = None, ram_bytes: int | None = None) -> "Budget":
        return cls(flash_bytes if flash_bytes is not None else profile.flash_bytes,
                   ram_bytes if ram_bytes is not None else profile.ram_bytes, latency_ms, energy_mj)


_COUNT_FIELDS = {"flash_bytes": True, "ram_bytes": True, "runtime_flash_bytes": False, "runtime_ram_bytes": False}
_NUMBER_FIELDS = {"clock_hz": True, "pj_per_cycle": True, "pj_per_flash_byte": False, "pj_per_sram_byte": False}
_TEXT_FIELDS = ("description", "core")
_KINDS = ("mcu", "sbc", "host")
_OPTS = ("-O0", "-O1", "-O2", "-O3", "-Os")


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _from_table(name: str, table: dict) -> DeviceProfile:
    """Check every field (type, finite, positive where it must be) and build the profile."""
    where = f"device profile {name!r}"
    missing = [k for k in _REQUIRED if k not in table]
    if missing:
        raise ConfigError(f"{where} lacks {missing}; see edgeprune/devices/builtin.toml for the fields")
    known = set(DeviceProfile.__dataclass_fields__) - {"name"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{where} has unknown fields {unknown}; known: {sorted(known)}")
    kw = dict(table)
    for k, strict in _COUNT_FIELDS.items():
        v = kw.get(k, 0)
        if not (isinstance(v, int) and not isinstance(v, bool) and (v > 0 if strict else v >= 0) and v < 2 ** 50):
            raise ConfigError(f"{where}: {k} must be a {'positive' if strict else 'non-negative'} whole number of "
                              f"bytes, got {v!r}")
    for k, strict in _NUMBER_FIELDS.items():
        v = kw.get(k, 0.0)
        if not (_is_number(v) and (v > 0 if strict else v >= 0) and v < 1e15):
            raise ConfigError(f"{where}: {k} must be a finite {'positive' if strict else 'non-negative'} number, "
                              f"got {v!r}")
        kw[k] = float(v)
    mpc = kw["macs_per_cycle"]
    if not (isinstance(mpc, dict) and mpc and all(isinstance(p, str) and _is_number(v) and 0 < v < 1e6
                                                  for p, v in mpc.items())):
        raise ConfigError(f"{where}: macs_per_cycle must map precisions to finite positive numbers, "
                          "e.g. { int8 = 0.5, fp32 = 0.25 }")
    kw["macs_per_cycle"] = {p: float(v) for p, v in mpc.items()}
    for k in _TEXT_FIELDS:
        if not isinstance(kw.get(k, ""), str):
            raise ConfigError(f"{where}: {k} must be a string")
    cm = kw.get("channel_multiple", 1)
    if not (isinstance(cm, int) and not isinstance(cm, bool) and 1 <= cm <= 64):
        raise ConfigError(f"{where}: channel_multiple must be a whole number from 1 to 64, got {cm!r}")
    for k, lo, hi, default in (("flash_wait_states", 0, 15, 0), ("flash_line_bytes", 4, 64, 8),
                               ("flash_cache_lines", 0, 4096, 0)):
        v = kw.get(k, default)
        if not (isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi):
            raise ConfigError(f"{where}: {k} must be a whole number from {lo} to {hi}, got {v!r}")
    if kw.get("flash_line_bytes", 8) & (kw.get("flash_line_bytes", 8) - 1):
        raise ConfigError(f"{where}: flash_line_bytes must be a power of two, got {kw['flash_line_bytes']!r}")
    if kw.get("c_opt", "-O2") not in _OPTS:
        raise ConfigError(f"{where}: c_opt must be one of {_OPTS}, got {kw.get('c_opt')!r}")
    kw.setdefault("kind", "mcu")
    if kw["kind"] not in _KINDS:
        raise ConfigError(f"{where}: kind must be one of {_KINDS}, got {kw['kind']!r}")
    for k in ("sources", "estimates"):
        v = kw.get(k, [])
        if not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
            raise ConfigError(f"{where}: {k} must be a list of strings")
        kw[k] = tuple(v)
    kw.setdefault("description", name)
    return DeviceProfile(name=name, **kw)


def builtin_profiles() -> dict[str, DeviceProfile]:
    text = resources.files("edgeprune.devices").joinpath("builtin.toml").read_text()
    return {name: _from_table(name, t) for name, t in tomllib.loads(text).items()}


def load_profile(name_or_path: str | Path) -> DeviceProfile:
    """A built-in profile by name, or the (first) profile of a TOML file."""
    builtin = builtin_profiles()
    if str(name_or_path) in builtin:
        return builtin[str(name_or_path)]
    path = Path(name_or_path)
    if path.suffix != ".toml" or not path.exists():
        raise ConfigError(f"unknown device {str(name_or_path)!r}: give a built-in name ({', '.join(builtin)}) "
                          "or a .toml file shaped like edgeprune/devices/builtin.toml")
    if path.stat().st_size > 2 ** 20:
        raise ConfigError(f"{path} is larger than 1 MiB; a device profile is a few lines of TOML")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise ConfigError(f"{path} is nested too deeply to be a device profile") from None
    if not data:
        raise ConfigError(f"{path} holds no profile table")
    name, table = next(iter(data.items()))
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: put the profile under a [name] table")
    return _from_table(name, table)
