"""Dagster resources: handles on the database, the exchange and feed clients.

They are plain objects built from `Settings` when the code location loads (in a run worker, that is
when the run starts), not `ConfigurableResource`s: the Dagster UI has no login, and whatever a
resource exposes as config anyone who reaches the UI can set in a run's config, including Dagster's
``{"env": NAME}`` indirection to any environment variable. So no connection string, endpoint, key
or guard is run config; the tuning knobs here are constructor arguments for tests and benchmarks.
Assets, ops and sensors take them as ``dg.ResourceParam[...]``; the Definitions hold them as
`fixed_resource`s, whose empty config schema refuses any run config.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg
from sqlalchemy import Engine

from coinpilot_pipelines.clients.binance import BinanceSpotClient
from coinpilot_pipelines.clients.http import RetryPolicy
from coinpilot_pipelines.clients.rss import DEFAULT_MAX_BYTES, RssClient
from coinpilot_pipelines.clients.upbit import UpbitQuotationClient
from coinpilot_pipelines.clock import SYSTEM_CLOCK, Clock
from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.market.ingest import MarketDataClient
from coinpilot_pipelines.market.intervals import Interval
from coinpilot_pipelines.news.health import HealthThresholds
from coinpilot_pipelines.news.ingest import BackoffPolicy, BootstrapPolicy
from coinpilot_pipelines.news.model import NewsFeed
from coinpilot_pipelines.storage.backoff import DatabasePause
from coinpilot_pipelines.storage.database import get_engine


@dataclass(frozen=True)
class DatabaseResource:
    """The application database: SQLite under COINPILOT_HOME by default, PostgreSQL in production."""

    url: str = field(repr=False)  # may carry a password

    def engine(self) -> Engine:
        return get_engine(self.url)


@dataclass(frozen=True)
class MarketDataResource:
    """Market data from Binance or Upbit (or the local emulator speaking their APIs)."""

    exchange: str = "binance"
    base_url: str = field(default="https://api.binance.com", repr=False)  # may carry credentials
    interval: str = "1m"
    max_in_flight: int = 4
    max_attempts: int = 5
    base_delay_s: float = 0.5
    timeout_s: float = 20.0
    chunk_rows: int = 50_000  # bars written per transaction: a killed run resumes from the last chunk

    def client(self, engine: Engine | None = None, clock: Clock = SYSTEM_CLOCK) -> MarketDataClient:
        """A client; given the application database, its rate-limit pauses are shared by every run.
        ``clock`` says which bars have closed."""
        policy = RetryPolicy(max_attempts=self.max_attempts, base_delay_s=self.base_delay_s, timeout_s=self.timeout_s)
        shared = DatabasePause(engine, self.exchange) if engine is not None else None
        if self.exchange == "upbit":
            return UpbitQuotationClient(self.base_url, policy=policy, shared_pause=shared, now=clock.now)
        return BinanceSpotClient(self.base_url, policy=policy, max_in_flight=self.max_in_flight, shared_pause=shared,
                                 now=clock.now)

    def series(self, symbol: str) -> SeriesKey:
        return SeriesKey(self.exchange, symbol, Interval.parse(self.interval))


@dataclass(frozen=True)
class NewsFeedsResource:
    """The RSS/Atom feeds to poll and how: fetch limits, backoff, bootstrap and health thresholds."""

    feeds: tuple[NewsFeed, ...] = field(repr=False)  # feed URLs may carry access tokens
    thresholds: HealthThresholds = field(default_factory=HealthThresholds)
    timeout_s: float = 10.0
    max_bytes: int = DEFAULT_MAX_BYTES
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    bootstrap: BootstrapPolicy = field(default_factory=BootstrapPolicy)

    def client(self) -> RssClient:
        return RssClient(timeout_s=self.timeout_s, max_bytes=self.max_bytes)


# What an op or asset without settings declares: Dagster would otherwise accept any value as its
# config (an ``{"env": NAME}`` too), even though nothing reads it.
NO_CONFIG: dict = {}


def fixed_resource(value: object, description: str | None = None) -> dg.ResourceDefinition:
    """``value`` as a resource that takes no run config (a bare object would accept any)."""
    return dg.ResourceDefinition(resource_fn=lambda _: value, config_schema=NO_CONFIG,
                                 description=description or (type(value).__doc__ or "").strip().split("\n")[0])


@dg.io_manager(config_schema=NO_CONFIG,
               description="Op outputs pickled under the instance's storage directory; takes no run config.")
def instance_storage_io_manager(context: dg.InitResourceContext) -> dg.IOManager:
    # Dagster's default IO manager takes its base directory from run config (with {"env": ...}).
    return dg.FilesystemIOManager().create_io_manager(context)
