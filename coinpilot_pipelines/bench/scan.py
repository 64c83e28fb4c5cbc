"""``coinpilot bench scan``: the 365-day continuity scan beside a bare ``count(*)`` of the same rows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import delete, func, select

from coinpilot_pipelines.bench import BenchRow, median_seconds, within
from coinpilot_pipelines.bench.environment import BenchDatabases, emulator_process
from coinpilot_pipelines.bench.ingest import BENCH_END, BENCH_SERIES
from coinpilot_pipelines.clients.binance import BinanceSpotClient
from coinpilot_pipelines.market.ingest import ingest_candles
from coinpilot_pipelines.storage.continuity import scan_continuity
from coinpilot_pipelines.storage.database import dispose_engines, get_engine
from coinpilot_pipelines.storage.schema import ohlcv_candles

REPEATS = 7
HOLES = 100


def bench_scan(days: int, dsn: str | None, echo: Callable[[str], None]) -> list[BenchRow]:
    start = BENCH_END - timedelta(days=days)
    databases = BenchDatabases(dsn)
    try:
        engine = get_engine(databases.fresh())
        echo(f"  loading {days} days of {BENCH_SERIES.symbol} 1m bars through the ingest path ...")
        with emulator_process() as emulator, BinanceSpotClient(emulator.url) as client:
            ingest_candles(client, engine, BENCH_SERIES, start, BENCH_END, source="bench")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE ohlcv_candles")

        in_window = (
            (ohlcv_candles.c.exchange == BENCH_SERIES.exchange) & (ohlcv_candles.c.symbol == BENCH_SERIES.symbol)
            & (ohlcv_candles.c.interval == BENCH_SERIES.interval.code)
            & (ohlcv_candles.c.open_time >= start) & (ohlcv_candles.c.open_time < BENCH_END)
        )

        def count_rows() -> int:
            with engine.connect() as connection:
                return connection.execute(select(func.count()).select_from(ohlcv_candles).where(in_window)).scalar_one()

        rows = count_rows()
        echo(f"  timing count(*) and the scan over {rows:,} bars, median of {REPEATS} ...")
        count_s = median_seconds(count_rows, REPEATS)
        complete = scan_continuity(engine, BENCH_SERIES, start, BENCH_END)
        if complete.gaps:
            raise RuntimeError(f"expected a complete year, the scan found {len(complete.gaps)} gaps")
        scan_s = median_seconds(lambda: scan_continuity(engine, BENCH_SERIES, start, BENCH_END), REPEATS)

        # The same year with holes punched into it, for the record (the target is on complete data).
        step = (BENCH_END - start) / (HOLES + 1)
        with engine.begin() as connection:
            for i in range(1, HOLES + 1):
                hole = start + step * i
                hole = hole.replace(second=0, microsecond=0)
                connection.execute(delete(ohlcv_candles).where(in_window, ohlcv_candles.c.open_time >= hole,
                                                               ohlcv_candles.c.open_time < hole + timedelta(minutes=3)))
        holed = scan_continuity(engine, BENCH_SERIES, start, BENCH_END)
        holed_s = median_seconds(lambda: scan_continuity(engine, BENCH_SERIES, start, BENCH_END), REPEATS)
    finally:
        dispose_engines()
        databases.close()
    ratio = scan_s / count_s
    return [
        BenchRow("scan", f"yardstick: bare count(*) of the window ({rows:,} bars)", count_s * 1000, "ms"),
        BenchRow("scan", "continuity scan, complete data", scan_s * 1000, "ms", "< 1000 ms", within(scan_s, at_most=1.0)),
        BenchRow("scan", "continuity scan / count(*) on complete data", ratio, "x", "<= 3", within(ratio, at_most=3)),
        BenchRow("scan", f"continuity scan, the same window with {len(holed.gaps)} holes", holed_s * 1000, "ms"),
    ]
