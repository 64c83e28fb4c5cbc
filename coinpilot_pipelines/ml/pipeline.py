"""Train, register, and promote: one training round from stored candles to the model registry."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import Engine

from coinpilot_pipelines.clients.mlflow_registry import CHALLENGER, CHAMPION, ModelRegistry
from coinpilot_pipelines.features.candle_features import FEATURE_SET_VERSION
from coinpilot_pipelines.features.service import refresh_features
from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.ml.calibration import reliability_table
from coinpilot_pipelines.ml.labels import direction_labels
from coinpilot_pipelines.ml.plots import reliability_diagram
from coinpilot_pipelines.ml.promotion import PromotionDecision, PromotionPolicy, decide
from coinpilot_pipelines.ml.split import SplitWindows
from coinpilot_pipelines.ml.training import Dataset, Metrics, TrainingSpec, build_dataset, fit, predict_up, split
from coinpilot_pipelines.storage.candles import latest_open_time
from coinpilot_pipelines.storage.features import read_closes, read_features, store_labels
from coinpilot_pipelines.storage.models import record_promotion


@dataclass
class TrainingOutcome:
    version: str
    mlflow_run_id: str
    window_start: datetime
    window_end: datetime
    test: SplitWindows
    train_rows: int
    test_rows: int
    metrics: Metrics
    decision: PromotionDecision
    champion_version: str | None  # after the decision
    features: tuple[str, ...]
    promotion_event_id: int


def training_window(engine: Engine, series_list: Sequence[SeriesKey], days: int) -> tuple[datetime, datetime]:
    """The last ``days`` of stored candles (across the symbols), ending after the newest bar."""
    latest = [t for t in (latest_open_time(engine, s) for s in series_list) if t is not None]
    if not latest:
        raise ValueError("no candles are stored yet: materialize `candles` before training")
    end = max(latest) + series_list[0].interval.delta
    return end - timedelta(days=days), end


def load_dataset(engine: Engine, series_list: Sequence[SeriesKey], start: datetime, end: datetime,
                 spec: TrainingSpec) -> Dataset:
    labels = []
    for series in series_list:
        bars = read_closes(engine, series, start, end)
        series_labels = direction_labels(bars, series.interval.ms, spec.labels)
        store_labels(engine, series, series_labels, version=spec.labels.version)
        labels.append(series_labels.assign(symbol=series.symbol))
    features = read_features(engine, series_list, start, end, valid_only=True)
    return build_dataset(features, pd.concat(labels, ignore_index=True))


def train_and_register(
    engine: Engine,
    registry: ModelRegistry,
    series_list: Sequence[SeriesKey],
    spec: TrainingSpec,
    policy: PromotionPolicy,
    *,
    now: datetime,
    dagster_run_id: str | None,
    log: Callable[[str], None] = lambda _: None,
) -> TrainingOutcome:
    start, end = training_window(engine, series_list, spec.window_days)
    for series in series_list:
        run = refresh_features(engine, series, start, end, now=now)
        log(f"{series.symbol}: {run.valid_rows} of {run.rows} feature rows valid in the training window")
    dataset = load_dataset(engine, series_list, start, end, spec)
    interval = series_list[0].interval.delta
    train, test, windows = split(dataset, spec, interval)
    if len(test) == 0 or len(set(test.target)) < 2:
        raise ValueError(f"the held-out window {windows.test_start} .. {windows.test_end} has too few labelled bars")
    log(f"training on {len(train)} bars, testing on {len(test)} (purged {spec.labels.horizon_bars} bars)")
    model = fit(train, spec)
    challenger_prob = predict_up(model, test.features)

    champion = registry.alias_version(CHAMPION)
    champion_prob = None
    if champion is not None:
        champion_prob = predict_up(registry.load(champion.version), test.features)
    decision = decide(test.target, challenger_prob, champion_prob, policy)

    table = reliability_table(test.target, challenger_prob)
    registered, _ = registry.log_model_run(
        model=model,
        example=test.features.head(50),
        params={**spec.params(), "feature_set_version": FEATURE_SET_VERSION,
                "symbols": ",".join(s.symbol for s in series_list), "interval": series_list[0].interval.code,
                "window_start": start.isoformat(), "window_end": end.isoformat(),
                "test_start": windows.test_start.isoformat(), "test_end": windows.test_end.isoformat(),
                "train_rows": len(train), "test_rows": len(test)},
        metrics={f"test_{k}": v for k, v in asdict(decision.challenger).items()},
        tags={"dagster_run_id": dagster_run_id or "", "feature_set_version": FEATURE_SET_VERSION},
        figures={"reliability_diagram.png": reliability_diagram({"held-out": table}, "Held-out calibration")},
        table=table,
    )
    registry.set_alias(CHALLENGER, registered.version)
    if decision.promote:
        registry.set_alias(CHAMPION, registered.version)
    event_id = record_promotion(
        engine, decided_at=now, model_name=registry.model_name, challenger_version=registered.version,
        champion_version=champion.version if champion else None, promoted=decision.promote, reason=decision.reason,
        challenger_metrics=asdict(decision.challenger),
        champion_metrics=asdict(decision.champion) if decision.champion else None,
        auc_gain_ci_low=decision.auc_gain_ci[0] if decision.auc_gain_ci else None,
        auc_gain_ci_high=decision.auc_gain_ci[1] if decision.auc_gain_ci else None,
        eval_window_start=windows.test_start, eval_window_end=windows.test_end, dagster_run_id=dagster_run_id,
    )
    return TrainingOutcome(
        version=registered.version, mlflow_run_id=registered.run_id, window_start=start, window_end=end,
        test=windows, train_rows=len(train), test_rows=len(test), metrics=decision.challenger, decision=decision,
        champion_version=registered.version if decision.promote else (champion.version if champion else None),
        features=spec.features, promotion_event_id=event_id,
    )

