"""Dagster resources: thin, configurable handles on the database, the exchange and feed clients."""

from __future__ import annotations

import dagster as dg
from sqlalchemy import Engine

from coinpilot_pipelines.clients.binance import BinanceSpotClient
from coinpilot_pipelines.clients.http import RetryPolicy
from coinpilot_pipelines.clients.rss import DEFAULT_MAX_BYTES, RssClient
from coinpilot_pipelines.clients.upbit import UpbitQuotationClient
from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.market.ingest import MarketDataClient
from coinpilot_pipelines.market.intervals import Interval
from coinpilot_pipelines.news.health import HealthThresholds
from coinpilot_pipelines.news.ingest import BackoffPolicy, BootstrapPolicy
from coinpilot_pipelines.news.model import NewsFeed
from coinpilot_pipelines.settings import parse_news_feeds
from coinpilot_pipelines.storage.backoff import DatabasePause
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
    chunk_rows: int = 50_000  # bars written per transaction: a killed run resumes from the last chunk

    def client(self, engine: Engine | None = None) -> MarketDataClient:
        """A client; given the application database, its rate-limit pauses are shared by every run."""
        policy = RetryPolicy(max_attempts=self.max_attempts, base_delay_s=self.base_delay_s, timeout_s=self.timeout_s)
        shared = DatabasePause(engine, self.exchange) if engine is not None else None
        if self.exchange == "upbit":
            return UpbitQuotationClient(self.base_url, policy=policy, shared_pause=shared)
        return BinanceSpotClient(self.base_url, policy=policy, max_in_flight=self.max_in_flight, shared_pause=shared)

    def series(self, symbol: str) -> SeriesKey:
        return SeriesKey(self.exchange, symbol, Interval.parse(self.interval))


class NewsFeedsResource(dg.ConfigurableResource):
    """The RSS/Atom feeds to poll and how: fetch limits, backoff, bootstrap and health thresholds."""

    feeds: str  # as NEWS_RSS_FEEDS: comma list of URL or name=URL
    timeout_s: float = 10.0
    max_bytes: int = DEFAULT_MAX_BYTES
    backoff_base_s: float = 60.0
    backoff_max_s: float = 3600.0
    bootstrap_min_articles: int = 200
    bootstrap_max_rounds: int = 10
    bootstrap_pause_s: float = 5.0
    stall_threshold_s: int = 900
    min_dedup_ratio: float = 0.15
    ratio_streak: int = 3
    volatility_window: int = 10
    volatility_threshold: float = 0.25

    def feed_list(self) -> tuple[NewsFeed, ...]:
        return parse_news_feeds(self.feeds)

    def client(self) -> RssClient:
        return RssClient(timeout_s=self.timeout_s, max_bytes=self.max_bytes)

    def backoff(self) -> BackoffPolicy:
        return BackoffPolicy(base_s=self.backoff_base_s, max_s=self.backoff_max_s)

    def bootstrap(self) -> BootstrapPolicy:
        return BootstrapPolicy(min_articles=self.bootstrap_min_articles, max_rounds=self.bootstrap_max_rounds,
                               pause_s=self.bootstrap_pause_s)

    def thresholds(self) -> HealthThresholds:
        return HealthThresholds(stall_after_s=self.stall_threshold_s, min_ratio=self.min_dedup_ratio,
                                ratio_streak=self.ratio_streak, volatility_window=self.volatility_window,
                                volatility_threshold=self.volatility_threshold)
