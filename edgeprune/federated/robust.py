"""Aggregation that a few bad devices cannot ruin, by name, for every strategy.

A device's upload is untrusted twice over: its weights (a poisoned or broken model) and the
sample count it reports (the weight its update gets in a plain average). The rules:

- "mean": FedAvg's sample-weighted mean of the updates (McMahan et al. 2017), no defence.
- "median": coordinate-wise median (Yin et al. 2018), Flower's `aggregate_median`.
- "trimmed": coordinate-wise trimmed mean cutting `trim` of the values at each end (Yin et
  al. 2018), Flower's `aggregate_trimmed_avg`.
- "krum" / "multikrum": the update(s) whose n - f - 2 nearest neighbours are closest
  (Blanchard et al. 2017), Flower's `aggregate_krum`; multikrum averages the n - f best.
- "bulyan": Krum-selected updates, then a coordinate-wise trimmed mean around the median
  (El Mhamdi et al. 2018), Flower's `aggregate_bulyan`; needs n >= 4 f + 3.
- "clip": norm bounding (Sun, Kairouz, Suresh, McMahan 2019, "Can you really backdoor
  federated learning?"): every update's difference from the global model is scaled down to at
  most `clip` times the median difference norm of the round, then averaged by samples.

Sample counts are checked for every rule: a count must be a whole number from 1 to
MAX_COUNT, and it is capped at `count_cap` times the median count of the round, so one device
cannot claim the whole average (`count_cap=0` trusts every positive count: plain FedAvg, for
comparison only). f, the number of bad devices the
Krum family assumes, defaults to a fifth of the round's updates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from flwr.server.strategy.aggregate import (
    aggregate_bulyan,
    aggregate_krum,
    aggregate_median,
    aggregate_trimmed_avg,
)

from edgeprune.errors import ConfigError

RULES = ("mean", "median", "trimmed", "krum", "multikrum", "bulyan", "clip")
MAX_COUNT = 10_000_000
Arrays = list[np.ndarray]


@dataclass(frozen=True)
class RobustConfig:
    rule: str = "mean"
    count_cap: float = 4.0  # counts above this many times the round's median are capped (0: off)
    trim: float = 0.2  # trimmed: fraction cut at each end
    clip: float = 1.0  # clip: largest update norm, in medians of the round's norms
    malicious: int | None = None  # krum family: bad devices assumed (default: a fifth of the updates)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ConfigError(f"unknown aggregation {self.rule!r}; choose one of {RULES}")
        if not (self.count_cap == 0 or self.count_cap >= 1) or not math.isfinite(self.count_cap):
            raise ConfigError("count_cap must be 0 (off) or at least 1")
        if not 0 <= self.trim < 0.5 or not self.clip > 0:
            raise ConfigError("trim must be in [0, 0.5) and clip > 0")
        if self.malicious is not None and self.malicious < 0:
            raise ConfigError("malicious must be >= 0")


def checked_counts(counts: list[object], cap: float) -> tuple[list[int], list[tuple[int, str]]]:
    """Reported sample counts as the server will use them (0: refused), and (position, why)
    for each it refused or capped."""
    notes, out = [], []
    most = MAX_COUNT if cap > 0 else math.inf  # cap 0 trusts the devices (plain FedAvg, for comparison)
    for i, c in enumerate(counts):
        if not isinstance(c, (int, np.integer)) or isinstance(c, bool) or not 1 <= c <= most:
            notes.append((i, f"sample count {c!r} is not a whole number from 1 to {MAX_COUNT:,}"))
            out.append(0)
        else:
            out.append(int(c))
    valid = [c for c in out if c > 0]
    if cap > 0 and valid:
        limit = max(1, int(cap * float(np.median(valid))))
        for i, c in enumerate(out):
            if c > limit:
                notes.append((i, f"sample count {c:,} capped at {limit:,} ({cap:g} x the round's median)"))
                out[i] = limit
    return out, notes


def aggregate(current: Arrays, updates: list[Arrays], counts: list[int], cfg: RobustConfig,
              counters: tuple[int, ...] = ()) -> Arrays:
    """The new global weights from `updates` (full weight lists, each the shape of `current`)
    and their checked sample counts, by `cfg.rule`. `counters` are the positions of integer
    buffers (BatchNorm's num_batches_tracked): outside the mean they are left out of the rule's
    distances and norms, where a step counter that grows with a device's data would dominate
    them, and take the coordinate-wise median instead."""
    if not updates:
        return current
    if counters and cfg.rule != "mean":
        rest = [i for i in range(len(current)) if i not in set(counters)]
        out = _aggregate([current[i] for i in rest], [[u[i] for i in rest] for u in updates], counts, cfg)
        merged = list(current)
        for i, a in zip(rest, out):
            merged[i] = a
        for i in counters:
            merged[i] = np.round(np.median(np.stack([np.asarray(u[i], np.float64) for u in updates]), axis=0)
                                 ).astype(np.float32)
        return merged
    return _aggregate(current, updates, counts, cfg)


def _aggregate(current: Arrays, updates: list[Arrays], counts: list[int], cfg: RobustConfig) -> Arrays:
    pairs = [(u, max(int(n), 1)) for u, n in zip(updates, counts)]
    n = len(pairs)
    f = cfg.malicious if cfg.malicious is not None else n // 5
    if cfg.rule == "mean":
        return _weighted_delta_mean(current, updates, counts)
    if cfg.rule == "median":
        return _as32(aggregate_median(pairs))
    if cfg.rule == "trimmed":
        return _as32(aggregate_trimmed_avg(pairs, cfg.trim))
    if cfg.rule in ("krum", "multikrum"):
        keep = 0 if cfg.rule == "krum" else max(1, n - f)
        return _as32(aggregate_krum(pairs, f, keep))
    if cfg.rule == "bulyan":
        if n < 4 * f + 3:
            f = max(0, (n - 3) // 4)  # the most bad devices Bulyan can assume with n updates
        return _as32(aggregate_bulyan(list(pairs), f, aggregate_krum, to_keep=0))
    return _clipped_mean(current, updates, counts, cfg.clip)


def _as32(arrays: Arrays) -> Arrays:
    return [np.asarray(a, dtype=np.float32) for a in arrays]


def _weighted_delta_mean(current: Arrays, updates: list[Arrays], counts: list[int]) -> Arrays:
    total = float(sum(counts))
    if total <= 0:
        return current
    return _as32([c + sum(w / total * (u[i] - c) for u, w in zip(updates, counts)) for i, c in enumerate(current)])


def update_norm(current: Arrays, update: Arrays) -> float:
    return float(math.sqrt(sum(float(np.sum((np.asarray(u, np.float64) - c) ** 2)) for u, c in zip(update, current))))


def _clipped_mean(current: Arrays, updates: list[Arrays], counts: list[int], clip: float) -> Arrays:
    norms = [update_norm(current, u) for u in updates]
    bound = clip * float(np.median(norms))
    clipped = []
    for u, norm in zip(updates, norms):
        scale = 1.0 if norm <= bound or norm == 0 else bound / norm
        clipped.append([c + scale * (np.asarray(a, np.float64) - c) for a, c in zip(u, current)])
    return _weighted_delta_mean(current, clipped, counts)
