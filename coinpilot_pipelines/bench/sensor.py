"""``coinpilot bench sensor``: one `live_kline_sensor` tick over a watch list (ten symbols by default).

Yardstick, in the same run: the bare klines requests, one per symbol, such a tick has to make at least.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import dagster as dg
import httpx

from coinpilot_pipelines.bench import BenchRow, median_seconds, within
from coinpilot_pipelines.bench.environment import BenchDatabases, emulator_process
from coinpilot_pipelines.clients.binance import BinanceSpotClient
from coinpilot_pipelines.clock import SYSTEM_CLOCK
from coinpilot_pipelines.defs import build_definitions, build_resources
from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.market.ingest import ingest_candles
from coinpilot_pipelines.market.intervals import Interval
from coinpilot_pipelines.settings import Settings
from coinpilot_pipelines.storage.database import dispose_engines, get_engine

SYMBOLS = tuple(f"{base}USDT" for base in ("BTC", "ETH", "XRP", "SOL", "BNB", "ADA", "DOGE", "DOT", "LTC", "LINK"))
REPEATS = 5
STEADY_TICK_TARGET_X = 3.0  # a steady tick within this many times its bare requests


def watch_list(count: int) -> tuple[str, ...]:
    """The ten well-known symbols, then synthetic ones (the emulator makes up their bars)."""
    return (SYMBOLS + tuple(f"C{number:03d}USDT" for number in range(count)))[:count]


def bench_sensor(days: int, dsn: str | None, echo: Callable[[str], None], symbols: int = len(SYMBOLS)) -> list[BenchRow]:
    del days  # a tick looks at the last minutes, whatever the history
    watched = watch_list(symbols)
    databases = BenchDatabases(dsn)
    try:
        url = databases.fresh()
        with emulator_process(watched) as emulator:
            settings = Settings.from_env({"COINPILOT_DATABASE_URL": url, "COINPILOT_SYMBOLS": ",".join(watched),
                                          "COINPILOT_BINANCE_BASE_URL": emulator.url, "COINPILOT_HOME": "/tmp"})
            now = SYSTEM_CLOCK.now()
            echo(f"  storing the last hour of {len(watched)} symbols, then timing sensor ticks ...")
            with BinanceSpotClient(emulator.url) as client:
                for symbol in watched:
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
                    for symbol in watched:
                        http.get("/api/v3/klines", params={"symbol": symbol, "interval": "1m", "limit": 10})

            yardstick_s = median_seconds(bare_requests, REPEATS)
    finally:
        dispose_engines()
        databases.close()
    ratio = tick_s / yardstick_s
    return [
        BenchRow("sensor", f"yardstick: {len(watched)} bare klines requests", yardstick_s * 1000, "ms"),
        BenchRow("sensor", f"first live_kline_sensor tick, {len(watched)} symbols (catching up)", first_s, "s",
                 "< 2 s", within(first_s, at_most=2.0)),
        BenchRow("sensor", f"steady live_kline_sensor tick, {len(watched)} symbols", tick_s, "s", "< 2 s",
                 within(tick_s, at_most=2.0)),
        BenchRow("sensor", "steady tick / bare requests", ratio, "x", f"<= {STEADY_TICK_TARGET_X:.0f}",
                 within(ratio, at_most=STEADY_TICK_TARGET_X)),
    ]
