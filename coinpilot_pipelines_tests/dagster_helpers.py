"""Building the project's Dagster definitions against a test database and the test emulator."""

from __future__ import annotations

import tempfile

import dagster as dg

from coinpilot_pipelines.clock import SYSTEM_CLOCK, Clock
from coinpilot_pipelines.defs import build_definitions
from coinpilot_pipelines.defs.ml import MlflowResource
from coinpilot_pipelines.defs.resources import DatabaseResource, MarketDataResource, NewsFeedsResource
from coinpilot_pipelines.news.ingest import BootstrapPolicy
from coinpilot_pipelines.news.model import NewsFeed
from coinpilot_pipelines.settings import Settings

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def settings_for(database_url: str, emulator_url: str, **overrides: str) -> Settings:
    """Settings for one test; ML tests pass their own ``COINPILOT_HOME`` (the MLflow store lives there)."""
    env = {
        "COINPILOT_HOME": "/nonexistent/coinpilot-home",
        "COINPILOT_DATABASE_URL": database_url,
        "COINPILOT_SYMBOLS": "BTCUSDT,XRPUSDT",
        "COINPILOT_START_DATE": "2023-01-01",
        "COINPILOT_BINANCE_BASE_URL": emulator_url,
        "COINPILOT_UPBIT_BASE_URL": emulator_url,
        **overrides,
    }
    return Settings.from_env(env)


def market_resources(database_url: str, emulator_url: str, *, clock: Clock = SYSTEM_CLOCK,
                     **client: object) -> dict[str, object]:
    """The resources of the market assets and sensors; the registry is an empty local MLflow store."""
    return {
        "database": DatabaseResource(url=database_url),
        "market_data": MarketDataResource(base_url=emulator_url, **{"max_attempts": 3, "base_delay_s": 0.01, **client}),
        "mlflow": MlflowResource(tracking_uri=f"sqlite:///{tempfile.mkdtemp(prefix='coinpilot-mlflow-')}/mlflow.db"),
        "clock": clock,
    }


def news_resources(database_url: str, emulator_url: str, *sources: str, **config: object) -> dict[str, object]:
    feeds = tuple(NewsFeed(source, f"{emulator_url}/rss/{source}") for source in sources)
    return {
        "database": DatabaseResource(url=database_url),
        "news": NewsFeedsResource(feeds=feeds, timeout_s=2.0, **{"bootstrap": BootstrapPolicy(pause_s=0.0), **config}),
        "clock": SYSTEM_CLOCK,
    }


def project_definitions(database_url: str, emulator_url: str, **overrides: str) -> dg.Definitions:
    return build_definitions(settings_for(database_url, emulator_url, **overrides))


def range_tags(first: str, last: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Every message of the run's step failures, causes included."""
    texts = []
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None:
            texts.append(error.message)
            error = error.cause
    return "\n".join(texts)
