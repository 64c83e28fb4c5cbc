"""Dagster resources: thin, configurable handles on the database and the exchange clients."""

from __future__ import annotations

import dagster as dg
from sqlalchemy import Engine

from coinpilot_pipelines.clients.binance import BinanceSpotClient
from coinpilot_pipelines.clients.http import RetryPolicy
from coinpilot_pipelines.clients.upbit import UpbitQuotationClient
from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.market.ingest import MarketDataClient
from coinpilot_pipelines.market.intervals import Interval
from coinpilot_pipelines.storage.database import get_engine


class DatabaseResource(dg.ConfigurableResource):
    """The application database: SQLite under COINPILOT_HOME by default, PostgreSQL in production."""

    url: str

    def engine(self) -> Engine:
        return get_engine(self.url)


class MarketDataResource(dg.ConfigurableResource):
    """Market data from Binance or Upbit (or the local emulator speaking their APIs)."""

    exchange: str = "binance"
    base_url: str = "https://api.binance.com"
    interval: str = "1m"
    max_in_flight: int = 4
    max_attempts: int = 5
    base_delay_s: float = 0.5
    timeout_s: float = 20.0

    def client(self) -> MarketDataClient:
        policy = RetryPolicy(max_attempts=self.max_attempts, base_delay_s=self.base_delay_s, timeout_s=self.timeout_s)
        if self.exchange == "upbit":
            return UpbitQuotationClient(self.base_url, policy=policy)
        return BinanceSpotClient(self.base_url, policy=policy, max_in_flight=self.max_in_flight)

    def series(self, symbol: str) -> SeriesKey:
        return SeriesKey(self.exchange, symbol, Interval.parse(self.interval))
