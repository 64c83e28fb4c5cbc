"""``coinpilot bench ingest``: a year of 1m bars from the emulator into PostgreSQL.

Yardsticks, measured in the same run on the same server with the same rows:
- raw ``COPY`` of the pre-serialized rows into an empty ``ohlcv_candles``;
- a temp-table upsert (``COPY`` into a temp table, ``INSERT ... ON CONFLICT DO UPDATE``) of the
  same rows over the stored year.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from psycopg import sql
from sqlalchemy import Engine

from coinpilot_pipelines.bench import BenchRow, within
from coinpilot_pipelines.bench.environment import (
    BenchDatabases,
    await_weight_for,
    emulator_process,
    klines_requests,
)
from coinpilot_pipelines.clients.binance import BinanceSpotClient
from coinpilot_pipelines.clock import SYSTEM_CLOCK
from coinpilot_pipelines.market.candles import SeriesKey, normalize
from coinpilot_pipelines.market.ingest import ingest_candles
from coinpilot_pipelines.market.intervals import Interval
from coinpilot_pipelines.market.validation import validate_candles
from coinpilot_pipelines.storage.candles import (
    CANDLE_KEY,
    COPY_COLUMNS,
    copy_csv,
    copy_statement,
    upsert_candles,
)
from coinpilot_pipelines.storage.database import dispose_engines, get_engine

BENCH_END = datetime(2025, 1, 1, tzinfo=timezone.utc)
BENCH_SERIES = SeriesKey("binance", "BTCUSDT", Interval.parse("1m"))


@dataclass(frozen=True)
class Timing:
    label: str
    rows: int
    seconds: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")


def _timed(label: str, rows: int, action: Callable[[], object]) -> Timing:
    started = time.perf_counter()
    action()
    return Timing(label, rows, time.perf_counter() - started)


def _raw_copy(engine: Engine, payloads: list[bytes]) -> None:
    with engine.begin() as connection:
        with connection.connection.driver_connection.cursor().copy(copy_statement("ohlcv_candles")) as copy:
            for payload in payloads:
                copy.write(payload)


def _temp_table_upsert(engine: Engine, payloads: list[bytes]) -> None:
    """The textbook upsert: stage everything, then overwrite every conflicting row."""
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in COPY_COLUMNS)
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in COPY_COLUMNS if c not in CANDLE_KEY
    )
    with engine.begin() as connection:
        driver = connection.connection.driver_connection
        driver.execute("CREATE TEMP TABLE bench_stage (LIKE ohlcv_candles INCLUDING DEFAULTS) ON COMMIT DROP")
        with driver.cursor().copy(copy_statement("bench_stage")) as copy:
            for payload in payloads:
                copy.write(payload)
        driver.execute(
            sql.SQL(
                "INSERT INTO ohlcv_candles ({columns}) SELECT {columns} FROM bench_stage "
                "ON CONFLICT (exchange, symbol, interval, open_time) DO UPDATE SET {updates}"
            ).format(columns=columns, updates=updates)
        )


def bench_ingest(days: int, dsn: str | None, echo: Callable[[str], None]) -> list[BenchRow]:
    start = BENCH_END - timedelta(days=days)
    databases = BenchDatabases(dsn)
    try:
        with emulator_process() as emulator, BinanceSpotClient(emulator.url) as client:
            echo(f"  warming the emulator with {days} days of {BENCH_SERIES.symbol} 1m bars ...")
            frames = []
            for batch in client.fetch_candles(BENCH_SERIES.symbol, BENCH_SERIES.interval, start, BENCH_END):
                frames.append(validate_candles(normalize(batch).frame, batch.raw_rows, BENCH_SERIES.interval).valid)
            rows = sum(len(f) for f in frames)
            stamp = SYSTEM_CLOCK.now()
            payloads = [copy_csv(f, BENCH_SERIES, source="bench", ingested_at=stamp) for f in frames]

            def ingest(url: str) -> None:
                report = ingest_candles(client, get_engine(url), BENCH_SERIES, start, BENCH_END, source="bench")
                if report.present_bars != rows:
                    raise RuntimeError(f"ingest stored {report.present_bars} bars, expected {rows}")

            echo(f"  first-time ingest of {rows:,} bars, end to end ...")
            target = databases.fresh()
            get_engine(target)
            await_weight_for(emulator.url, klines_requests(days))
            first = _timed("first-time ingest, end to end", rows, lambda: ingest(target))
            echo("  re-ingesting the same year ...")
            await_weight_for(emulator.url, klines_requests(days))
            again = _timed("re-ingest of the stored window, end to end", rows, lambda: ingest(target))

            write_only_db = databases.fresh()
            engine = get_engine(write_only_db)
            write_path = _timed("database write path alone (first time)", rows, lambda: [
                upsert_candles(engine, BENCH_SERIES, f, source="bench", ingested_at=stamp) for f in frames])

            echo("  yardsticks: raw COPY into an empty table, temp-table upsert over a stored year ...")
            copy_db = databases.fresh()
            copy_engine = get_engine(copy_db)
            raw_copy = _timed("yardstick: raw COPY into an empty table", rows, lambda: _raw_copy(copy_engine, payloads))
            upsert_yardstick = _timed("yardstick: temp-table upsert over the stored window", rows,
                                      lambda: _temp_table_upsert(copy_engine, payloads))
    finally:
        dispose_engines()
        databases.close()

    first_ratio = raw_copy.seconds / first.seconds
    reingest_ratio = upsert_yardstick.seconds / again.seconds
    rows_out = [BenchRow("ingest", f"{t.label} ({t.rows:,} bars)", t.rows_per_s, "rows/s")
                for t in (first, again, write_path, raw_copy, upsert_yardstick)]
    return [
        *rows_out,
        BenchRow("ingest", "first-time ingest / raw COPY throughput", first_ratio, "x", ">= 0.50",
                 within(first_ratio, at_least=0.5)),
        BenchRow("ingest", "re-ingest / temp-table upsert throughput", reingest_ratio, "x", ">= 0.50",
                 within(reingest_ratio, at_least=0.5)),
    ]
