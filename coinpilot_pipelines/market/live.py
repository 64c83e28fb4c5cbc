"""Live ingestion: each tick stores the bars closed since the cursor and reports the holes.

The cursor is small JSON (the last closed open time per symbol, and where to resume when a tick
ran out of time), so it survives restarts of whatever drives the ticks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from sqlalchemy import Engine

from coinpilot_pipelines.market.candles import CandleBatch, SeriesKey
from coinpilot_pipelines.market.continuity import Gap
from coinpilot_pipelines.market.ingest import IngestReport, MarketDataClient, ingest_candles
from coinpilot_pipelines.market.intervals import Interval, from_ms, to_ms
from coinpilot_pipelines.storage.candles import latest_open_time
from coinpilot_pipelines.storage.continuity import holes_in
from coinpilot_pipelines.storage.gap_segments import Reshape, refresh_after_write, register_gap


@dataclass(frozen=True)
class LivePolicy:
    lookback_bars: int = 5  # re-read this many bars behind the cursor, so late bars are picked up
    # A tick stores at most this many bars behind now (a day of 1m bars). A store further behind
    # is a job for a backfill of the missing partitions, not for the live sensor: one gap segment
    # of years would start a repair of millions of bars that nothing in the UI explains.
    max_catchup_bars: int = 1440
    budget_s: float = 10.0  # a tick stops starting new symbols after this long


@dataclass
class LiveCursor:
    last_open_ms: dict[str, int] = field(default_factory=dict)
    resume_at: str | None = None  # the symbol a tick cut short by its budget did not reach

    def to_json(self) -> str:
        return json.dumps({"last_open_ms": self.last_open_ms, "resume_at": self.resume_at}, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | None) -> LiveCursor:
        if not raw:
            return cls()
        try:
            doc = json.loads(raw)
            return cls({str(k): int(v) for k, v in doc["last_open_ms"].items()}, doc.get("resume_at"))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"live kline cursor is not understood ({exc}): {raw[:200]!r}") from None


@dataclass(frozen=True)
class NewGap:
    symbol: str
    segment_id: int
    gap: Gap


@dataclass(frozen=True)
class LeftBehind:
    """Bars the live sensor did not catch up: the store ends too far before now."""

    symbol: str
    newest_stored: datetime
    bars: int  # missing between the newest stored bar and where the catch-up started


@runtime_checkable
class PagedClient(MarketDataClient, Protocol):
    """A client that can hand over one page's raw answer before parsing it."""

    max_page_bars: int

    def fetch_page(self, symbol: str, interval: Interval, start_ms: int, end_ms: int) -> bytes: ...

    def parse_page(self, body: bytes, interval: Interval, start_ms: int, end_ms: int) -> CandleBatch: ...


class RepeatedAnswers:
    """The exchange's last answer per symbol for the window a tick re-reads, once its bars are stored.

    Most ticks fall within the same bar: the exchange then repeats itself byte for byte, and the
    bars of that answer are already stored, checked and scanned for holes. Such a symbol costs a
    tick its one request. Kept in the process (the code server lives long); a new process starts
    with none and takes the full path once.
    """

    def __init__(self) -> None:
        self._answers: dict[str, tuple[int, int, bytes]] = {}

    def unchanged(self, symbol: str, start_ms: int, end_ms: int, body: bytes) -> bool:
        return self._answers.get(symbol) == (start_ms, end_ms, body)

    def remember(self, symbol: str, start_ms: int, end_ms: int, body: bytes) -> None:
        self._answers[symbol] = (start_ms, end_ms, body)


@dataclass
class LiveTick:
    cursor: LiveCursor
    reports: list[IngestReport] = field(default_factory=list)
    new_gaps: list[NewGap] = field(default_factory=list)
    reshaped: list[Reshape] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)  # symbols left for the next tick
    left_behind: list[LeftBehind] = field(default_factory=list)


def poll_live_bars(
    client: MarketDataClient,
    engine: Engine,
    series_list: list[SeriesKey],
    cursor: LiveCursor,
    now: datetime,
    policy: LivePolicy,
    *,
    clock: Callable[[], float] = time.monotonic,
    answers: RepeatedAnswers | None = None,
) -> LiveTick:
    """``answers`` (with a `PagedClient`): skip the symbols whose exchange answer has not changed."""
    started = clock()
    symbols = [s.symbol for s in series_list]
    first = symbols.index(cursor.resume_at) if cursor.resume_at in symbols else 0
    order = series_list[first:] + series_list[:first]
    tick = LiveTick(cursor=LiveCursor(dict(cursor.last_open_ms)))
    for position, series in enumerate(order):
        if position and clock() - started >= policy.budget_s:
            tick.deferred = [s.symbol for s in order[position:]]
            tick.cursor.resume_at = order[position].symbol
            break
        _poll_one(client, engine, series, tick, now, policy, answers)
    return tick


def _poll_one(client: MarketDataClient, engine: Engine, series: SeriesKey, tick: LiveTick, now: datetime,
              policy: LivePolicy, answers: RepeatedAnswers | None) -> None:
    step = series.interval.ms
    closed_end = series.interval.floor_ms(to_ms(now))  # open time of the bar still in progress
    last = tick.cursor.last_open_ms.get(series.symbol)
    if last is None:
        stored = latest_open_time(engine, series)
        last = to_ms(stored) if stored is not None else None
    if last is None:
        fetch_start = closed_end - policy.lookback_bars * step  # a new series starts from now
    else:
        fetch_start = last + step - policy.lookback_bars * step
        catchup_start = closed_end - policy.max_catchup_bars * step
        if last + step < catchup_start:
            # Too far behind for a live tick: catch up the window, leave the rest to a backfill.
            tick.left_behind.append(LeftBehind(series.symbol, from_ms(last), (catchup_start - last - step) // step))
            last = catchup_start - step
            fetch_start = catchup_start
    if closed_end <= fetch_start:
        return
    fetched = body = None
    if answers is not None and isinstance(client, PagedClient) and closed_end - fetch_start <= client.max_page_bars * step:
        paged = client
        body = paged.fetch_page(series.symbol, series.interval, fetch_start, closed_end)
        if answers.unchanged(series.symbol, fetch_start, closed_end, body):
            return
        fetched = [paged.parse_page(body, series.interval, fetch_start, closed_end)]
    report = ingest_candles(client, engine, series, from_ms(fetch_start), from_ms(closed_end), source="stream",
                            now=now, fetched=fetched)
    tick.reports.append(report)
    if report.last_open_time is None:
        return
    newest = to_ms(report.last_open_time)
    # Late bars behind the cursor shrink or split the segments they fall into.
    tick.reshaped.extend(refresh_after_write(engine, series, from_ms(fetch_start), from_ms(newest + step), now))
    if last is not None and newest > last:
        for gap in holes_in(engine, series, from_ms(last + step), from_ms(newest)):
            for registration in register_gap(engine, series, gap.from_open_time, gap.to_open_time,
                                             source="stream", now=now):
                if registration.created:
                    tick.new_gaps.append(NewGap(series.symbol, registration.segment_id, gap))
    tick.cursor.last_open_ms[series.symbol] = max(last or newest, newest)
    if body is not None and answers is not None:
        answers.remember(series.symbol, fetch_start, closed_end, body)
