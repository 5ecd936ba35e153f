"""Benchmarks: commands that measure and write tables into docs/ (not part of the test suite)."""
from __future__ import annotations

import statistics
from pathlib import Path


def mean_spread(values) -> str:
    """'mean ± population std' of fractions, in percent."""
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.pstdev(values):.1f}"


def write_doc(out: str | Path, lines: list[str]) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
