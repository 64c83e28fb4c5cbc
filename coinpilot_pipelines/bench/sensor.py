"""``coinpilot bench sensor``: one `live_kline_sensor` tick for ten symbols.

Yardstick, in the same run: the ten bare klines requests such a tick has to make at least.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import dagster as dg
import httpx

from coinpilot_pipelines.bench import BenchRow, median_seconds, within
from coinpilot_pipelines.bench.environment import BenchDatabases, emulator_process
from coinpilot_pipelines.clients.binance import BinanceSpotClient
from coinpilot_pipelines.defs import build_definitions, build_resources
from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.market.ingest import ingest_candles
from coinpilot_pipelines.market.intervals import Interval
from coinpilot_pipelines.settings import Settings
from coinpilot_pipelines.storage.database import dispose_engines, get_engine

SYMBOLS = tuple(f"{base}USDT" for base in ("BTC", "ETH", "XRP", "SOL", "BNB", "ADA", "DOGE", "DOT", "LTC", "LINK"))
REPEATS = 5


def bench_sensor(days: int, dsn: str | None, echo: Callable[[str], None]) -> list[BenchRow]:
    del days  # a tick looks at the last minutes, whatever the history
    databases = BenchDatabases(dsn)
    try:
        url = databases.fresh()
        with emulator_process() as emulator:
            settings = Settings.from_env({"COINPILOT_DATABASE_URL": url, "COINPILOT_SYMBOLS": ",".join(SYMBOLS),
                                          "COINPILOT_BINANCE_BASE_URL": emulator.url, "COINPILOT_HOME": "/tmp"})
            now = datetime.now(timezone.utc)
            echo(f"  storing the last hour of {len(SYMBOLS)} symbols, then timing sensor ticks ...")
            with BinanceSpotClient(emulator.url) as client:
                for symbol in SYMBOLS:
                    ingest_candles(client, get_engine(url), SeriesKey("binance", symbol, Interval.parse("1m")),
                                   now - timedelta(hours=1), now - timedelta(minutes=3), source="bench")
            sensor = build_definitions(settings).resolve_sensor_def("live_kline_sensor")
            resources = build_resources(settings)
            cursor: list[str | None] = [None]

            def tick() -> None:
                result = sensor.evaluate_tick(dg.build_sensor_context(cursor=cursor[0], resources=resources))
                cursor[0] = result.cursor

            first = time.perf_counter()
            tick()  # the first tick catches up the last minutes of every symbol
            first_s = time.perf_counter() - first
            tick_s = median_seconds(tick, REPEATS)

            def bare_requests() -> None:
                with httpx.Client(base_url=emulator.url) as http:
                    for symbol in SYMBOLS:
                        http.get("/api/v3/klines", params={"symbol": symbol, "interval": "1m", "limit": 10})

            yardstick_s = median_seconds(bare_requests, REPEATS)
    finally:
        dispose_engines()
        databases.close()
    return [
        BenchRow("sensor", f"yardstick: {len(SYMBOLS)} bare klines requests", yardstick_s * 1000, "ms"),
        BenchRow("sensor", f"first live_kline_sensor tick, {len(SYMBOLS)} symbols (catching up)", first_s, "s",
                 "< 2 s", within(first_s, at_most=2.0)),
        BenchRow("sensor", f"steady live_kline_sensor tick, {len(SYMBOLS)} symbols", tick_s, "s", "< 2 s",
                 within(tick_s, at_most=2.0)),
    ]
