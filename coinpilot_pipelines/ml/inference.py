"""The champion scores the newest features; outcomes are filled in once the horizon has passed.

The inference log is what live calibration is measured on and what trade signals are made of.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from coinpilot_pipelines.clients.mlflow_registry import CHAMPION, ModelRegistry, RegisteredModel
from coinpilot_pipelines.features.candle_features import FEATURE_SET_VERSION
from coinpilot_pipelines.features.service import FeatureRun, refresh_features
from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.ml.labels import LabelSpec, direction_labels
from coinpilot_pipelines.ml.training import predict_up
from coinpilot_pipelines.storage.candles import latest_open_time
from coinpilot_pipelines.storage.features import first_bar_without_features, read_closes, read_features
from coinpilot_pipelines.storage.models import log_inference, scored_times, set_realized, unrealized
from coinpilot_pipelines.storage.runtime_state import champion_key, runtime_values


@dataclass
class InferenceOutcome:
    model_version: str | None  # None: there is no champion, nothing was scored
    scored: int = 0
    realized: int = 0
    latest: list[dict] = field(default_factory=list)  # the newest score per symbol


@dataclass(frozen=True)
class Champion:
    """The model behind the registry's champion alias, loaded, with the labels it was trained on."""

    version: str
    run_id: str
    model: Any  # a fitted scikit-learn pipeline
    labels: LabelSpec


NO_CHAMPION = ("no trained model has beaten the climatology baseline yet (materialize `signal_model`; its "
               "promotion_reason says why a model was not promoted)")


def champion_or_fail(registry: ModelRegistry) -> RegisteredModel:
    champion = registry.alias_version(CHAMPION)
    if champion is None:
        raise ValueError(f"model {registry.model_name!r} has no champion: {NO_CHAMPION}")
    return champion


def label_spec_of(registry: ModelRegistry, champion: RegisteredModel) -> LabelSpec:
    params = registry.run_params(champion.run_id)
    return LabelSpec(int(params["label_horizon_bars"]), float(params["label_dead_band"]))


class ChampionCache:
    """The champion, loaded once per version: a code server scores every new bar for days, and
    loading a model takes about a second.

    Asking the registry which version is champion costs a handful of MLflow queries, every tick.
    The promotion step records each decision's champion in `runtime_state` in the same transaction
    as it moves the alias, so the registry is asked again only when that record changes, or once
    ``recheck`` has passed on the clock (an alias moved by hand in the MLflow UI).
    """

    def __init__(self, recheck: timedelta = timedelta(minutes=10)) -> None:
        self.recheck = recheck
        self._loaded: dict[tuple[str, str, str], Champion] = {}
        self._asked: tuple[tuple, datetime, Champion | None] | None = None  # (what was known, when, answer)

    def current(self, registry: ModelRegistry, engine: Engine, now: datetime) -> Champion | None:
        key = champion_key(registry.model_name)
        known = (registry.tracking_uri, registry.model_name, runtime_values(engine, key).get(key))
        if self._asked is not None and self._asked[0] == known and now < self._asked[1] + self.recheck:
            return self._asked[2]
        self._asked = (known, now, self._ask(registry))
        return self._asked[2]

    def _ask(self, registry: ModelRegistry) -> Champion | None:
        found = registry.alias_version(CHAMPION)
        if found is None:
            return None
        key = (registry.tracking_uri, registry.model_name, found.version)
        if key not in self._loaded:
            self._loaded = {key: Champion(found.version, found.run_id, registry.load(found.version),
                                          label_spec_of(registry, found))}
        return self._loaded[key]


def score_series(engine: Engine, champion: Champion, model_name: str, series: SeriesKey, start: datetime,
                 end: datetime, *, threshold: float, now: datetime) -> tuple[int, dict | None]:
    """Score the valid feature rows in ``[start, end)`` no model version has scored yet; the number
    scored and the newest score. Each bar is scored once, by the champion of the moment it arrived:
    a new champion's live record starts with the bars after its promotion."""
    features = read_features(engine, [series], start, end, valid_only=True)
    done = scored_times(engine, series, model_name, start)
    fresh = features[~features["open_time"].isin(done)]
    if fresh.empty:
        return 0, None
    probabilities = predict_up(champion.model, fresh)
    scored = log_inference(engine, [
        {"exchange": series.exchange, "symbol": series.symbol, "interval": series.interval.code,
         "open_time": t.to_pydatetime(), "model_name": model_name, "model_version": champion.version,
         "feature_set_version": FEATURE_SET_VERSION, "probability": float(p), "threshold": threshold,
         "decision": "long" if p >= threshold else "flat", "horizon_bars": champion.labels.horizon_bars,
         "scored_at": now}
        for t, p in zip(fresh["open_time"], probabilities, strict=True)
    ])
    latest = {"symbol": series.symbol, "open_time": fresh["open_time"].iloc[-1], "probability": float(probabilities[-1]),
              "decision": "long" if probabilities[-1] >= threshold else "flat"}
    return scored, latest


def score_and_realize(engine: Engine, registry: ModelRegistry, series_list: Sequence[SeriesKey], *,
                      threshold: float, lookback_bars: int, now: datetime,
                      champions: ChampionCache | None = None) -> InferenceOutcome:
    """Refresh the features of the newest ``lookback_bars`` per series, score what the champion has not
    scored, and fill in the outcomes whose horizon has passed. Without a champion, nothing is scored."""
    champion = (champions or ChampionCache()).current(registry, engine, now)
    if champion is None:
        return InferenceOutcome(None)
    outcome = InferenceOutcome(champion.version)
    for series in series_list:
        newest = latest_open_time(engine, series)
        if newest is None:
            continue
        end = newest + series.interval.delta
        start = end - series.interval.delta * lookback_bars
        refresh_features(engine, series, start, end, now=now)
        scored, latest = score_series(engine, champion, registry.model_name, series, start, end,
                                      threshold=threshold, now=now)
        outcome.scored += scored
        if latest is not None:
            outcome.latest.append(latest)
        outcome.realized += realize(engine, series, champion.labels, now)
    return outcome


def realize(engine: Engine, series: SeriesKey, labels: LabelSpec, now: datetime, since: datetime | None = None) -> int:
    """Fill the outcome of every logged score (from ``since``) whose horizon has passed in the stored candles."""
    pending = unrealized(engine, series, since)
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


@dataclass
class FollowUp:
    """What the chain did after new bars of one series were stored: features, then scores, then outcomes."""

    features: FeatureRun
    scored: int = 0
    latest: dict | None = None
    realized: int = 0


def follow_new_bars(engine: Engine, champion: Champion | None, model_name: str, series: SeriesKey, start: datetime,
                    end: datetime, *, bars_changed: bool, threshold: float, now: datetime) -> FollowUp:
    """The features of the bars stored in ``[start, end)``, the champion's score of each (none without
    a champion), and the outcomes that became known.

    A poll re-reads bars it already stored; unless one of them changed (``bars_changed``), features
    are computed from the first new bar, so each row keeps the time it was first computed."""
    features_from = start
    if not bars_changed:
        features_from = first_bar_without_features(engine, series, start, end, version=FEATURE_SET_VERSION) or end
    follow_up = FollowUp(refresh_features(engine, series, features_from, end, now=now))
    if champion is not None:
        follow_up.scored, follow_up.latest = score_series(engine, champion, model_name, series, start, end,
                                                          threshold=threshold, now=now)
        # Only the scores whose outcome bar may be among the new bars: one whose outcome fell in an
        # outage stays pending for ever, and would stretch every tick's read back to it. The
        # calibration job's pass realizes any such score once a repair stores its bar.
        since = start - series.interval.delta * (champion.labels.horizon_bars + 1)
        follow_up.realized = realize(engine, series, champion.labels, now, since)
    return follow_up
