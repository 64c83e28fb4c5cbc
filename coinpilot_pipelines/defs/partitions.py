"""Market partitions: one per UTC day and symbol, keyed like ``2024-03-05|XRPUSDT``."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, timezone

import dagster as dg

from coinpilot_pipelines.settings import Settings, validate_symbol


_PARTITION_KEY = re.compile(r"\d{4}-\d{2}-\d{2}\|[A-Z0-9-]{2,41}")


def market_partitions(settings: Settings) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition(
        {
            # end_offset=1: today's partition exists, so live bars land in a visible partition.
            "date": dg.DailyPartitionsDefinition(
                start_date=settings.start_date.isoformat(), timezone="UTC", end_offset=1
            ),
            "symbol": dg.StaticPartitionsDefinition(list(settings.symbols)),
        }
    )


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=timezone.utc)


def windows_by_symbol(
    partitions: dg.MultiPartitionsDefinition, partition_keys: Sequence[str]
) -> dict[str, list[tuple[datetime, datetime]]]:
    """Group partition keys by symbol and merge consecutive days into ``[start, end)`` windows.

    A year-long single-run backfill becomes one window per symbol, fetched as one stream of pages.
    """
    days: dict[str, set[date]] = defaultdict(set)
    for key in partition_keys:
        if not _PARTITION_KEY.fullmatch(str(key)):
            raise ValueError(f"partition key {key!r} is not DATE|SYMBOL (e.g. 2024-03-05|XRPUSDT)")
        parts = partitions.get_partition_key_from_str(key).keys_by_dimension
        symbol = validate_symbol(parts["symbol"], source=f"partition key {key!r}")
        try:
            days[symbol].add(date.fromisoformat(parts["date"]))
        except ValueError:
            raise ValueError(f"partition key {key!r}: {parts['date']!r} is not a date") from None
    windows: dict[str, list[tuple[datetime, datetime]]] = {}
    for symbol in sorted(days):
        ordered = sorted(days[symbol])
        spans: list[tuple[datetime, datetime]] = []
        first = previous = ordered[0]
        for day in ordered[1:]:
            if day != previous + timedelta(days=1):
                spans.append((day_start(first), day_start(previous + timedelta(days=1))))
                first = day
            previous = day
        spans.append((day_start(first), day_start(previous + timedelta(days=1))))
        windows[symbol] = spans
    return windows


def partition_key(day: datetime, symbol: str) -> str:
    """The key of one market partition, as Dagster writes it (dimensions in name order: date, symbol)."""
    return f"{day:%Y-%m-%d}|{symbol}"


def days_between(start: datetime, end: datetime) -> list[datetime]:
    """The UTC days (00:00) of ``[start, end)``, both on day boundaries."""
    return [start + timedelta(days=n) for n in range((end - start).days)]


def partition_range_tags(first: date, last: date, symbol: str) -> dict[str, str]:
    """Run tags for one run over a range of partitions, as a UI backfill with a single-run policy sets."""
    return {
        "dagster/asset_partition_range_start": f"{first.isoformat()}|{symbol}",
        "dagster/asset_partition_range_end": f"{last.isoformat()}|{symbol}",
    }
