"""Fetch -> normalize -> validate -> store for one series over one time window.

The one path every candle takes (the `candles` asset, the live sensor, gap repair and the
benchmark call it). Database writes run on a background thread so the next chunk is fetched and
checked while the previous one is copied into the database.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar

import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from coinpilot_pipelines.clients.http import RequestStats
from coinpilot_pipelines.clock import SYSTEM_CLOCK
from coinpilot_pipelines.market.candles import (
    RAW_INDEX,
    CandleBatch,
    SeriesKey,
    normalize,
)
from coinpilot_pipelines.market.intervals import Interval, from_ms, to_ms
from coinpilot_pipelines.market.validation import validate_candles
from coinpilot_pipelines.storage.candles import (
    UpsertCounts,
    record_rejects,
    upsert_candles,
    window_summary,
)

PREVIEW_ROWS = 5
DB_WRITE_ATTEMPTS = 6  # about 15 s of retries: enough for a database restart or failover
log = logging.getLogger(__name__)
T = TypeVar("T")


class MarketDataClient(Protocol):
    exchange: str
    stats: RequestStats

    def fetch_candles(self, symbol: str, interval: Interval, start: datetime, end: datetime, *,
                      chunk_rows: int = ...) -> Iterator[CandleBatch]: ...

    def close(self) -> None: ...


@dataclass
class IngestReport:
    series: SeriesKey
    window_start: datetime
    window_end: datetime  # exclusive; capped at the last closed bar
    fetched: int = 0
    counts: UpsertCounts = field(default_factory=UpsertCounts)
    rejected: int = 0
    duplicates_collapsed: int = 0
    open_bars: int = 0
    extra_fields: int = 0  # rows with fields after the documented ones (kept, extras dropped)
    fetched_by_day: Counter[datetime] = field(default_factory=Counter)  # UTC day -> bars the exchange sent
    rejected_by_day: Counter[datetime] = field(default_factory=Counter)  # of the rejects whose time is known
    db_retries: int = 0
    expected_bars: int = 0
    present_bars: int = 0
    first_open_time: datetime | None = None
    last_open_time: datetime | None = None
    reject_reasons: Counter[str] = field(default_factory=Counter)
    preview: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def missing_bars(self) -> int:
        return max(0, self.expected_bars - self.present_bars)

    @property
    def completeness(self) -> float:
        return 1.0 if self.expected_bars == 0 else self.present_bars / self.expected_bars


def closed_window_end(end: datetime, interval: Interval, now: datetime) -> datetime:
    """``end``, or the open time of the bar still in progress at ``now`` if that is earlier."""
    return min(end, from_ms(interval.floor_ms(to_ms(now))))


class _BackgroundWriter:
    """Runs database writes one at a time on a worker thread, at most ``depth`` queued."""

    def __init__(self, depth: int = 2) -> None:
        self._jobs: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="candle-writer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if self._error is None:
                try:
                    job()
                except BaseException as exc:  # noqa: BLE001 - handed to the submitting thread
                    self._error = exc

    def submit(self, job: Callable[[], None]) -> None:
        self._raise_if_failed()
        self._jobs.put(job)

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error


def _with_db_retries(action: Callable[[], T], report: IngestReport) -> T:
    """Run a database step again after a lost connection (say the database restarted).

    Every step is one transaction, rolled back whole when the connection drops, and idempotent,
    so running it again once the database answers gives the same rows.
    """
    for attempt in range(1, DB_WRITE_ATTEMPTS + 1):
        try:
            return action()
        except OperationalError as exc:
            if attempt == DB_WRITE_ATTEMPTS:
                raise
            report.db_retries += 1
            delay = min(8.0, 0.5 * 2 ** (attempt - 1))
            log.warning("%s: database unavailable (%s); retry %d in %.1f s", report.series.symbol,
                        str(exc).splitlines()[0], attempt, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _count_by_day(counter: Counter[datetime], batch: CandleBatch) -> None:
    days = batch.frame["open_time"].dt.floor("D").value_counts()
    counter.update({day.to_pydatetime(): int(n) for day, n in days.items()})
    counter.update(_day(r.open_time) for r in batch.rejects if r.open_time is not None)


def ingest_candles(
    client: MarketDataClient,
    engine: Engine,
    series: SeriesKey,
    start: datetime,
    end: datetime,
    *,
    source: str,
    run_id: str | None = None,
    now: datetime | None = None,
    chunk_rows: int = 50_000,
    fetched: Iterable[CandleBatch] | None = None,
) -> IngestReport:
    """Store every closed bar of ``series`` in ``[start, end)``; quarantine what fails the contract.

    ``fetched``: the window's bars when the caller already has them (the live sensor reads a page
    first to see whether anything changed), instead of fetching them from ``client``."""
    now = now or SYSTEM_CLOCK.now()
    window_end = closed_window_end(end, series.interval, now)
    report = IngestReport(series=series, window_start=start, window_end=max(start, window_end))
    if window_end <= start:
        return report
    ingested_at = now
    previews: list[pd.DataFrame] = []
    writer = _BackgroundWriter()

    def store(frame: pd.DataFrame) -> None:
        report.counts.add(_with_db_retries(
            lambda: upsert_candles(engine, series, frame, source=source, ingested_at=ingested_at), report))

    try:
        if fetched is None:
            fetched = client.fetch_candles(series.symbol, series.interval, start, window_end, chunk_rows=chunk_rows)
        for batch in fetched:
            report.fetched += len(batch) + len(batch.rejects)
            _count_by_day(report.fetched_by_day, batch)
            report.open_bars += batch.open_bars
            report.extra_fields += batch.extra_fields
            normalized = normalize(batch)
            validated = validate_candles(normalized.frame, batch.raw_rows, series.interval)
            report.duplicates_collapsed += normalized.duplicates_collapsed
            rejects = [*batch.rejects, *normalized.rejects, *validated.rejects]
            if rejects:
                report.rejected += len(rejects)
                report.rejected_by_day.update(_day(r.open_time) for r in rejects if r.open_time is not None)
                report.reject_reasons.update(r.reason for r in rejects)
                _with_db_retries(lambda: record_rejects(engine, series, rejects, source=source, run_id=run_id,
                                                        rejected_at=ingested_at), report)
            if not validated.valid.empty:
                previews.append(validated.valid.head(PREVIEW_ROWS))
                previews.append(validated.valid.tail(PREVIEW_ROWS))
                writer.submit(lambda frame=validated.valid: store(frame))
    finally:
        writer.close()

    summary = _with_db_retries(lambda: window_summary(engine, series, start, report.window_end), report)
    report.expected_bars = series.interval.bars_between(to_ms(start), to_ms(report.window_end))
    report.present_bars = summary.present_bars
    report.first_open_time = summary.first_open_time
    report.last_open_time = summary.last_open_time
    if previews:
        stored = pd.concat(previews).drop_duplicates("open_time").sort_values("open_time")
        preview = pd.concat([stored.head(PREVIEW_ROWS), stored.tail(PREVIEW_ROWS)]).drop_duplicates("open_time")
        report.preview = preview.drop(columns=[RAW_INDEX]).reset_index(drop=True)
    return report
