"""Settings and outside input held to strict bounds; orders held to size limits; failures in one line."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import dagster as dg
import httpx
import pytest
from sqlalchemy import select

from coinpilot_pipelines.cli.runs import execute
from coinpilot_pipelines.clients.binance import BinanceSpotClient
from coinpilot_pipelines.clients.http import ExchangeError, ExchangeUnavailableError, RetryPolicy, retry_after_s
from coinpilot_pipelines.clients.rss import RssClient
from coinpilot_pipelines.defs.candles import build_candles_asset
from coinpilot_pipelines.defs.partitions import market_partitions
from coinpilot_pipelines.market.ingest import ingest_candles
from coinpilot_pipelines.market.intervals import Interval, to_ms
from coinpilot_pipelines.news.ingest import BootstrapPolicy, ingest_news
from coinpilot_pipelines.news.model import NewsFeed
from coinpilot_pipelines.settings import ConfigError, Settings
from coinpilot_pipelines.storage.database import get_engine
from coinpilot_pipelines.storage.schema import candle_rejects, news_articles, news_item_rejects
from coinpilot_pipelines.storage.trading import attempts
from coinpilot_pipelines.trading.risk import UPBIT_MIN_ORDER_KRW, order_size_refusal

from .dagster_helpers import market_resources
from .http_helpers import Canned, CannedServer, body
from .trading_helpers import BTC, SETTINGS, confirmed_entry, executor, stored_market, upbit_client

UTC = timezone.utc
MINUTE = Interval.parse("1m")
DAY = datetime(2023, 3, 5, tzinfo=UTC)
FAST = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02)

NUMERIC_SETTINGS = [
    "CONTINUITY_SCAN_DAYS", "LIVE_KLINE_POLL_INTERVAL_SEC", "LIVE_KLINE_TICK_BUDGET_SEC", "LIVE_KLINE_LOOKBACK_BARS",
    "GAP_REPAIR_EMPTY_ATTEMPTS", "GAP_REPAIR_EMPTY_SPACING_SEC", "GAP_REPAIR_MAX_SEGMENTS", "TRAIN_WINDOW_DAYS",
    "LABEL_HORIZON_BARS", "LABEL_DEAD_BAND", "AUTO_PROMOTE_MIN_AUC_IMPROVE", "AUTO_PROMOTE_MAX_BRIER_DEGRADE",
    "AUTO_PROMOTE_MAX_ECE_DEGRADE", "INFERENCE_PROB_THRESHOLD", "INFERENCE_LOOKBACK_BARS",
    "CALIBRATION_LIVE_WINDOW_DAYS", "AUTO_RETRAIN_ECE_GAP_ABS", "AUTO_RETRAIN_ECE_GAP_REL", "AUTO_RETRAIN_ECE_STREAK",
    "DRIFT_Z_THRESHOLD", "DRIFT_PSI_THRESHOLD", "PROMOTION_BOOTSTRAP_BLOCK_BARS", "AUTO_RETRAIN_COOLDOWN_SEC", "INFERENCE_EXIT_PROB_THRESHOLD", "PAPER_TAKE_PROFIT",
    "PAPER_STOP_LOSS", "PAPER_MAX_HOLDING_HOURS", "PAPER_TRADE_NOTIONAL", "PAPER_FEE_RATE", "PAPER_SLIPPAGE",
    "RISK_DAILY_LOSS_LIMIT", "RISK_MAX_POSITION_NOTIONAL", "RISK_MAX_OPEN_POSITIONS", "RISK_LOSING_STREAK",
    "RISK_COOLDOWN_HOURS", "UPBIT_ORDER_KRW", "RISK_MAX_ORDER_KRW", "LIVE_ORDER_POLL_INTERVAL_SEC",
    "LIVE_ORDER_MAX_POLLS", "NEWS_POLL_INTERVAL", "NEWS_SOURCE_STALL_THRESHOLD_SEC", "NEWS_DEDUP_MIN_RATIO",
    "NEWS_DEDUP_RATIO_STREAK", "NEWS_DEDUP_VOLATILITY_WINDOW", "NEWS_DEDUP_VOLATILITY_THRESHOLD",
]


# -- settings ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NUMERIC_SETTINGS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "1e999"])
def test_no_numeric_setting_takes_nan_or_infinity(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}: "):
        Settings.from_env({name: value})


@pytest.mark.parametrize("env,message", [
    ({"PAPER_FEE_RATE": "0.06"}, "PAPER_FEE_RATE: '0.06' must be >= 0 and <= 0.05"),
    ({"PAPER_SLIPPAGE": "-0.001"}, "PAPER_SLIPPAGE: '-0.001' must be >= 0 and <= 0.05"),
    ({"PAPER_STOP_LOSS": "0"}, "PAPER_STOP_LOSS: '0' must be > 0 and <= 0.5"),
    ({"PAPER_TAKE_PROFIT": "0.75"}, "PAPER_TAKE_PROFIT: '0.75' must be > 0 and <= 0.5"),
    ({"INFERENCE_PROB_THRESHOLD": "1"}, "INFERENCE_PROB_THRESHOLD: '1' must be > 0 and < 1"),
    ({"INFERENCE_EXIT_PROB_THRESHOLD": "0"}, "INFERENCE_EXIT_PROB_THRESHOLD: '0' must be > 0 and < 1"),
    ({"RISK_COOLDOWN_HOURS": "0"}, "RISK_COOLDOWN_HOURS: '0' must be >= 1"),
    ({"AUTO_RETRAIN_COOLDOWN_SEC": "0"}, "AUTO_RETRAIN_COOLDOWN_SEC: '0' must be >= 1"),
    ({"RISK_DAILY_LOSS_LIMIT": "0"}, "RISK_DAILY_LOSS_LIMIT: '0' must be > 0 and <= 1000000"),
    ({"PAPER_TRADE_NOTIONAL": "10000000"}, "PAPER_TRADE_NOTIONAL: '10000000' must be > 0 and <= 1000000"),
    ({"RISK_MAX_ORDER_KRW": "1000000000"}, "RISK_MAX_ORDER_KRW: '1000000000' must be > 0 and <= 100000000"),
    ({"UPBIT_ORDER_KRW": "1"}, "UPBIT_ORDER_KRW: '1' must be >= 5000 and <= 50000"),
    ({"UPBIT_ORDER_KRW": "60000"}, "UPBIT_ORDER_KRW: '60000' must be >= 5000 and <= 50000"),
    ({"RETRAIN_CRON": "99 99 * * *"}, "RETRAIN_CRON: '99 99 * * *' is not a valid five-field cron expression"),
    ({"CALIBRATION_CRON": "@every 5m"}, "CALIBRATION_CRON: '@every 5m' is not a valid five-field cron expression"),
    ({"LIVE_TRADING_ENABLED": "1"}, "LIVE_TRADING_ENABLED: '1' is not one of 'false', 'true'"),
    ({"UPBIT_TRADE_MODE": "Test\u200b"}, "UPBIT_TRADE_MODE: 'Test\\u200b' is not one of 'shadow', 'test', 'live'"),
    ({"PAPER_POLICY_PROFILE": "production"}, "PAPER_POLICY_PROFILE: 'production' is not one of 'test', 'prod'"),
    ({"LIVE_GUARD_PHRASE": "yes please"}, "LIVE_GUARD_PHRASE: is set but is not the confirmation phrase"),
    ({"COINPILOT_ANALYST_MODEL": "gpt 4"}, "COINPILOT_ANALYST_MODEL: 'gpt 4' is not a model name"),
])
def test_settings_are_bounded_and_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env(env)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_a_bad_guard_stops_the_code_location_from_loading(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "COINPILOT_HOME": str(tmp_path), "LIVE_TRADING_ENABLED": "TRUE "}
    result = subprocess.run([sys.executable, "-c", "import coinpilot_pipelines.definitions"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode != 0 and "LIVE_TRADING_ENABLED: 'TRUE ' is not one of" in result.stderr


# -- orders ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("order_krw,reason", [
    (Decimal("1000"), "below Upbit's minimum of 5000 KRW"),
    (Decimal("80000"), "above RISK_MAX_ORDER_KRW (50000 KRW)"),
])
def test_an_order_outside_the_size_limits_never_reaches_the_exchange(sqlite_url: str, emulator, order_krw: Decimal,
                                                                     reason: str) -> None:  # noqa: ANN001
    stored_market(sqlite_url, emulator.url, minutes=15)
    confirmed_entry(sqlite_url)
    before = dict(emulator.stats()["by_route"])
    with upbit_client(emulator.url) as client:
        # Settings refuse such a size at load; the executor refuses it again where orders are sent.
        executor(sqlite_url, "live", client, settings=dataclasses.replace(SETTINGS, order_krw=order_krw)).execute()
    (attempt,) = attempts(get_engine(sqlite_url)).itertuples(index=False)
    assert attempt.status == "refused" and reason in attempt.error_msg
    assert emulator.stats()["by_route"].get("POST /v1/orders", 0) == before.get("POST /v1/orders", 0)


def test_a_sell_is_limited_to_what_was_bought_and_to_the_minimum_total() -> None:
    limits = {"max_order_krw": Decimal("50000")}
    assert order_size_refusal("ask", krw_total=None, volume=Decimal("0.002"), held_volume=Decimal("0.001"),
                              **limits) == "sell volume 0.002 is more than the 0.001 bought"
    assert order_size_refusal("ask", krw_total=Decimal("3000"), volume=Decimal("0.001"), held_volume=Decimal("0.001"),
                              **limits) == "order total about 3000 KRW is below Upbit's minimum of 5000 KRW"
    assert order_size_refusal("ask", krw_total=Decimal("45000"), volume=Decimal("0.001"),
                              held_volume=Decimal("0.001"), **limits) is None
    assert order_size_refusal("ask", krw_total=None, volume=Decimal("0"), held_volume=None, **limits) \
        == "sell volume 0 is not positive"
    assert order_size_refusal("bid", krw_total=UPBIT_MIN_ORDER_KRW, volume=None, held_volume=None, **limits) is None


# -- exchange input -----------------------------------------------------------------------------------

def kline(t: int, close_ms: int | None = None, extra: tuple = ()) -> list:
    return [t, "100.00", "101.00", "99.00", "100.50", "1.5", close_ms or t + 59_999, "150.0", 3, "0.7", "70.0", "0",
            *extra]


def day_of_klines(**kwargs: object) -> list[list]:
    start = to_ms(DAY)
    return [kline(start + i * 60_000, **kwargs) for i in range(1000)]


def klines_server(payload: bytes) -> CannedServer:
    return CannedServer(lambda path: Canned(chunks=body(payload)))


def test_an_oversized_exchange_body_is_refused_without_reading_it_all() -> None:
    served = []

    def huge():
        for _ in range(200):  # 200 MB, streamed without a Content-Length
            served.append(1)
            yield b"[" + b" " * (1024 * 1024 - 1)

    with CannedServer(lambda path: Canned(chunks=huge)) as server, BinanceSpotClient(server.url, policy=FAST) as client:
        with pytest.raises(ExchangeError, match="exceeds the 8388608-byte cap; refused, not retried"):
            list(client.fetch_candles("BTCUSDT", MINUTE, DAY, DAY + timedelta(minutes=10)))
        assert len(server.paths) == 1  # not retried
    assert len(served) < 50


def test_bytes_after_the_json_document_are_an_error() -> None:
    payload = json.dumps(day_of_klines()[:10], separators=(",", ":")).encode() + b" [[1]]"
    with klines_server(payload) as server, BinanceSpotClient(server.url, policy=FAST, max_in_flight=1) as client:
        with pytest.raises(ExchangeUnavailableError, match="last error: body is not valid JSON .*Extra data"):
            list(client.fetch_candles("BTCUSDT", MINUTE, DAY, DAY + timedelta(minutes=10)))


def test_a_kline_with_extra_trailing_fields_keeps_its_first_twelve(sqlite_url: str) -> None:
    rows = day_of_klines(extra=("future-field", 7))
    with klines_server(json.dumps(rows, separators=(",", ":")).encode()) as server:
        resources = market_resources(sqlite_url, server.url)
        asset = build_candles_asset(market_partitions(Settings.from_env({"COINPILOT_SYMBOLS": "BTCUSDT"})))
        result = dg.materialize([asset], resources=resources, partition_key="2023-03-05|BTCUSDT",
                                instance=dg.DagsterInstance.ephemeral())
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    # The canned server answers both pages of the day with the same 1,000 bars.
    assert metadata["rows_with_extra_fields"].value == metadata["run_rows_fetched"].value == 2000
    assert metadata["rows_inserted"].value == 1000 and metadata["run_rows_rejected"].value == 0


def test_a_close_time_far_in_the_future_is_quarantined_not_dropped(sqlite_url: str) -> None:
    ten_years = 10 * 365 * 86_400_000
    rows = [kline(t, close_ms=t + ten_years) for t in (to_ms(DAY) + i * 60_000 for i in range(1000))]
    engine = get_engine(sqlite_url)
    with klines_server(json.dumps(rows, separators=(",", ":")).encode()) as server, \
            BinanceSpotClient(server.url, policy=FAST, max_in_flight=1) as client:
        report = ingest_candles(client, engine, BTC, DAY, DAY + timedelta(minutes=1000), source="rest",
                                now=DAY + timedelta(days=1))
    assert report.fetched == 1000 and report.rejected == 1000 and report.counts.inserted == 0
    with engine.connect() as connection:
        reasons = connection.execute(select(candle_rejects.c.reason)).scalars().all()
    assert len(reasons) == 1000 and all("close_time is not within the bar's 1m interval" in r for r in reasons)


@pytest.mark.parametrize("header,expected", [("nan", None), ("inf", None), ("-5", None), ("soon", None),
                                             ("2", 2.0), ("0", 0.0)])
def test_retry_after_is_read_as_a_finite_wait_or_not_at_all(header: str, expected: float | None) -> None:
    assert retry_after_s(httpx.Response(429, headers={"Retry-After": header})) == expected


def test_a_nonsense_retry_after_means_the_default_wait_not_none() -> None:
    answers = iter([Canned(status=429, headers={"Retry-After": "nan"}, chunks=body(b"{}")),
                    Canned(chunks=body(json.dumps(day_of_klines()[:10]).encode()))])
    slept: list[float] = []
    with CannedServer(lambda path: next(answers)) as server, \
            BinanceSpotClient(server.url, policy=FAST, max_in_flight=1, sleep=slept.append) as client:
        batches = list(client.fetch_candles("BTCUSDT", MINUTE, DAY, DAY + timedelta(minutes=10)))
    assert sum(len(b) for b in batches) == 10
    assert slept and min(slept) > 0  # the backoff's wait, never a tight loop


# -- news input -------------------------------------------------------------------------------------

def rss(*items: str) -> bytes:
    return ('<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>https://n.example</link>'
            + "".join(items) + "</channel></rss>").encode()


def item(guid: str, title: str = "A story", date: str = "Mon, 02 Mar 2026 10:00:00 GMT", link: str | None = None) -> str:
    link = link or f"https://n.example/{guid}"
    return f"<item><guid>{guid}</guid><title>{title}</title><link>{link}</link><pubDate>{date}</pubDate></item>"


def test_implausible_news_items_are_quarantined_with_their_reason(sqlite_url: str) -> None:
    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    feed = rss(item("good"), item("old", date="Sun, 01 Jan 1989 00:00:00 GMT"),
               item("ahead", date="Thu, 05 Mar 2026 00:00:00 GMT"), item("long-title", title="x" * 1001),
               item("long-url", link="https://n.example/" + "a" * 2100))
    engine = get_engine(sqlite_url)
    with CannedServer(lambda path: Canned(headers={"Content-Type": "application/rss+xml"}, chunks=body(feed))) as server:
        with RssClient(timeout_s=5) as client:
            ingest_news(client, engine, [NewsFeed("n", f"{server.url}/rss")], clock=lambda: now,
                        bootstrap=BootstrapPolicy(max_rounds=1, pause_s=0))
    with engine.connect() as connection:
        stored = connection.execute(select(news_articles.c.guid)).scalars().all()
        reasons = sorted(connection.execute(select(news_item_rejects.c.reason)).scalars().all())
    assert stored == ["good"]
    assert len(reasons) == 4
    assert any("is before 1995-01-01" in r for r in reasons)
    assert any("is more than a day after now" in r for r in reasons)
    assert any("title of 1001 characters is longer than 1000" in r for r in reasons)
    assert any("link of 2118 characters is longer than 2048" in r for r in reasons)


# -- one line, the root cause -------------------------------------------------------------------------

def test_a_failed_run_reports_its_root_cause_in_one_line(sqlite_url: str) -> None:
    with CannedServer(lambda path: Canned(chunks=body(b"<html>maintenance</html>"))) as server:
        asset = build_candles_asset(market_partitions(Settings.from_env({"COINPILOT_SYMBOLS": "BTCUSDT"})))
        job = dg.Definitions(assets=[asset], resources=market_resources(sqlite_url, server.url, max_attempts=2)
                             ).resolve_implicit_global_asset_job_def()
        with pytest.raises(RuntimeError) as error:
            execute(job, dg.DagsterInstance.ephemeral(), partition_key="2023-03-05|BTCUSDT")
    message = str(error.value)
    assert "gave up after 2 attempts; last error: body is not valid JSON" in message
    assert message.count("\n") == 0 and "Error occurred while executing" not in message
    assert "ExchangeUnavailableError: binance klines BTCUSDT 1m" in message


def test_an_option_error_names_the_option(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "coinpilot_pipelines.cli", "continuity-scan", "--symbol", "BTCUSDT",
                             "--end", "2023-13-45"], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "COINPILOT_HOME": str(tmp_path)}, timeout=120)
    assert result.returncode == 2
    assert result.stderr == "coinpilot: error: Invalid value for '--end': '2023-13-45' is not a date: " \
                            "month must be in 1..12\n"
