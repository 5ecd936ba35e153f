"""What `fit` is asked for (FitConfig) and what it returns (FitResult, with the candidates it
met on the way)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from torch import nn

from edgeprune.devices import Budget, Check, DeviceCost
from edgeprune.errors import ConfigError

RECOVERIES = ("finetune", "distill", "reconstruct", "none")
SEARCHES = ("sensitivity", "uniform", "amc", "abc")


@dataclass(frozen=True)
class FitConfig:
    device: str = "stm32l432"
    latency_ms: float | None = None
    energy_mj: float | None = None
    flash_bytes: int | None = None  # override the profile's
    ram_bytes: int | None = None
    precision: str = "int8"
    sparse: bool = False
    searches: tuple[str, ...] = ("uniform", "sensitivity")
    recover: str = "finetune"
    finetune_epochs: int = 4
    qat_epochs: int = 0  # quantization-aware fine-tuning after recovery (edgeprune.deploy.qat)
    lr: float = 1e-3
    calibration: int = 500
    val_samples: int = 2000
    amc_episodes: int = 100
    quantize: bool = True
    c_code: bool = True  # generate, compile and check C for the int8 model (needs gcc)
    stack_bytes: int = 1024  # added to the compiled RAM figure (the stack is not in `size`)
    tflite: bool = False  # also write model.tflite (fully integer), checked in LiteRT
    emulate: bool = True  # Cortex-M profiles: calibrate latency on the generated C, emulated (QEMU)
    refits: int = 3  # searches repeated with the emulated cost while the emulated latency is over
    seed: int = 0

    def __post_init__(self):
        if self.recover not in RECOVERIES:
            raise ConfigError(f"recover must be one of {RECOVERIES}, got {self.recover!r}")
        bad = [s for s in self.searches if s not in SEARCHES]
        if bad or not self.searches:
            raise ConfigError(f"searches must be a non-empty subset of {SEARCHES}, got {self.searches}")


@dataclass
class Candidate:
    search: str
    t: float
    keep: list[float]
    macs: int
    cost: dict
    fits: bool
    accuracy: float | None = None  # validation, after least squares, no training


@dataclass
class FitResult:
    model: nn.Module
    plan: object
    profile: object
    budget: Budget
    dense_cost: DeviceCost
    cost: DeviceCost
    checks: list[Check]
    candidates: list[Candidate]
    chosen: int
    accuracy: dict
    widths: list[tuple[str, int, int]]  # group, units before, after
    timeline: list[int]  # live activation bytes after each op of the chosen model
    files: dict = field(default_factory=dict)
    seconds: float = 0.0
    dense_timeline: list[int] = field(default_factory=list)
    c_code: dict = field(default_factory=dict)  # the generated C: check and measured sizes

    @property
    def fits(self) -> bool:
        return all(c.ok for c in self.checks)

    def summary(self) -> dict:
        return {"device": self.profile.name, "fits": self.fits, "accuracy": self.accuracy,
                "dense_cost": self.dense_cost.to_dict(), "cost": self.cost.to_dict(),
                "checks": [{"name": c.name, "value": c.value, "limit": c.limit, "unit": c.unit, "ok": c.ok,
                            "margin": c.margin} for c in self.checks],
                "widths": self.widths, "candidates": [asdict(c) for c in self.candidates], "chosen": self.chosen,
                "files": {k: str(v) for k, v in self.files.items()}, "seconds": self.seconds, "c_code": self.c_code}
