"""``coinpilot bench scale``: ten symbols x N days backfilled by parallel runs into PostgreSQL.

Each run is a `candles` materialization in its own process over one symbol's range -- what a
UI backfill with the single-run policy launches -- and the same backfill is timed with 1, 2 and 4
runs at once, so the table shows how throughput grows with run workers on this machine.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta

import dagster as dg

from coinpilot_pipelines.bench import BenchRow
from coinpilot_pipelines.bench.environment import BenchDatabases, await_weight_for, emulator_process, klines_requests
from coinpilot_pipelines.bench.ingest import BENCH_END
from coinpilot_pipelines.bench.sensor import SYMBOLS
from coinpilot_pipelines.defs.candles import build_candles_asset
from coinpilot_pipelines.cli.runs import QUIET_LOGGING
from coinpilot_pipelines.defs.partitions import market_partitions, partition_range_tags
from coinpilot_pipelines.defs.resources import DatabaseResource, MarketDataResource
from coinpilot_pipelines.settings import Settings

WORKERS = (1, 2, 4)


def backfill_one_symbol(url: str, emulator_url: str, symbol: str, first: date, last: date) -> int:
    """One backfill run (in its own process); returns the bars it stored."""
    settings = Settings.from_env({"COINPILOT_DATABASE_URL": url, "COINPILOT_SYMBOLS": symbol,
                                  "COINPILOT_BINANCE_BASE_URL": emulator_url, "COINPILOT_HOME": "/tmp"})
    result = dg.materialize(
        [build_candles_asset(market_partitions(settings))],
        resources={"database": DatabaseResource(url=url), "market_data": MarketDataResource(base_url=emulator_url)},
        tags=partition_range_tags(first, last, symbol),
        instance=dg.DagsterInstance.ephemeral(), run_config=QUIET_LOGGING,
    )
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    return int(metadata["run_rows_inserted"].value)


def bench_scale(days: int, dsn: str | None, echo: Callable[[str], None]) -> list[BenchRow]:
    last = BENCH_END.date() - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    databases = BenchDatabases(dsn)
    rows: list[BenchRow] = []
    try:
        with emulator_process() as emulator:
            echo(f"  warming the emulator: {len(SYMBOLS)} symbols x {days} days ...")
            with _workers(4) as pool:  # renders and caches every day once
                _backfill(pool, databases.fresh(), emulator.url, first, last)
            baseline = None
            for workers in WORKERS:
                url = databases.fresh()
                with _workers(workers) as pool:
                    # a 10 x 30-day backfill spends 864 of the 6,000 weight a minute allows
                    await_weight_for(emulator.url, klines_requests(days, len(SYMBOLS)))
                    started = time.perf_counter()
                    stored = _backfill(pool, url, emulator.url, first, last)
                    seconds = time.perf_counter() - started
                throughput = stored / seconds
                baseline = baseline or throughput
                echo(f"  {workers} run(s) at once: {stored:,} bars in {seconds:.1f} s")
                rows.append(BenchRow("scale", f"{len(SYMBOLS)} symbols x {days} days, {workers} parallel run(s): "
                                     f"{seconds:.1f} s", throughput, "rows/s"))
                rows.append(BenchRow("scale", f"speed-up with {workers} parallel run(s)", throughput / baseline, "x"))
    finally:
        databases.close()
    return rows


def _ready() -> int:
    time.sleep(0.5)  # long enough that every worker process takes one of these
    return 0


def _workers(count: int) -> ProcessPoolExecutor:
    """Run workers already started and past their imports, as a daemon's run workers would be."""
    pool = ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"),
                               initializer=__import__, initargs=("coinpilot_pipelines.definitions",))
    for future in [pool.submit(_ready) for _ in range(count)]:
        future.result()
    return pool


def _backfill(pool: ProcessPoolExecutor, url: str, emulator_url: str, first: date, last: date) -> int:
    return sum(pool.map(backfill_one_symbol, *zip(*[(url, emulator_url, s, first, last) for s in SYMBOLS])))
