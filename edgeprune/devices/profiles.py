"""Device profiles: what a target offers (flash, RAM, clock, throughput per data type) and
what its work costs in energy. Built-in profiles live in builtin.toml with their sources;
`load_profile` also reads a user's TOML file of the same shape."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

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


def _from_table(name: str, table: dict) -> DeviceProfile:
    missing = [k for k in _REQUIRED if k not in table]
    if missing:
        raise ConfigError(f"device profile {name!r} lacks {missing}; see edgeprune/devices/builtin.toml for the fields")
    known = set(DeviceProfile.__dataclass_fields__) - {"name"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"device profile {name!r} has unknown fields {unknown}; known: {sorted(known)}")
    kw = dict(table)
    kw["sources"] = tuple(kw.get("sources", ()))
    kw["estimates"] = tuple(kw.get("estimates", ()))
    kw.setdefault("description", name)
    kw.setdefault("kind", "mcu")
    for k in ("flash_bytes", "ram_bytes", "clock_hz", "pj_per_cycle"):
        if not isinstance(kw[k], (int, float)) or kw[k] <= 0:
            raise ConfigError(f"device profile {name!r}: {k} must be a positive number, got {kw[k]!r}")
    if not isinstance(kw["macs_per_cycle"], dict) or not kw["macs_per_cycle"] \
            or any(not isinstance(v, (int, float)) or v <= 0 for v in kw["macs_per_cycle"].values()):
        raise ConfigError(f"device profile {name!r}: macs_per_cycle must map precisions to positive numbers")
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
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    if not data:
        raise ConfigError(f"{path} holds no profile table")
    name, table = next(iter(data.items()))
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: put the profile under a [name] table")
    return _from_table(name, table)
