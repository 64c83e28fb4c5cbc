"""The continuity scan, done in SQL: the database counts and walks the bars, Python never loads them.

On a complete window the scan costs one index-only ``count(*)``; only when bars are missing does
it count per day and walk the incomplete days for the exact holes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Engine

from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.market.continuity import ContinuityScan, Gap, incomplete_day_ranges
from coinpilot_pipelines.market.intervals import to_ms
from coinpilot_pipelines.storage.candles import day_summaries, window_summary
from coinpilot_pipelines.storage.sql_files import load_sql
from coinpilot_pipelines.storage.types import UtcTimestamp


def _series_params(series: SeriesKey) -> dict[str, object]:
    return {"exchange": series.exchange, "symbol": series.symbol, "interval": series.interval.code,
            "interval_ms": series.interval.ms}


def holes(connection: Connection, series: SeriesKey, start: datetime, end: datetime) -> list[Gap]:
    """Every run of missing bars in ``[start, end)``, exactly, as stored right now."""
    query = load_sql(
        connection.engine,
        "continuity_gaps",
        bind_types={"range_start": UtcTimestamp(), "range_end": UtcTimestamp()},
        result_types={"from_open_time": UtcTimestamp(), "to_open_time": UtcTimestamp()},
    )
    rows = connection.execute(query, {**_series_params(series), "range_start": start, "range_end": end}).all()
    return [Gap.between(row.from_open_time, row.to_open_time, series.interval) for row in rows]


def holes_in(engine: Engine, series: SeriesKey, start: datetime, end: datetime) -> list[Gap]:
    with engine.connect() as connection:
        return holes(connection, series, start, end)


def scan_continuity(engine: Engine, series: SeriesKey, window_start: datetime, window_end: datetime) -> ContinuityScan:
    expected = series.interval.bars_between(to_ms(window_start), to_ms(window_end))
    present = window_summary(engine, series, window_start, window_end).present_bars
    scan = ContinuityScan(series, window_start, window_end, expected, present)
    if present >= expected:
        return scan  # every slot of the grid holds a bar (keys are unique and on the grid)
    days = day_summaries(engine, series, window_start, window_end)
    with engine.connect() as connection:
        for start, end in incomplete_day_ranges(
            ((day, summary.present_bars) for day, summary in days.items()), window_start, window_end, series.interval
        ):
            scan.gaps.extend(holes(connection, series, start, end))
    return scan
