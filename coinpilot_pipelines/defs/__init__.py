"""The Dagster layer: assets, checks, jobs, sensors and schedules wired to the domain code."""

from __future__ import annotations

import warnings
from typing import Any

import dagster as dg

from coinpilot_pipelines.clock import SYSTEM_CLOCK, Clock
from coinpilot_pipelines.defs.alerts import AlertsResource, build_alert_definitions
from coinpilot_pipelines.defs.candles import build_candles_asset
from coinpilot_pipelines.defs.continuity import build_continuity_definitions
from coinpilot_pipelines.defs.live import build_live_sensor
from coinpilot_pipelines.defs.ml import MlflowResource, build_ml_definitions
from coinpilot_pipelines.defs.news import build_news_sensor, news_articles, news_dedup_stats, news_poll_job
from coinpilot_pipelines.defs.partitions import market_partitions
from coinpilot_pipelines.defs.resources import (
    DatabaseResource,
    MarketDataResource,
    NewsFeedsResource,
    fixed_resource,
    instance_storage_io_manager,
)
from coinpilot_pipelines.defs.trading import AnalystResource, UpbitExchangeResource, build_trading_definitions
from coinpilot_pipelines.settings import Secrets, Settings


# Backfill policies and pools are relied on deliberately; their "beta" notices are noise here.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)


def news_resource(settings: Settings, **overrides: Any) -> NewsFeedsResource:
    return NewsFeedsResource(feeds=settings.news_feeds, thresholds=settings.news_health, **overrides)


def resource_values(settings: Settings, secrets: Secrets | None = None, clock: Clock = SYSTEM_CLOCK) -> dict[str, Any]:
    """The resource objects every job, asset and sensor shares (sensor tests take them as they are);
    ``clock`` is real time but in a simulation."""
    secrets = Secrets.from_env() if secrets is None else secrets
    return {
        "database": DatabaseResource(url=settings.database_url),
        "market_data": MarketDataResource(
            exchange=settings.market_exchange,
            base_url=settings.market_base_url,
            interval=settings.interval.code,
        ),
        "mlflow": MlflowResource(
            tracking_uri=settings.mlflow_tracking_uri,
            model_name=settings.models.model_name,
            artifact_root=str(settings.home / "mlflow-artifacts")
            if settings.mlflow_tracking_uri.startswith("sqlite") else None,
        ),
        "news": news_resource(settings),
        "upbit": UpbitExchangeResource(
            base_url=settings.upbit_base_url,
            access_key=secrets.upbit_access_key,
            secret_key=secrets.upbit_secret_key,
        ),
        "analyst": AnalystResource(api_key=secrets.anthropic_api_key, model=settings.trading.analyst_model),
        "alerts": AlertsResource(webhook_url=secrets.alert_webhook_url, ui_base_url=settings.ui_base_url),
        "clock": clock,
    }


def build_resources(settings: Settings, secrets: Secrets | None = None,
                    clock: Clock = SYSTEM_CLOCK) -> dict[str, dg.ResourceDefinition]:
    """The Definitions' resources: none of them takes run config."""
    resources = {key: fixed_resource(value) for key, value in resource_values(settings, secrets, clock).items()}
    return {**resources, "io_manager": instance_storage_io_manager}


def build_definitions(settings: Settings, clock: Clock = SYSTEM_CLOCK) -> dg.Definitions:
    partitions = market_partitions(settings)
    continuity = build_continuity_definitions(settings.continuity, settings.symbols, settings.start_date)
    (gap_repair_job,) = [j for j in continuity["jobs"] if j.name == "gap_repair_job"]
    groups = [
        {**continuity, "sensors": [*continuity["sensors"], build_live_sensor(settings, gap_repair_job)]},
        build_ml_definitions(settings.models, partitions, settings.symbols),
        {"assets": [news_articles, news_dedup_stats], "jobs": [news_poll_job], "schedules": [],
         "sensors": [build_news_sensor(settings.news_poll_interval_s)]},
        build_trading_definitions(settings.trading, settings.models.inference_threshold, settings.symbols,
                                  scan_interval_s=settings.continuity.live_poll_interval_s),
        build_alert_definitions(settings.symbols, settings.trading.daily_loss_limit),
    ]
    return dg.Definitions(
        assets=[build_candles_asset(partitions), *(a for g in groups for a in g["assets"])],
        jobs=[j for g in groups for j in g["jobs"]],
        schedules=[s for g in groups for s in g["schedules"]],
        sensors=[s for g in groups for s in g["sensors"]],
        resources=build_resources(settings, clock=clock),
    )
