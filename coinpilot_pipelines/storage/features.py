"""Reading bars for feature work, and storing features and labels."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd
from sqlalchemy import Double, Engine, cast, func, select

from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.storage.bulk import upsert_frame
from coinpilot_pipelines.storage.frames import as_floats, of_series, query_frame
from coinpilot_pipelines.storage.schema import (
    FEATURE_VALUE_COLUMNS,
    candle_features,
    candle_labels,
    ohlcv_candles,
)


def read_closes(engine: Engine, series: SeriesKey, start: datetime, end: datetime) -> pd.DataFrame:
    """``open_time``, ``close``, ``volume`` (floats) of the stored bars in ``[start, end)``, ascending."""
    query = (
        select(ohlcv_candles.c.open_time, cast(ohlcv_candles.c.close, Double).label("close"),
               cast(ohlcv_candles.c.volume, Double).label("volume"))
        .where(of_series(ohlcv_candles, series), ohlcv_candles.c.open_time >= start, ohlcv_candles.c.open_time < end)
        .order_by(ohlcv_candles.c.open_time)
    )
    with engine.connect() as connection:
        frame = query_frame(connection, query)
    frame["open_time"] = pd.to_datetime(frame["open_time"], utc=True)
    return as_floats(frame, ["close", "volume"])


def first_bar_without_features(engine: Engine, series: SeriesKey, start: datetime, end: datetime, *,
                               version: str) -> datetime | None:
    """The first stored bar in ``[start, end)`` with no feature row of ``version``: where new bars begin."""
    featured = select(candle_features.c.open_time).where(
        of_series(candle_features, series), candle_features.c.open_time == ohlcv_candles.c.open_time,
        candle_features.c.feature_set_version == version)
    query = select(func.min(ohlcv_candles.c.open_time)).where(
        of_series(ohlcv_candles, series), ohlcv_candles.c.open_time >= start, ohlcv_candles.c.open_time < end,
        ~featured.exists())
    with engine.connect() as connection:
        return connection.execute(query).scalar_one()


def store_features(engine: Engine, series: SeriesKey, features: pd.DataFrame, *, version: str,
                   computed_at: datetime) -> int:
    """Upsert one series' feature rows. ``computed_at`` keeps the time the bar's features were first
    computed: inference and training recompute overlapping windows, which must not make old bars look new."""
    frame = features[["open_time", "close", *FEATURE_VALUE_COLUMNS, "is_valid", "invalid_reason"]].copy()
    frame.insert(0, "exchange", series.exchange)
    frame.insert(1, "symbol", series.symbol)
    frame.insert(2, "interval", series.interval.code)
    frame["feature_set_version"] = version
    frame["computed_at"] = pd.Timestamp(computed_at)
    with engine.begin() as connection:
        return upsert_frame(connection, candle_features, frame, key=("exchange", "symbol", "interval", "open_time"),
                            keep=["computed_at"])


def read_features(engine: Engine, series_list: Sequence[SeriesKey], start: datetime, end: datetime, *,
                  valid_only: bool = True, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Stored features of several series in ``[start, end)``, with a ``symbol`` column; ``columns``:
    only these (``symbol`` and ``open_time`` always)."""
    unknown = set(columns or ()) - set(candle_features.c.keys())
    if unknown:
        raise ValueError(f"candle_features has no column {', '.join(sorted(unknown))}")
    chosen = [c for c in candle_features.columns if columns is None or c.name in {"symbol", "open_time", *columns}]
    frames = []
    with engine.connect() as connection:
        for series in series_list:
            query = select(*chosen).where(
                of_series(candle_features, series), candle_features.c.open_time >= start,
                candle_features.c.open_time < end)
            if valid_only:
                query = query.where(candle_features.c.is_valid.is_(True))
            frames.append(query_frame(connection, query.order_by(candle_features.c.open_time)))
    if not frames:
        frame = pd.DataFrame(columns=[c.name for c in chosen])
    else:
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    frame["open_time"] = pd.to_datetime(frame["open_time"], utc=True)
    return as_floats(frame, [name for name in ("close", *FEATURE_VALUE_COLUMNS) if name in frame.columns])


def store_labels(engine: Engine, series: SeriesKey, labels: pd.DataFrame, *, version: str) -> int:
    frame = labels[["open_time", "forward_return", "label", "outcome_at"]].copy()
    frame.insert(0, "exchange", series.exchange)
    frame.insert(1, "symbol", series.symbol)
    frame.insert(2, "interval", series.interval.code)
    frame.insert(4, "label_version", version)
    frame["label"] = frame["label"].astype("Int16")
    with engine.begin() as connection:
        return upsert_frame(connection, candle_labels, frame,
                            key=("exchange", "symbol", "interval", "open_time", "label_version"))
