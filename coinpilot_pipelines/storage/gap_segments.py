"""Gap segments: registering, merging, reshaping and claiming runs of missing bars.

Every change to the segments of one series happens in a transaction holding that series' lock
(an advisory lock on PostgreSQL; SQLite has a single writer anyway), and every bar count is
recounted from ``ohlcv_candles`` inside that transaction, never estimated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, Row, Select, and_, func, or_, select, text

from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.market.continuity import subtract
from coinpilot_pipelines.market.intervals import Interval, to_ms
from coinpilot_pipelines.storage.continuity import holes
from coinpilot_pipelines.storage.frames import of_series
from coinpilot_pipelines.storage.schema import gap_segments, ohlcv_candles

ACTIVE_STATES = ("open", "repairing")


@dataclass(frozen=True)
class Segment:
    id: int
    series: SeriesKey
    from_open_time: datetime
    to_open_time: datetime
    missing_bars: int
    remaining_bars: int
    state: str
    source: str
    detected_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    retry_count: int
    empty_fetches: int
    recovered_at: datetime | None
    merged_into: int | None
    reason: str | None

    @classmethod
    def from_row(cls, row: Row) -> Segment:
        values = row._mapping
        return cls(
            id=values["id"],
            series=SeriesKey(values["exchange"], values["symbol"], Interval.parse(values["interval"])),
            **{name: values[name] for name in (
                "from_open_time", "to_open_time", "missing_bars", "remaining_bars", "state", "source",
                "detected_at", "last_attempt_at", "next_attempt_at", "retry_count", "empty_fetches",
                "recovered_at", "merged_into", "reason")},
        )


@dataclass(frozen=True)
class Registration:
    segment_id: int
    created: bool  # False when the gap was merged into a segment already being tracked


def lock_series(connection: Connection, series: SeriesKey) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                           {"key": f"gap_segments:{series.exchange}:{series.symbol}:{series.interval.code}"})


def remaining_bars(connection: Connection, series: SeriesKey, start: datetime, end: datetime) -> int:
    present = connection.execute(
        select(func.count()).select_from(ohlcv_candles).where(
            of_series(ohlcv_candles, series),
            ohlcv_candles.c.open_time >= start, ohlcv_candles.c.open_time < end,
        )
    ).scalar_one()
    return series.interval.bars_between(to_ms(start), to_ms(end)) - present


def _overlapping(connection: Connection, series: SeriesKey, start: datetime, end: datetime,
                 states: tuple[str, ...], *, adjacent: bool = False) -> list[Segment]:
    if adjacent:
        touches = and_(gap_segments.c.from_open_time <= end, gap_segments.c.to_open_time >= start)
    else:
        touches = and_(gap_segments.c.from_open_time < end, gap_segments.c.to_open_time > start)
    rows = connection.execute(
        select(gap_segments).where(of_series(gap_segments, series), gap_segments.c.state.in_(states), touches)
        .order_by(gap_segments.c.id)
    ).all()
    return [Segment.from_row(r) for r in rows]


def register_gap(engine: Engine, series: SeriesKey, start: datetime, end: datetime, *, source: str,
                 now: datetime) -> list[Registration]:
    """Track the missing bars in ``[start, end)``.

    Parts already explained by an unrecoverable segment are left alone; a part that overlaps or
    touches a segment being tracked merges into it (the oldest survives, the others point to it);
    anything else becomes a new open segment. Re-registering a known gap changes nothing.
    """
    registrations = []
    with engine.begin() as connection:
        lock_series(connection, series)
        explained = _overlapping(connection, series, start, end, ("unrecoverable",))
        for piece_start, piece_end in subtract((start, end), [(s.from_open_time, s.to_open_time) for s in explained]):
            registration = _merge_or_insert(connection, series, piece_start, piece_end, source, now)
            if registration is not None:
                registrations.append(registration)
    return registrations


def _merge_or_insert(connection: Connection, series: SeriesKey, start: datetime, end: datetime, source: str,
                     now: datetime) -> Registration | None:
    touching = _overlapping(connection, series, start, end, ACTIVE_STATES, adjacent=True)
    if not touching:
        missing = remaining_bars(connection, series, start, end)
        if missing == 0:
            return None
        segment_id = connection.execute(
            gap_segments.insert().values(
                exchange=series.exchange, symbol=series.symbol, interval=series.interval.code,
                from_open_time=start, to_open_time=end,
                missing_bars=series.interval.bars_between(to_ms(start), to_ms(end)), remaining_bars=missing,
                state="open", source=source, detected_at=now, retry_count=0, empty_fetches=0,
            ).returning(gap_segments.c.id)
        ).scalar_one()
        return Registration(segment_id, created=True)

    survivor, others = touching[0], touching[1:]
    merged_start = min([start, *(s.from_open_time for s in touching)])
    merged_end = max([end, *(s.to_open_time for s in touching)])
    if (merged_start, merged_end) != (survivor.from_open_time, survivor.to_open_time) or others:
        connection.execute(
            gap_segments.update().where(gap_segments.c.id == survivor.id).values(
                from_open_time=merged_start, to_open_time=merged_end,
                missing_bars=series.interval.bars_between(to_ms(merged_start), to_ms(merged_end)),
                remaining_bars=remaining_bars(connection, series, merged_start, merged_end),
                detected_at=min([survivor.detected_at, *(s.detected_at for s in others)]),
            )
        )
        if others:
            connection.execute(
                gap_segments.update().where(gap_segments.c.id.in_([s.id for s in others]))
                .values(state="merged", merged_into=survivor.id)
            )
    return Registration(survivor.id, created=False)


@dataclass(frozen=True)
class Reshape:
    segment_id: int
    state: str
    remaining_bars: int  # of this segment after reshaping
    split_into: tuple[int, ...] = ()  # segments created for its other holes
    split_bars: int = 0  # bars missing in those

    @property
    def total_remaining(self) -> int:
        return self.remaining_bars + self.split_bars


def reshape_segments(connection: Connection, series: SeriesKey, start: datetime, end: datetime,
                     now: datetime, *, segment_ids: tuple[int, ...] | None = None) -> list[Reshape]:
    """Fit the tracked segments touching ``[start, end)`` to the holes that remain after a write.

    A segment with no hole left is recovered; one hole shrinks it; several split it, the first
    staying with the segment and each other becoming a new open segment with the same history.
    """
    segments = _overlapping(connection, series, start, end, ACTIVE_STATES)
    if segment_ids is not None:
        segments = [s for s in segments if s.id in segment_ids]
    changes = []
    for segment in segments:
        remaining = holes(connection, series, segment.from_open_time, segment.to_open_time)
        if not remaining:
            connection.execute(gap_segments.update().where(gap_segments.c.id == segment.id).values(
                state="recovered", remaining_bars=0, recovered_at=now))
            changes.append(Reshape(segment.id, "recovered", 0))
            continue
        first, *rest = remaining
        connection.execute(gap_segments.update().where(gap_segments.c.id == segment.id).values(
            from_open_time=first.from_open_time, to_open_time=first.to_open_time,
            missing_bars=first.missing_bars, remaining_bars=first.missing_bars))
        new_ids = tuple(
            connection.execute(gap_segments.insert().values(
                exchange=series.exchange, symbol=series.symbol, interval=series.interval.code,
                from_open_time=hole.from_open_time, to_open_time=hole.to_open_time,
                missing_bars=hole.missing_bars, remaining_bars=hole.missing_bars, state="open",
                source=segment.source, detected_at=segment.detected_at, last_attempt_at=segment.last_attempt_at,
                next_attempt_at=now, retry_count=segment.retry_count,
                empty_fetches=segment.empty_fetches,
            ).returning(gap_segments.c.id)).scalar_one()
            for hole in rest
        )
        changes.append(Reshape(segment.id, segment.state, first.missing_bars, new_ids,
                               sum(hole.missing_bars for hole in rest)))
    return changes


def refresh_after_write(engine: Engine, series: SeriesKey, start: datetime, end: datetime,
                        now: datetime) -> list[Reshape]:
    """Bars were just stored in ``[start, end)`` (late bars, a repair): reshape what they touch."""
    with engine.begin() as connection:
        lock_series(connection, series)
        return reshape_segments(connection, series, start, end, now)


def _due(now: datetime, claim_timeout: timedelta, segment_ids: list[int] | None) -> Select:
    """Segments waiting for an attempt, by priority: most remaining bars first, then oldest.

    A ``repairing`` claim older than ``claim_timeout`` belongs to a run that died and is due again.
    """
    due = or_(
        and_(gap_segments.c.state == "open",
             or_(gap_segments.c.next_attempt_at.is_(None), gap_segments.c.next_attempt_at <= now)),
        and_(gap_segments.c.state == "repairing", gap_segments.c.last_attempt_at < now - claim_timeout),
    )
    query = select(gap_segments).where(due)
    if segment_ids is not None:
        query = query.where(gap_segments.c.id.in_(segment_ids))
    return query.order_by(gap_segments.c.remaining_bars.desc(), gap_segments.c.detected_at, gap_segments.c.id)


def due_segments(engine: Engine, now: datetime, *, claim_timeout: timedelta) -> list[Segment]:
    with engine.connect() as connection:
        return [Segment.from_row(r) for r in connection.execute(_due(now, claim_timeout, None)).all()]


def claim_due_segments(engine: Engine, now: datetime, *, limit: int, claim_timeout: timedelta,
                       segment_ids: list[int] | None = None) -> list[Segment]:
    """Mark up to ``limit`` due segments as ``repairing`` and return them.

    On PostgreSQL rows locked by another claimer are skipped, so parallel repair runs never work
    on the same segment.
    """
    query = _due(now, claim_timeout, segment_ids).limit(limit)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        claimed = [Segment.from_row(r) for r in connection.execute(query).all()]
        if claimed:
            connection.execute(gap_segments.update().where(gap_segments.c.id.in_([s.id for s in claimed]))
                               .values(state="repairing", last_attempt_at=now))
    return claimed


def update_segment(engine: Engine, segment_id: int, **values: object) -> None:
    with engine.begin() as connection:
        connection.execute(gap_segments.update().where(gap_segments.c.id == segment_id).values(**values))


def get_segment(engine: Engine, segment_id: int) -> Segment:
    with engine.connect() as connection:
        return Segment.from_row(connection.execute(select(gap_segments).where(gap_segments.c.id == segment_id)).one())


def list_segments(engine: Engine, series: SeriesKey | None = None, states: tuple[str, ...] | None = None) -> list[Segment]:
    query = select(gap_segments).order_by(gap_segments.c.id)
    if series is not None:
        query = query.where(of_series(gap_segments, series))
    if states is not None:
        query = query.where(gap_segments.c.state.in_(states))
    with engine.connect() as connection:
        return [Segment.from_row(r) for r in connection.execute(query).all()]

