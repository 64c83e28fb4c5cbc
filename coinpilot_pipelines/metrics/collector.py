"""The exporter's collector: every metric of `catalogue`, read from the application database per scrape.

Each scrape is a few aggregate queries per symbol (the 365-day completeness is the continuity
scan's own index-only count); a value the database does not hold yet (no bar stored, no champion,
no executor run) is left out rather than reported as zero.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import numpy as np
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from coinpilot_pipelines.clock import Clock
from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.market.intervals import from_ms, to_ms
from coinpilot_pipelines.metrics.catalogue import CATALOGUE, COMPLETENESS_WINDOWS, MTTR_QUANTILES, MTTR_WINDOW
from coinpilot_pipelines.storage.candles import latest_open_time, window_summary
from coinpilot_pipelines.storage.monitoring import (
    latest_calibration,
    latest_scored_open_time,
    news_source_names,
    open_live_positions,
    open_paper_trades,
    order_attempt_counts,
    recovery_seconds,
    risk_states,
    segment_counts,
)
from coinpilot_pipelines.storage.news import source_summaries
from coinpilot_pipelines.storage.runtime_state import TRADE_MODE_KEY, champion_key, runtime_values
from coinpilot_pipelines.trading.guards import MODES
from coinpilot_pipelines.trading.risk import daily_loss_limit_reached, realized_today

log = logging.getLogger(__name__)
Add = Callable[[str, Sequence[str], float], None]  # a sample: metric name without the prefix, labels, value


@dataclass(frozen=True)
class ExporterConfig:
    series: Sequence[SeriesKey]
    start_date: date  # the first market partition: completeness is not owed before it
    daily_loss_limit: Decimal


class CoinpilotCollector(Collector):
    def __init__(self, engine: Engine, config: ExporterConfig, clock: Clock) -> None:
        self._engine = engine
        self._config = config
        self._clock = clock

    def describe(self) -> list[GaugeMetricFamily]:
        """The metric names without a database round trip (what the registry checks at registration)."""
        return [GaugeMetricFamily(m.name, m.help, labels=m.labels) for m in CATALOGUE]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        started = time.monotonic()
        families = {family.name: family for family in self.describe()}

        def add(name: str, labels: Sequence[str], value: float) -> None:
            families[f"coinpilot_{name}"].add_metric(list(labels), float(value))

        now = self._clock.now()
        try:
            for series in self._config.series:
                self._market(add, series, now)
            self._news(add, now)
            self._models(add)
            self._trading(add, now)
        except Exception as exc:
            # Logged once, through logging (which masks secrets); the scrape answers 500 and Prometheus
            # marks the target down. The HTTP server prints what it is raised with, so that stays short.
            log.exception("metrics scrape failed")
            raise RuntimeError(f"metrics scrape failed: {exc.__class__.__name__}") from None
        add("exporter_scrape_seconds", (), time.monotonic() - started)
        yield from families.values()

    def _market(self, add: Add, series: SeriesKey, now: datetime) -> None:
        engine, symbol, interval = self._engine, series.symbol, series.interval
        end = from_ms(interval.floor_ms(to_ms(now)))  # every bar opened before it has closed
        first = datetime.combine(self._config.start_date, datetime.min.time(), tzinfo=now.tzinfo)
        for window, length in COMPLETENESS_WINDOWS.items():
            start = max(end - length, first)
            expected = interval.bars_between(to_ms(start), to_ms(end))
            if expected:
                present = window_summary(engine, series, start, end).present_bars
                add("candles_completeness_ratio", (symbol, window), present / expected)
        newest = latest_open_time(engine, series)
        if newest is not None:
            add("candles_bars_behind", (symbol,), interval.bars_between(to_ms(newest) + interval.ms, to_ms(end)))
            add("candles_last_open_time_seconds", (symbol,), newest.timestamp())
            scored = latest_scored_open_time(engine, series)
            if scored is not None:
                add("inference_lag_seconds", (symbol,), (newest - scored).total_seconds())
        segments = segment_counts(engine, series)
        add("gap_segments_open", (symbol,), segments.open_segments)
        add("gap_missing_bars", (symbol,), segments.remaining_bars)
        add("gap_segments_unrecoverable", (symbol,), segments.unrecoverable)
        recoveries = recovery_seconds(engine, series, now - MTTR_WINDOW)
        add("gap_recovered_segments", (symbol,), len(recoveries))
        if recoveries:
            for quantile, value in zip(MTTR_QUANTILES, np.quantile(recoveries, MTTR_QUANTILES)):
                add("gap_mttr_seconds", (symbol, str(quantile)), value)

    def _news(self, add: Add, now: datetime) -> None:
        for summary in source_summaries(self._engine, news_source_names(self._engine)):
            health, source = summary.health, summary.source
            if health is None:
                continue  # polled, never evaluated yet
            add("news_source_health_score", (source,), health.health_score)
            add("news_source_stalled", (source,), health.stalled)
            add("news_source_anomaly", (source, "low_ratio"), health.low_ratio)
            add("news_source_anomaly", (source, "volatile"), health.volatile)
            add("news_source_error_share", (source,), health.error_share)
            if health.last_new_article_at is not None:
                add("news_source_seconds_since_new_article", (source,),
                    (now - health.last_new_article_at).total_seconds())

    def _models(self, add: Add) -> None:
        prefix = champion_key("")
        for key, champion in runtime_values(self._engine, prefix).items():
            if champion.value.isdigit():  # empty: no model has earned it yet
                add("model_champion_version", (key.removeprefix(prefix),), int(champion.value))
        report = latest_calibration(self._engine)
        if report is None:
            return
        model = (report.model_name, report.model_version)
        add("calibration_ece", (*model, "production"), report.production_ece)
        if report.live_ece is not None:
            add("calibration_ece", (*model, "live"), report.live_ece)
        if report.ece_gap is not None:
            add("calibration_ece_gap", model, report.ece_gap)
        add("calibration_recommend_retrain", model, report.recommend_retrain)

    def _trading(self, add: Add, now: datetime) -> None:
        engine, limit = self._engine, self._config.daily_loss_limit
        mode = runtime_values(engine, TRADE_MODE_KEY).get(TRADE_MODE_KEY)
        if mode is not None:
            for name in MODES:
                add("trade_mode", (name,), name == mode.value)
        paper = open_paper_trades(engine)
        for symbol in sorted({series.symbol for series in self._config.series} | set(paper)):
            add("paper_positions_open", (symbol,), paper.get(symbol, 0))
        add("live_positions_open", (), open_live_positions(engine))
        add("daily_loss_limit", (), limit)
        for profile, state in risk_states(engine).items():
            add("realized_pnl_today", (profile,), realized_today(state, now))
            add("daily_loss_limit_reached", (profile,), daily_loss_limit_reached(state, limit, now))
        for mode_name, status, count in order_attempt_counts(engine):
            add("order_attempts", (mode_name, status), count)
