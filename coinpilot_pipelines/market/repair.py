"""Repairing one gap segment: refetch, store, recount, and decide what the segment is now.

A hole the exchange keeps answering with no bars (successfully, several times, spread over time)
is a real outage: it ends ``unrecoverable`` with that reason instead of being retried forever. A
transient failure (rate limit, 5xx, timeout) backs off and tries again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from coinpilot_pipelines.clients.http import ExchangeError
from coinpilot_pipelines.market.ingest import MarketDataClient, ingest_candles
from coinpilot_pipelines.storage.gap_segments import Segment, lock_series, reshape_segments, update_segment


@dataclass(frozen=True)
class RepairPolicy:
    empty_attempts: int = 3  # successful answers with no bars before a hole counts as an outage
    empty_spacing: timedelta = timedelta(seconds=60)  # between those answers
    transient_backoff: timedelta = timedelta(seconds=30)  # first wait after a failure, doubled each time
    max_backoff: timedelta = timedelta(minutes=30)


@dataclass(frozen=True)
class RepairOutcome:
    segment_id: int
    symbol: str
    state: str
    remaining_before: int
    remaining_after: int
    bars_inserted: int
    time_to_recovery_s: float | None = None
    detail: str = ""


def repair_segment(client: MarketDataClient, engine: Engine, segment: Segment, policy: RepairPolicy,
                   now: datetime, *, run_id: str | None = None) -> RepairOutcome:
    series = segment.series
    try:
        report = ingest_candles(client, engine, series, segment.from_open_time, segment.to_open_time,
                                source="repair", run_id=run_id, now=now)
    except ExchangeError as exc:
        retries = segment.retry_count + 1
        wait = min(policy.max_backoff, policy.transient_backoff * 2 ** (retries - 1))
        update_segment(engine, segment.id, state="open", retry_count=retries, next_attempt_at=now + wait,
                       reason=f"last attempt failed: {exc}"[:2000])
        return RepairOutcome(segment.id, series.symbol, "open", segment.remaining_bars, segment.remaining_bars, 0,
                             detail=f"transient failure, retry in {wait.total_seconds():.0f} s: {exc}")

    with engine.begin() as connection:
        lock_series(connection, series)
        reshaped = reshape_segments(connection, series, segment.from_open_time, segment.to_open_time, now,
                                    segment_ids=(segment.id,))
    if not reshaped:  # merged away or recovered by a concurrent writer meanwhile
        return RepairOutcome(segment.id, series.symbol, "unchanged", segment.remaining_bars, 0,
                             report.counts.inserted, detail="segment no longer active")
    change = reshaped[0]
    remaining = change.total_remaining
    if change.state == "recovered":
        ttr = (now - segment.detected_at).total_seconds()
        return RepairOutcome(segment.id, series.symbol, "recovered", segment.remaining_bars, 0,
                             report.counts.inserted, time_to_recovery_s=ttr)

    if report.counts.inserted == 0:
        empties = segment.empty_fetches + 1
        if empties >= policy.empty_attempts:
            reason = (f"the exchange answered {empties} times, at least {policy.empty_spacing.total_seconds():.0f} s "
                      f"apart, with no bars for these {remaining} minutes: an exchange outage, not a lost fetch")
            update_segment(engine, segment.id, state="unrecoverable", empty_fetches=empties, reason=reason,
                           next_attempt_at=None)
            return RepairOutcome(segment.id, series.symbol, "unrecoverable", segment.remaining_bars, remaining, 0,
                                 detail=reason)
        update_segment(engine, segment.id, state="open", empty_fetches=empties, next_attempt_at=now + policy.empty_spacing,
                       reason=f"exchange had no bars on attempt {empties} of {policy.empty_attempts}")
        return RepairOutcome(segment.id, series.symbol, "open", segment.remaining_bars, remaining, 0,
                             detail=f"no bars yet ({empties}/{policy.empty_attempts})")

    # Partly filled: what is left may still arrive, so it gets a fresh count of empty answers.
    update_segment(engine, segment.id, state="open", empty_fetches=0, next_attempt_at=now, reason=None)
    return RepairOutcome(segment.id, series.symbol, "open", segment.remaining_bars, remaining,
                         report.counts.inserted, detail="partly repaired")

