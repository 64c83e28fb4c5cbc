"""The champion scores the newest features; outcomes are filled in once the horizon has passed.

The inference log is what live calibration is measured on and what trade signals are made of.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine

from coinpilot_pipelines.clients.mlflow_registry import CHAMPION, ModelRegistry, RegisteredModel
from coinpilot_pipelines.features.candle_features import FEATURE_SET_VERSION
from coinpilot_pipelines.features.service import refresh_features
from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.ml.labels import LabelSpec, direction_labels
from coinpilot_pipelines.ml.training import predict_up
from coinpilot_pipelines.storage.candles import latest_open_time
from coinpilot_pipelines.storage.features import read_closes, read_features
from coinpilot_pipelines.storage.models import log_inference, scored_times, set_realized, unrealized


@dataclass
class InferenceOutcome:
    model_version: str
    scored: int = 0
    realized: int = 0
    latest: list[dict] = field(default_factory=list)  # the newest score per symbol


def champion_or_fail(registry: ModelRegistry) -> RegisteredModel:
    champion = registry.alias_version(CHAMPION)
    if champion is None:
        raise ValueError(f"model {registry.model_name!r} has no champion: no trained model has beaten the climatology "
                         "baseline yet (materialize `signal_model`; its promotion_reason says why a model was not promoted)")
    return champion


def label_spec_of(registry: ModelRegistry, champion: RegisteredModel) -> LabelSpec:
    params = registry.run_params(champion.run_id)
    return LabelSpec(int(params["label_horizon_bars"]), float(params["label_dead_band"]))


def score_and_realize(engine: Engine, registry: ModelRegistry, series_list: Sequence[SeriesKey], *,
                      threshold: float, lookback_bars: int, now: datetime) -> InferenceOutcome:
    champion = champion_or_fail(registry)
    model = registry.load(champion.version)
    labels = label_spec_of(registry, champion)
    outcome = InferenceOutcome(champion.version)
    for series in series_list:
        newest = latest_open_time(engine, series)
        if newest is None:
            continue
        end = newest + series.interval.delta
        start = end - series.interval.delta * lookback_bars
        refresh_features(engine, series, start, end, now=now)
        features = read_features(engine, [series], start, end, valid_only=True)
        done = scored_times(engine, series, registry.model_name, champion.version, start)
        fresh = features[~features["open_time"].isin(done)]
        if not fresh.empty:
            probabilities = predict_up(model, fresh)
            outcome.scored += log_inference(engine, [
                {"exchange": series.exchange, "symbol": series.symbol, "interval": series.interval.code,
                 "open_time": t.to_pydatetime(), "model_name": registry.model_name, "model_version": champion.version,
                 "feature_set_version": FEATURE_SET_VERSION, "probability": float(p), "threshold": threshold,
                 "decision": "long" if p >= threshold else "flat", "horizon_bars": labels.horizon_bars,
                 "scored_at": now}
                for t, p in zip(fresh["open_time"], probabilities, strict=True)
            ])
            outcome.latest.append({"symbol": series.symbol, "open_time": fresh["open_time"].iloc[-1],
                                   "probability": float(probabilities[-1]),
                                   "decision": "long" if probabilities[-1] >= threshold else "flat"})
        outcome.realized += _realize(engine, series, labels, now)
    return outcome


def _realize(engine: Engine, series: SeriesKey, labels: LabelSpec, now: datetime) -> int:
    """Fill the outcome of every logged score whose horizon has passed in the stored candles."""
    pending = unrealized(engine, series)
    if pending.empty:
        return 0
    first = pending["open_time"].min()
    last = pending["open_time"].max() + series.interval.delta * (labels.horizon_bars + 1)
    bars = read_closes(engine, series, first, last)
    known = direction_labels(bars, series.interval.ms, labels).set_index("open_time")
    outcomes = []
    for row in pending.itertuples(index=False):
        if row.open_time not in known.index:
            continue
        realized = known.loc[row.open_time]
        label = realized["label"]  # missing inside the dead band: the return is known, the direction is not
        outcomes.append({"id": row.id, "realized_return": float(realized["forward_return"]),
                         "realized_label": None if pd.isna(label) else int(label), "realized_at": now})
    return set_realized(engine, outcomes)
