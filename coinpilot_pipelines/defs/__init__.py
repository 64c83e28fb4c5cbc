"""The Dagster layer: assets, checks, jobs, sensors and schedules wired to the domain code."""

from __future__ import annotations

import os
import warnings
from typing import Any

import dagster as dg

from coinpilot_pipelines.defs.candles import build_candles_asset
from coinpilot_pipelines.defs.continuity import build_continuity_definitions
from coinpilot_pipelines.defs.ml import MlflowResource, build_ml_definitions
from coinpilot_pipelines.defs.news import build_news_sensor, news_articles, news_dedup_stats, news_poll_job
from coinpilot_pipelines.defs.partitions import market_partitions
from coinpilot_pipelines.defs.trading import (
    AnalystResource,
    TradingGuardsResource,
    UpbitExchangeResource,
    build_trading_definitions,
)
from coinpilot_pipelines.defs.resources import DatabaseResource, MarketDataResource, NewsFeedsResource
from coinpilot_pipelines.settings import Settings


# Backfill policies and pools are relied on deliberately; their "beta" notices are noise here.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)


def _secret_or_value(name: str, value: str) -> str | dg.EnvVar:
    # Read from the environment when a run starts (so a secret never shows up as resource
    # configuration in the UI, and a guard changed after the code loaded still counts).
    return dg.EnvVar(name) if os.environ.get(name) else value


def news_resource(settings: Settings, **overrides: Any) -> NewsFeedsResource:
    health = settings.news_health
    feeds = ",".join(f"{feed.source}={feed.url}" for feed in settings.news_feeds)
    return NewsFeedsResource(
        feeds=_secret_or_value("NEWS_RSS_FEEDS", feeds),  # feed URLs may carry access tokens
        stall_threshold_s=health.stall_after_s,
        min_dedup_ratio=health.min_ratio,
        ratio_streak=health.ratio_streak,
        volatility_window=health.volatility_window,
        volatility_threshold=health.volatility_threshold,
        **overrides,
    )


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The resources every job, asset and sensor shares; secrets as `EnvVar`s, read at run time."""
    return {
        "database": DatabaseResource(url=_secret_or_value("COINPILOT_DATABASE_URL", settings.database_url)),
        "market_data": MarketDataResource(
            exchange=settings.market_exchange,
            base_url=settings.market_base_url,
            interval=settings.interval.code,
        ),
        "mlflow": MlflowResource(
            tracking_uri=_secret_or_value("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri),
            model_name=settings.models.model_name,
            artifact_root=str(settings.home / "mlflow-artifacts")
            if settings.mlflow_tracking_uri.startswith("sqlite") else None,
        ),
        "news": news_resource(settings),
        "upbit": UpbitExchangeResource(
            base_url=settings.upbit_base_url,
            access_key=_secret_or_value("UPBIT_ACCESS_KEY", ""),
            secret_key=_secret_or_value("UPBIT_SECRET_KEY", ""),
        ),
        "guards": TradingGuardsResource(
            live_trading_enabled=_secret_or_value("LIVE_TRADING_ENABLED", "false"),
            trade_mode=_secret_or_value("UPBIT_TRADE_MODE", "shadow"),
            guard_phrase=_secret_or_value("LIVE_GUARD_PHRASE", ""),
            paper_policy_profile=_secret_or_value("PAPER_POLICY_PROFILE", "test"),
        ),
        "analyst": AnalystResource(
            api_key=_secret_or_value("ANTHROPIC_API_KEY", ""), model=settings.trading.analyst_model),
    }


def build_definitions(settings: Settings) -> dg.Definitions:
    partitions = market_partitions(settings)
    groups = [
        build_continuity_definitions(settings.continuity, settings.symbols),
        build_ml_definitions(settings.models, partitions, settings.symbols),
        {"assets": [news_articles, news_dedup_stats], "jobs": [news_poll_job], "schedules": [],
         "sensors": [build_news_sensor(settings.news_poll_interval_s)]},
        build_trading_definitions(settings.trading, settings.models.inference_threshold, settings.symbols),
    ]
    return dg.Definitions(
        assets=[build_candles_asset(partitions), *(a for g in groups for a in g["assets"])],
        jobs=[j for g in groups for j in g["jobs"]],
        schedules=[s for g in groups for s in g["schedules"]],
        sensors=[s for g in groups for s in g["sensors"]],
        resources=build_resources(settings),
    )
