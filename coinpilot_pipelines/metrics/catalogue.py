"""Every metric the exporter serves: name, help and labels. All are gauges, computed at scrape time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

COMPLETENESS_WINDOWS = {"1d": timedelta(days=1), "365d": timedelta(days=365)}
# Recoveries that count towards MTTR: a day's, so a slow repair stops weighing on p90 a day later.
MTTR_WINDOW = timedelta(hours=24)
MTTR_QUANTILES = (0.5, 0.9)


@dataclass(frozen=True)
class Metric:
    name: str
    help: str
    labels: tuple[str, ...] = ()


CATALOGUE = (
    Metric("coinpilot_candles_completeness_ratio",
           "Stored share of the closed bars expected over the window before now (from COINPILOT_START_DATE at most).",
           ("symbol", "window")),
    Metric("coinpilot_candles_bars_behind", "Closed bars after the newest stored bar.", ("symbol",)),
    Metric("coinpilot_candles_last_open_time_seconds", "Open time of the newest stored bar (Unix time).", ("symbol",)),
    Metric("coinpilot_gap_segments_open", "Gap segments open or being repaired (the repair queue).", ("symbol",)),
    Metric("coinpilot_gap_missing_bars", "Bars still missing in the open gap segments.", ("symbol",)),
    Metric("coinpilot_gap_segments_unrecoverable", "Gap segments ended unrecoverable (exchange outages).", ("symbol",)),
    Metric("coinpilot_gap_recovered_segments", "Gap segments recovered in the last 24 hours.", ("symbol",)),
    Metric("coinpilot_gap_mttr_seconds",
           "Detection to recovery of the gap segments recovered in the last 24 hours, by quantile.",
           ("symbol", "quantile")),
    Metric("coinpilot_news_source_health_score", "News source health score in 0..1 as of its latest evaluated poll.",
           ("source",)),
    Metric("coinpilot_news_source_stalled", "1 when the news source had no new article for longer than the threshold.",
           ("source",)),
    Metric("coinpilot_news_source_anomaly", "1 when the news source's dedup ratio is low or volatile.",
           ("source", "kind")),
    Metric("coinpilot_news_source_error_share", "Share of failed polls of the news source in its window.", ("source",)),
    Metric("coinpilot_news_source_seconds_since_new_article", "Seconds since the news source's last new article.",
           ("source",)),
    Metric("coinpilot_model_champion_version", "The registered model's champion version.", ("model",)),
    Metric("coinpilot_calibration_ece", "Expected calibration error of the latest calibration report.",
           ("model", "version", "window")),
    Metric("coinpilot_calibration_ece_gap", "Live minus production ECE of the latest calibration report.",
           ("model", "version")),
    Metric("coinpilot_calibration_recommend_retrain", "1 when the latest calibration report recommends retraining.",
           ("model", "version")),
    Metric("coinpilot_inference_lag_seconds", "Newest stored bar's open time minus the newest scored bar's.",
           ("symbol",)),
    Metric("coinpilot_trade_mode", "1 for the effective mode of the latest order executor run, 0 for the others.",
           ("mode",)),
    Metric("coinpilot_paper_positions_open", "Open paper trades.", ("symbol",)),
    Metric("coinpilot_live_positions_open", "Live exchange positions with a quantity."),
    Metric("coinpilot_realized_pnl_today", "PnL realized today (UTC) in the quote currency.", ("profile",)),
    Metric("coinpilot_daily_loss_limit", "RISK_DAILY_LOSS_LIMIT in the quote currency."),
    Metric("coinpilot_daily_loss_limit_reached", "1 when today's realized loss reached the daily loss limit.",
           ("profile",)),
    Metric("coinpilot_order_attempts", "Order attempts recorded, by mode and status.", ("mode", "status")),
    Metric("coinpilot_exporter_scrape_seconds", "Time the exporter took to compute this scrape."),
)
METRIC_NAMES = frozenset(metric.name for metric in CATALOGUE)
