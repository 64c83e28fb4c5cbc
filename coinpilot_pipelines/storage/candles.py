"""Writing and summarizing candles: bulk, idempotent, and safe under concurrent writers.

PostgreSQL: every write to a series first takes a transaction-scoped advisory lock on that
series, so two runs writing the same bars queue instead of deadlocking. A range that holds no
bars yet is loaded by a straight ``COPY`` into ``ohlcv_candles``; otherwise rows are ``COPY``-ed
into a temporary table and merged with ``INSERT ... ON CONFLICT DO UPDATE``, touching only bars
whose values changed. SQLite (the embedded default) gets the same upsert as one executemany.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import sql as pgsql
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    and_,
    bindparam,
    column,
    func,
    literal_column,
    select,
    table,
    text,
    tuple_,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from coinpilot_pipelines.market.candles import (
    DECIMAL_COLUMNS,
    CandleReject,
    SeriesKey,
    epoch_ms,
)
from coinpilot_pipelines.market.intervals import from_ms, to_ms
from coinpilot_pipelines.storage.frames import of_series, query_frame
from coinpilot_pipelines.storage.schema import candle_rejects, ohlcv_candles
from coinpilot_pipelines.storage.sql_files import load_sql
from coinpilot_pipelines.storage.types import UtcTimestamp

CANDLE_KEY = ("exchange", "symbol", "interval", "open_time")
COPY_COLUMNS = (
    "exchange", "symbol", "interval", "open_time", "close_time", *DECIMAL_COLUMNS,
    "trade_count", "is_closed", "source", "ingested_at",
)
# Columns whose change makes a re-fetched bar an update; `source` and `ingested_at` only say
# where and when a bar was last written, so they do not.
VALUE_COLUMNS = ("close_time", *DECIMAL_COLUMNS, "trade_count", "is_closed")

_HOUR_MINUTE = pa.array([f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60)])
_SECOND_MILLI = pa.array([f"{ms // 1000:02d}.{ms % 1000:03d}Z" for ms in range(60_000)])


@dataclass
class UpsertCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    inserted_by_day: Counter[datetime] = field(default_factory=Counter)  # UTC day -> bars inserted

    def add(self, other: UpsertCounts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.inserted_by_day.update(other.inserted_by_day)


_DAY_MS = 86_400_000


def _days(epoch_days: dict[int, int]) -> Counter[datetime]:
    return Counter({from_ms(int(day) * _DAY_MS): int(n) for day, n in epoch_days.items() if n})


def iso_utc(epoch_ms_values: np.ndarray) -> pa.Array:
    """ISO-8601 UTC text for epoch milliseconds, built from lookup tables.

    Formatting timestamps one by one dominated the cost of building COPY data; candle times
    repeat the same few days, minutes and second fractions, so three table lookups suffice.
    """
    days, remainder = np.divmod(epoch_ms_values.astype(np.int64), 86_400_000)
    unique_days, day_index = np.unique(days, return_inverse=True)
    day_text = pa.array(np.char.add(np.datetime_as_string(unique_days.astype("datetime64[D]")), "T"))
    return pc.binary_join_element_wise(
        pc.take(day_text, pa.array(day_index)),
        pc.take(_HOUR_MINUTE, pa.array(remainder // 60_000)),
        pc.take(_SECOND_MILLI, pa.array(remainder % 60_000)),
        "",
    )


def copy_csv(frame: pd.DataFrame, series: SeriesKey, *, source: str, ingested_at: datetime) -> bytes:
    """The frame as CSV rows in `COPY_COLUMNS` order (pyarrow's writer: no Python loop per row)."""
    rows = len(frame)

    def constant(value: str) -> pa.Array:
        return pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, dtype=np.int32)), pa.array([value]))

    arrow_table = pa.table(
        {
            "exchange": constant(series.exchange),
            "symbol": constant(series.symbol),
            "interval": constant(series.interval.code),
            "open_time": iso_utc(epoch_ms(frame["open_time"])),
            "close_time": iso_utc(epoch_ms(frame["close_time"])),
            **{name: pa.array(frame[name]) for name in DECIMAL_COLUMNS},
            "trade_count": pa.array(frame["trade_count"], type=pa.int64()),
            "is_closed": constant("t"),
            "source": constant(source),
            "ingested_at": constant(ingested_at.isoformat()),
        }
    )
    buffer = io.BytesIO()
    pacsv.write_csv(arrow_table, buffer, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return buffer.getvalue()


def copy_statement(table: str) -> pgsql.Composed:
    return pgsql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
        pgsql.Identifier(table), pgsql.SQL(", ").join(pgsql.Identifier(c) for c in COPY_COLUMNS)
    )


def _in_series(series: SeriesKey, first: datetime, last: datetime) -> ColumnElement[bool]:
    """Bars of ``series`` with open time in ``[first, last]`` (both ends included)."""
    return and_(
        of_series(ohlcv_candles, series),
        ohlcv_candles.c.open_time.between(first, last),
    )


def _upsert_statement(dialect_insert):  # noqa: ANN001, ANN202 - dialect-specific Insert
    """INSERT ... ON CONFLICT DO UPDATE that rewrites a stored bar only when its values differ."""
    statement = dialect_insert(ohlcv_candles)
    excluded = statement.excluded
    return statement, dict(
        index_elements=list(CANDLE_KEY),
        set_={c: excluded[c] for c in (*VALUE_COLUMNS, "source", "ingested_at")},
        where=tuple_(*(ohlcv_candles.c[c] for c in VALUE_COLUMNS)).is_distinct_from(
            tuple_(*(excluded[c] for c in VALUE_COLUMNS))
        ),
    )


def upsert_candles(engine: Engine, series: SeriesKey, frame: pd.DataFrame, *, source: str,
                   ingested_at: datetime) -> UpsertCounts:
    """Insert new bars and update changed ones, in one transaction; returns what happened."""
    if frame.empty:
        return UpsertCounts()
    first = frame["open_time"].iloc[0].to_pydatetime()
    last = frame["open_time"].iloc[-1].to_pydatetime()
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            return _upsert_postgresql(connection, series, frame, first, last, source, ingested_at)
        return _upsert_sqlite(connection, series, frame, first, last, source, ingested_at)


def _series_lock_key(series: SeriesKey) -> str:
    return f"ohlcv_candles:{series.exchange}:{series.symbol}:{series.interval.code}"


def _upsert_postgresql(connection: Connection, series: SeriesKey, frame: pd.DataFrame, first: datetime,
                       last: datetime, source: str, ingested_at: datetime) -> UpsertCounts:
    connection.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                       {"key": _series_lock_key(series)})
    already_stored = connection.execute(
        select(func.count()).select_from(
            select(ohlcv_candles.c.open_time).where(_in_series(series, first, last)).limit(1).subquery()
        )
    ).scalar_one()
    data = copy_csv(frame, series, source=source, ingested_at=ingested_at)
    cursor = connection.connection.driver_connection.cursor()
    if not already_stored:
        with cursor.copy(copy_statement("ohlcv_candles")) as copy:
            copy.write(data)
        per_day = np.unique(epoch_ms(frame["open_time"]) // _DAY_MS, return_counts=True)
        return UpsertCounts(inserted=len(frame), inserted_by_day=_days(dict(zip(*per_day, strict=True))))

    connection.execute(text("CREATE TEMP TABLE candle_stage (LIKE ohlcv_candles INCLUDING DEFAULTS) ON COMMIT DROP"))
    with cursor.copy(copy_statement("candle_stage")) as copy:
        copy.write(data)
    stage = table("candle_stage", *(column(c) for c in COPY_COLUMNS))
    statement, conflict = _upsert_statement(pg_insert)
    statement = (
        statement.from_select(list(COPY_COLUMNS), select(*(stage.c[c] for c in COPY_COLUMNS)))
        .on_conflict_do_update(**conflict)
        # xmax is 0 for a freshly inserted row version and non-zero for an updated one.
        .returning(literal_column("xmax = 0", Boolean).label("inserted"),
                   func.floor(func.extract("epoch", ohlcv_candles.c.open_time) / 86400).label("day"))
        .cte("upserted")
    )
    per_day = connection.execute(
        select(statement.c.day, func.count().filter(statement.c.inserted), func.count().filter(~statement.c.inserted))
        .group_by(statement.c.day)
    ).all()
    inserted, updated = sum(row[1] for row in per_day), sum(row[2] for row in per_day)
    return UpsertCounts(inserted=inserted, updated=updated, unchanged=len(frame) - inserted - updated,
                        inserted_by_day=_days({row[0]: row[1] for row in per_day}))


def _upsert_sqlite(connection: Connection, series: SeriesKey, frame: pd.DataFrame, first: datetime,
                   last: datetime, source: str, ingested_at: datetime) -> UpsertCounts:
    def stored() -> dict[int, int]:  # bars per epoch day (the column holds epoch ms here)
        day = type_coerce(ohlcv_candles.c.open_time, Integer) // _DAY_MS
        return dict(connection.execute(
            select(day, func.count()).select_from(ohlcv_candles).where(_in_series(series, first, last)).group_by(day)
        ).all())

    before = stored()
    statement, conflict = _upsert_statement(sqlite_insert)
    compiled = (
        statement.values({c: bindparam(c) for c in COPY_COLUMNS})
        .on_conflict_do_update(**conflict)
        .compile(dialect=connection.dialect)
    )
    # The values are storage values already (epoch ms, decimal text), so they go to the driver
    # directly instead of through the per-value type conversions.
    columns = {
        "exchange": [series.exchange] * len(frame),
        "symbol": [series.symbol] * len(frame),
        "interval": [series.interval.code] * len(frame),
        "open_time": epoch_ms(frame["open_time"]).tolist(),
        "close_time": epoch_ms(frame["close_time"]).tolist(),
        **{name: frame[name].tolist() for name in DECIMAL_COLUMNS},
        "trade_count": [None if pd.isna(v) else int(v) for v in frame["trade_count"]],
        "is_closed": [1] * len(frame),
        "source": [source] * len(frame),
        "ingested_at": [to_ms(ingested_at)] * len(frame),
    }
    cursor = connection.connection.driver_connection.executemany(
        str(compiled), list(zip(*(columns[name] for name in compiled.positiontup), strict=True))
    )
    after = stored()
    by_day = {day: n - before.get(day, 0) for day, n in after.items()}
    inserted = sum(by_day.values())
    updated = cursor.rowcount - inserted
    return UpsertCounts(inserted=inserted, updated=updated, unchanged=len(frame) - inserted - updated,
                        inserted_by_day=_days(by_day))


def record_rejects(engine: Engine, series: SeriesKey, rejects: list[CandleReject], *, source: str,
                   run_id: str | None, rejected_at: datetime) -> int:
    """Quarantine refused rows with their reasons; a row already quarantined is not added twice."""
    if not rejects:
        return 0
    rows = []
    for reject in rejects:
        payload = _payload_text(reject.raw_payload)
        rows.append(
            {
                "exchange": series.exchange, "symbol": series.symbol, "interval": series.interval.code,
                "open_time": reject.open_time, "reason": reject.reason, "raw_payload": payload,
                "payload_sha256": hashlib.sha256(payload.encode()).hexdigest(), "source": source,
                "run_id": run_id, "rejected_at": rejected_at,
            }
        )
    dialect_insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    statement = (
        dialect_insert(candle_rejects)
        .on_conflict_do_nothing(index_elements=["exchange", "symbol", "interval", "payload_sha256"])
        .returning(candle_rejects.c.id)
    )
    with engine.begin() as connection:
        return len(connection.execute(statement, rows).all())


def _payload_text(payload: object) -> str:
    if isinstance(payload, bytes):
        return payload.decode("utf-8", errors="replace")
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True)
class WindowSummary:
    present_bars: int
    first_open_time: datetime | None
    last_open_time: datetime | None


def window_summary(engine: Engine, series: SeriesKey, start: datetime, end: datetime) -> WindowSummary:
    query = load_sql(
        engine,
        "candle_window_summary",
        bind_types={"window_start": UtcTimestamp(), "window_end": UtcTimestamp()},
        result_types={"first_open_time": UtcTimestamp(), "last_open_time": UtcTimestamp()},
    )
    with engine.connect() as connection:
        row = connection.execute(
            query,
            {"exchange": series.exchange, "symbol": series.symbol, "interval": series.interval.code,
             "window_start": start, "window_end": end},
        ).one()
    return WindowSummary(int(row.present_bars), row.first_open_time, row.last_open_time)


def day_summaries(engine: Engine, series: SeriesKey, start: datetime, end: datetime) -> dict[datetime, WindowSummary]:
    """Per UTC day of ``[start, end)`` (keyed by the day's first instant in the window): the bars stored."""
    times = UtcTimestamp()
    query = load_sql(engine, "candle_day_summary", bind_types={"window_start": times, "window_end": times},
                     result_types={"day_start": times, "first_open_time": times, "last_open_time": times})
    with engine.connect() as connection:
        rows = connection.execute(query, {"exchange": series.exchange, "symbol": series.symbol,
                                          "interval": series.interval.code, "window_start": start,
                                          "window_end": end}).all()
    return {row.day_start: WindowSummary(int(row.present_bars), row.first_open_time, row.last_open_time)
            for row in rows}


def read_candles(engine: Engine, series: SeriesKey, start: datetime, end: datetime) -> pd.DataFrame:
    """Stored bars in ``[start, end)``, ascending, decimals as exact text."""
    query = (
        select(*(ohlcv_candles.c[c] for c in ("open_time", "close_time", *DECIMAL_COLUMNS, "trade_count")))
        .where(_in_series(series, start, end), ohlcv_candles.c.open_time < end)
        .order_by(ohlcv_candles.c.open_time)
    )
    with engine.connect() as connection:
        frame = query_frame(connection, query)
    for name in DECIMAL_COLUMNS:
        frame[name] = frame[name].map(lambda v: None if v is None else str(v)).astype("str")
    frame["open_time"] = pd.to_datetime(frame["open_time"], utc=True)
    frame["close_time"] = pd.to_datetime(frame["close_time"], utc=True)
    frame["trade_count"] = frame["trade_count"].astype("Int64")
    return frame


def consistency_violations(engine: Engine, series: SeriesKey, start: datetime, end: datetime) -> dict[str, int]:
    """Per contract rule, how many stored bars in ``[start, end)`` break it (plus ``checked_bars``)."""
    query = load_sql(engine, "candle_consistency",
                     bind_types={"window_start": UtcTimestamp(), "window_end": UtcTimestamp()})
    with engine.connect() as connection:
        row = connection.execute(
            query,
            {"exchange": series.exchange, "symbol": series.symbol, "interval": series.interval.code,
             "interval_ms": series.interval.ms, "window_start": start, "window_end": end},
        ).one()
    return {key: int(value) for key, value in row._mapping.items()}


def count_rejects(engine: Engine, series: SeriesKey, start: datetime, end: datetime) -> int:
    """Quarantined rows of ``series`` whose open time falls in ``[start, end)`` (or is unknown)."""
    query = select(func.count()).select_from(candle_rejects).where(
        of_series(candle_rejects, series),
        (candle_rejects.c.open_time.is_(None))
        | ((candle_rejects.c.open_time >= start) & (candle_rejects.c.open_time < end)),
    )
    with engine.connect() as connection:
        return connection.execute(query).scalar_one()


def first_bar_after(engine: Engine, series: SeriesKey, moment: datetime) -> tuple[datetime, Decimal] | None:
    """The first stored bar opening after ``moment``: its open time and open price."""
    query = (select(ohlcv_candles.c.open_time, ohlcv_candles.c.open)
             .where(of_series(ohlcv_candles, series), ohlcv_candles.c.open_time > moment)
             .order_by(ohlcv_candles.c.open_time).limit(1))
    with engine.connect() as connection:
        row = connection.execute(query).first()
    return (row.open_time, Decimal(str(row.open))) if row else None


def latest_open_time(engine: Engine, series: SeriesKey) -> datetime | None:
    query = select(func.max(ohlcv_candles.c.open_time)).where(
        of_series(ohlcv_candles, series),
    )
    with engine.connect() as connection:
        return connection.execute(query).scalar_one()
