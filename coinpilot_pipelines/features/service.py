"""Compute and store features for one series over a window (the `features` asset and training use it)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine

from coinpilot_pipelines.features.candle_features import FEATURE_SET_VERSION, LOOKBACK_BARS, compute_features
from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.storage.features import read_closes, store_features


@dataclass
class FeatureRun:
    series: SeriesKey
    start: datetime
    end: datetime
    features: pd.DataFrame  # the window's rows, valid and invalid
    invalid_reasons: Counter[str] = field(default_factory=Counter)

    @property
    def rows(self) -> int:
        return len(self.features)

    @property
    def valid_rows(self) -> int:
        return int(self.features["is_valid"].sum())


def refresh_features(engine: Engine, series: SeriesKey, start: datetime, end: datetime, *, now: datetime) -> FeatureRun:
    """Recompute the features of the bars stored in ``[start, end)``, reading `LOOKBACK_BARS` before it."""
    bars = read_closes(engine, series, start - series.interval.delta * LOOKBACK_BARS, end)
    computed = compute_features(bars, series.interval.ms)
    window = computed[computed["open_time"] >= start].reset_index(drop=True)
    store_features(engine, series, window, version=FEATURE_SET_VERSION, computed_at=now)
    reasons = Counter(window.loc[~window["is_valid"], "invalid_reason"].dropna())
    return FeatureRun(series, start, end, window, reasons)
