"""The calibration report: production versus live calibration, feature drift, and the verdict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sqlalchemy import Engine

from coinpilot_pipelines.clients.mlflow_registry import LoggedRun, ModelRegistry, RegisteredModel
from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.ml.calibration import (
    brier_score,
    expected_calibration_error,
    maximum_calibration_error,
    reliability_table,
)
from coinpilot_pipelines.ml.drift import Drift, feature_drift
from coinpilot_pipelines.ml.inference import champion_or_fail, label_spec_of
from coinpilot_pipelines.ml.monitoring import Recommendation, RetrainPolicy, recommend_retrain
from coinpilot_pipelines.ml.pipeline import load_dataset
from coinpilot_pipelines.ml.plots import reliability_diagram
from coinpilot_pipelines.ml.training import TrainingSpec, predict_up
from coinpilot_pipelines.storage.features import read_features
from coinpilot_pipelines.storage.models import earlier_gap_flags, inference_log, store_report


@dataclass
class CalibrationSnapshot:
    ece: float
    mce: float
    brier: float
    count: int
    table: pd.DataFrame

    @classmethod
    def of(cls, y_true: np.ndarray, y_prob: np.ndarray) -> CalibrationSnapshot:
        return cls(expected_calibration_error(y_true, y_prob), maximum_calibration_error(y_true, y_prob),
                   brier_score(y_true, y_prob), len(y_true), reliability_table(y_true, y_prob))


@dataclass
class CalibrationReport:
    report_id: int
    model_version: str
    production: CalibrationSnapshot
    live: CalibrationSnapshot | None
    live_window: tuple[datetime, datetime] | None
    drift: list[Drift] = field(default_factory=list)
    recommendation: Recommendation | None = None
    run: LoggedRun | None = None
    diagram: Figure | None = None


@dataclass(frozen=True)
class ChampionBaseline:
    """What live behaviour is compared with, fixed while a version stays champion: its calibration on
    its own held-out window, rebuilt from stored data, and the training window's features (for drift)."""

    production: CalibrationSnapshot
    training_features: pd.DataFrame


class BaselineCache:
    """The champion's baseline, built once per version and process. Building it reads and scores the
    whole training window (about a second); a process that writes a report every hour of simulated
    time keeps it. A run worker is a new process, so in production each report builds its own."""

    def __init__(self) -> None:
        self._kept: tuple[tuple, ChampionBaseline] | None = None

    def get(self, engine: Engine, registry: ModelRegistry, champion: RegisteredModel,
            series_list: Sequence[SeriesKey], drift_features: Sequence[str]) -> ChampionBaseline:
        key = (engine.url, registry.tracking_uri, registry.model_name, champion.version,
               tuple(series_list), tuple(drift_features))
        if self._kept is None or self._kept[0] != key:
            self._kept = (key, _build_baseline(engine, registry, champion, series_list, drift_features))
        return self._kept[1]


BASELINES = BaselineCache()


def _build_baseline(engine: Engine, registry: ModelRegistry, champion: RegisteredModel,
                    series_list: Sequence[SeriesKey], drift_features: Sequence[str]) -> ChampionBaseline:
    params = registry.run_params(champion.run_id)
    labels = label_spec_of(registry, champion)
    window_start, window_end = (datetime.fromisoformat(params[k]) for k in ("window_start", "window_end"))
    test_start, test_end = (datetime.fromisoformat(params[k]) for k in ("test_start", "test_end"))
    dataset = load_dataset(engine, series_list, window_start, window_end, TrainingSpec(labels=labels))
    held_out = ((dataset.times >= test_start) & (dataset.times < test_end)).to_numpy()
    production = CalibrationSnapshot.of(dataset.up[held_out],
                                        predict_up(registry.load(champion.version), dataset.features[held_out]))
    training = read_features(engine, series_list, window_start, window_end)[list(drift_features)]
    return ChampionBaseline(production, training)


def build_calibration_report(engine: Engine, registry: ModelRegistry, series_list: Sequence[SeriesKey], *,
                             policy: RetrainPolicy, live_window_days: int, now: datetime,
                             dagster_run_id: str | None) -> CalibrationReport:
    champion = champion_or_fail(registry)
    # Production calibration: the champion on its own held-out window.
    baseline = BASELINES.get(engine, registry, champion, series_list, policy.drift_features)
    production = baseline.production

    # Live calibration: what the champion scored and the market then did, on every realized bar
    # (dead-band bars too, by their direction), as held-out evaluation counts them.
    logged = inference_log(engine, registry.model_name, champion.version)
    realized = logged.dropna(subset=["realized_return"])
    live, live_window = None, None
    if not realized.empty:
        last = pd.to_datetime(realized["open_time"], utc=True).max()
        first = last - timedelta(days=live_window_days)
        recent = realized[pd.to_datetime(realized["open_time"], utc=True) >= first]
        live = CalibrationSnapshot.of((recent["realized_return"].astype(float) > 0).to_numpy(dtype=int),
                                      recent["probability"].astype(float).to_numpy())
        live_window = (first.to_pydatetime(), last.to_pydatetime())

    drift: list[Drift] = []
    if live_window is not None:
        training = baseline.training_features
        recent_features = read_features(engine, series_list, live_window[0], live_window[1] + series_list[0].interval.delta)
        drift = feature_drift({f: training[f].to_numpy() for f in policy.drift_features},
                              {f: recent_features[f].to_numpy() for f in policy.drift_features})

    flags = earlier_gap_flags(engine, registry.model_name, champion.version, policy.streak)
    recommendation = recommend_retrain(production.ece, live.ece if live else None, live.count if live else 0,
                                       flags, drift, policy)
    tables = {"production (held-out)": production.table}
    if live is not None:
        tables["live (realized)"] = live.table
    figure = reliability_diagram(tables, f"{registry.model_name} v{champion.version}: reliability")
    metrics = {"production_ece": production.ece, "production_brier": production.brier}
    if live is not None:
        metrics.update({"live_ece": live.ece, "live_brier": live.brier, "ece_gap": live.ece - production.ece})
    run = registry.log_report_run(
        metrics=metrics, figures={"reliability_diagram.png": figure},
        tags={"model_version": champion.version, "dagster_run_id": dagster_run_id or "",
              "recommend_retrain": str(recommendation.retrain)},
        experiment=f"{registry.model_name}-calibration",
    )
    report_id = store_report(
        engine, created_at=now, model_name=registry.model_name, model_version=champion.version,
        production_ece=production.ece, production_mce=production.mce, production_brier=production.brier,
        production_count=production.count,
        live_ece=live.ece if live else None, live_mce=live.mce if live else None,
        live_brier=live.brier if live else None, live_count=live.count if live else 0,
        ece_gap=(live.ece - production.ece) if live else None, ece_gap_exceeded=recommendation.gap_exceeded,
        drift={d.feature: d.report() for d in drift},
        recommend_retrain=recommendation.retrain, reason=recommendation.reason,
        mlflow_run_id=run.run_id, dagster_run_id=dagster_run_id,
    )
    return CalibrationReport(report_id, champion.version, production, live, live_window, drift, recommendation,
                             run, figure)
