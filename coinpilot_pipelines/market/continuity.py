"""Continuity of a candle series: holes as half-open ranges, and what a scan reports.

Pure logic; the SQL that finds holes lives in ``sql/*continuity*`` and `storage.continuity`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.market.intervals import Interval, to_ms

DAY = timedelta(days=1)


@dataclass(frozen=True)
class Gap:
    """Missing bars with open time in ``[from_open_time, to_open_time)``."""

    from_open_time: datetime
    to_open_time: datetime
    missing_bars: int

    @classmethod
    def between(cls, start: datetime, end: datetime, interval: Interval) -> Gap:
        return cls(start, end, interval.bars_between(to_ms(start), to_ms(end)))

    def to_json(self) -> dict[str, int]:
        return {"from_open_time": to_ms(self.from_open_time), "to_open_time": to_ms(self.to_open_time),
                "missing_bars": self.missing_bars}


@dataclass
class ContinuityScan:
    series: SeriesKey
    window_start: datetime
    window_end: datetime
    expected_bars: int
    present_bars: int
    gaps: list[Gap] = field(default_factory=list)

    @property
    def completeness(self) -> float:
        return 1.0 if self.expected_bars == 0 else self.present_bars / self.expected_bars

    @property
    def missing_bars(self) -> int:
        return sum(g.missing_bars for g in self.gaps)

    def to_json(self, scanned_days: int) -> dict[str, object]:
        """The older scanner's report format: times in epoch ms, ``to_open_time`` exclusive."""
        return {
            "symbol": self.series.symbol,
            "interval": self.series.interval.code,
            "scanned_days": scanned_days,
            "window_start": to_ms(self.window_start),
            "window_end": to_ms(self.window_end),
            "expected_bars": self.expected_bars,
            "present_bars": self.present_bars,
            "completeness": round(self.completeness, 6),
            "gap_count": len(self.gaps),
            "gaps": [g.to_json() for g in self.gaps],
        }


def incomplete_day_ranges(
    day_counts: Iterable[tuple[datetime, int]], window_start: datetime, window_end: datetime, interval: Interval
) -> list[tuple[datetime, datetime]]:
    """Contiguous runs of days (clipped to the window) holding fewer bars than the grid has."""
    present = dict(day_counts)
    ranges: list[tuple[datetime, datetime]] = []
    day = window_start
    while day < window_end:
        day_end = min(day + DAY, window_end)
        if present.get(day, 0) < interval.bars_between(to_ms(day), to_ms(day_end)):
            if ranges and ranges[-1][1] == day:
                ranges[-1] = (ranges[-1][0], day_end)
            else:
                ranges.append((day, day_end))
        day = day_end
    return ranges


def subtract(span: tuple[datetime, datetime], covered: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """The parts of ``span`` not inside any of the ``covered`` half-open ranges."""
    pieces = [span]
    for cover_start, cover_end in covered:
        next_pieces = []
        for start, end in pieces:
            if cover_end <= start or cover_start >= end:
                next_pieces.append((start, end))
                continue
            if start < cover_start:
                next_pieces.append((start, cover_start))
            if cover_end < end:
                next_pieces.append((cover_end, end))
        pieces = next_pieces
    return pieces
