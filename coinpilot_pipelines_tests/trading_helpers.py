"""A small market for executor tests: stored bars and signals waiting at a given stage."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from coinpilot_pipelines.clients.binance import BinanceSpotClient
from coinpilot_pipelines.clients.http import RetryPolicy
from coinpilot_pipelines.clients.upbit.exchange import UpbitExchangeClient
from coinpilot_pipelines.emulator.upbit_exchange import DEFAULT_KEYS
from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.market.ingest import ingest_candles
from coinpilot_pipelines.market.intervals import Interval
from coinpilot_pipelines.storage.database import get_engine
from coinpilot_pipelines.storage.trading import set_signal_status, store_signals
from coinpilot_pipelines.trading.executor import Executor, ExecutorSettings
from coinpilot_pipelines.trading.risk import RiskLimits
from coinpilot_pipelines.trading.signals import ExitRules, Signal

UTC = timezone.utc
BTC = SeriesKey("binance", "BTCUSDT", Interval.parse("1m"))
MARKET_START = datetime(2024, 2, 5, tzinfo=UTC)
ACCESS_KEY, SECRET_KEY = next(iter(DEFAULT_KEYS.items()))

SETTINGS = ExecutorSettings(
    profile="default", entry_threshold=0.5,
    exit_rules=ExitRules(0.45, Decimal("0.01"), Decimal("0.005"), timedelta(hours=48)),
    limits=RiskLimits(Decimal("50"), Decimal("200"), 3, 3, timedelta(hours=24)),
    paper_notional=Decimal("100"), fee_rate=Decimal("0.0005"), slippage=Decimal("0.0005"),
    order_krw=Decimal("10000"), max_order_krw=Decimal("50000"), market_map={}, signal_lookback_bars=60, entry_ttl_bars=5, poll_interval_s=0.01, max_polls=5,
)


def stored_market(db: str, emulator_url: str, minutes: int = 120) -> None:
    with BinanceSpotClient(emulator_url) as client:
        ingest_candles(client, get_engine(db), BTC, MARKET_START, MARKET_START + timedelta(minutes=minutes),
                       source="rest")


def confirmed_entry(db: str, minute: int = 10, key: str = "test:BTCUSDT:enter") -> int:
    """An entry signal on the bar at ``minute``, already through risk and review."""
    engine = get_engine(db)
    bar = MARKET_START + timedelta(minutes=minute)
    (signal_id,) = store_signals(engine, BTC, [Signal(f"{key}:{minute}", "BTCUSDT", "model", "enter", bar,
                                                      "test entry", Decimal("42000"), probability=0.7)], bar)
    set_signal_status(engine, signal_id, "confirmed", "test")
    return signal_id


def upbit_client(emulator_url: str, *, timeout_s: float = 5.0, keys: tuple[str, str] = (ACCESS_KEY, SECRET_KEY)) -> UpbitExchangeClient:
    return UpbitExchangeClient(emulator_url, *keys, policy=RetryPolicy(max_attempts=2, base_delay_s=0.01, timeout_s=timeout_s))


def executor(db: str, mode: str, upbit: UpbitExchangeClient | None = None, **kwargs: object) -> Executor:
    return Executor(**{"engine": get_engine(db), "series_list": [BTC], "settings": SETTINGS, "mode": mode,
                       "upbit": upbit, "now": lambda: datetime.now(UTC), "sleep": lambda _: None, **kwargs})
