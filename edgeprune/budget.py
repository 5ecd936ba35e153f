"""The one budget search every workflow uses: bisection for the boundary of a monotone
feasibility. `prune(keep_macs=...)` looks for the smallest uniform pruning ratio whose model
fits the MACs; `ChannelSpace.scale_to_budget` and `fit` for the largest scale of per-layer
widths that fits a cost or a device."""
from __future__ import annotations

from typing import Callable


def meet_budget(fits: Callable[[float], bool], lo: float, hi: float, *, steps: int, feasible: str = "low",
                tol: float = 0.0) -> float:
    """Bisect [lo, hi] for the boundary of `fits`. `feasible="low"`: `fits` holds from `lo` up
    to the boundary (a scale of widths: the largest that fits is returned); `"high"`: from the
    boundary up to `hi` (a pruning ratio: the smallest that fits). The end on the feasible side
    is assumed to fit (callers check it) and is returned if no probe fits. Stops after `steps`
    probes or when the interval is narrower than `tol`."""
    if feasible not in ("low", "high"):
        raise ValueError("feasible must be 'low' or 'high'")
    for _ in range(steps):
        mid = (lo + hi) / 2
        ok = fits(mid)
        if feasible == "low":
            lo, hi = (mid, hi) if ok else (lo, mid)
        else:
            lo, hi = (lo, mid) if ok else (mid, hi)
        if hi - lo < tol:
            break
    return lo if feasible == "low" else hi


__all__ = ["meet_budget"]
