"""``coinpilot bench``: throughput measured beside a yardstick taken in the same run."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BenchRow:
    """One line of the benchmark table (the README shows the same table)."""

    bench: str
    measurement: str
    value: float
    unit: str  # "s", "ms", "rows/s" or "x" for a ratio
    target: str = ""  # e.g. ">= 0.50"; empty for a yardstick or an informative figure
    met: bool | None = None

    def formatted(self) -> str:
        if self.unit == "rows/s":
            return f"{self.value:,.0f} rows/s"
        if self.unit == "x":
            return f"{self.value:.2f}"
        if self.unit == "ms":
            return f"{self.value:,.1f} ms"
        return f"{self.value:,.2f} s"


def within(value: float, *, at_least: float | None = None, at_most: float | None = None) -> bool:
    return (at_least is None or value >= at_least) and (at_most is None or value <= at_most)


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` runs, after one untimed run to warm caches and code paths."""
    action()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)
