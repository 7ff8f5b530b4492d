"""What every benchmark shares: interleaved timing, and one figure of the results table.

Timings of the fast and the reference implementation are interleaved, repetition by
repetition, so that both see the same machine load; a figure is the median over
repetitions of the per-repetition ratio.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Figure:
    """One row of the table: ``value`` against ``target`` (``at_least`` or at most)."""

    name: str
    value: float
    target: float
    at_least: bool
    unit: str  # "x" for a ratio, "%" for a share or an overhead (value in %)
    compared_with: str

    @property
    def met(self) -> bool:
        return self.value >= self.target if self.at_least else self.value <= self.target

    def row(self) -> dict[str, object]:
        return asdict(self) | {"met": self.met}

    def text(self) -> str:
        """The figure as one printed line."""
        return (f"{self.name}: {self.value:.2f}{self.unit} (target "
                f"{'>=' if self.at_least else '<='} {self.target}{self.unit}; "
                f"{self.compared_with})")


def interleaved(fns: dict[str, Callable[[], object]], reps: int,
                inner: int = 1, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each function, one list entry per repetition; the functions
    take turns within each repetition."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            out[name].append((time.perf_counter() - start) / inner)
    return out


def median_ratio(num: list[float], den: list[float]) -> float:
    """Median over repetitions of num[i] / den[i]."""
    return statistics.median(a / b for a, b in zip(num, den))


def show(make: Callable[[], list[Figure]]) -> list[Figure]:
    """The figures ``make`` measures, each printed on its line, then the seconds it took."""
    start = time.perf_counter()
    out = make()
    for f in out:
        print(f"  {f.text()}")
    print(f"  ({time.perf_counter() - start:.0f} s)")
    return out
