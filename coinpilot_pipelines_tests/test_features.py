"""Features against a straightforward reference on the real BTCUSDT recording; no look-ahead; gaps."""

from __future__ import annotations

import math
import statistics
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from coinpilot_pipelines.clients.binance import BinanceSpotClient
from coinpilot_pipelines.emulator.recordings import read_bundled_csv
from coinpilot_pipelines.features.candle_features import FEATURE_COLUMNS, LONGEST_WINDOW, compute_features
from coinpilot_pipelines.features.schema import feature_contract_failures
from coinpilot_pipelines.features.service import refresh_features
from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.market.ingest import ingest_candles
from coinpilot_pipelines.market.intervals import Interval
from coinpilot_pipelines.storage.database import get_engine
from coinpilot_pipelines.storage.features import read_features
from sqlalchemy import text

UTC = timezone.utc
MINUTE_MS = 60_000


@pytest.fixture(scope="module")
def recording() -> pd.DataFrame:
    raw = read_bundled_csv("binance_us_BTCUSDT_1m_20230301_20230321.csv.gz")
    return pd.DataFrame({
        "open_time": pd.to_datetime(raw["open_time"], utc=True),
        "close": raw["close"].astype(float),
        "volume": raw["volume"].astype(float),
    })


def reference_features(close: list[float], volume: list[float]) -> dict[str, list[float]]:
    """Loops straight from the definitions, one bar at a time."""
    n, nan = len(close), math.nan
    out = {name: [nan] * n for name in FEATURE_COLUMNS}
    # Wilder's RSI, TA-Lib seeding: simple means of the first 14 changes, then (13 avg + x) / 14.
    changes = [close[i] - close[i - 1] for i in range(1, n)]
    avg_gain = sum(max(c, 0) for c in changes[:14]) / 14
    avg_loss = sum(max(-c, 0) for c in changes[:14]) / 14
    for i in range(14, n):
        if i > 14:
            change = changes[i - 1]
            avg_gain = (avg_gain * 13 + max(change, 0)) / 14
            avg_loss = (avg_loss * 13 + max(-change, 0)) / 14
        out["rsi_14"][i] = 100 * avg_gain / (avg_gain + avg_loss) if avg_gain + avg_loss else 0.0
    for i in range(n):
        for k in (1, 5, 10):
            if i >= k:
                out[f"ret_{k}"][i] = math.log(close[i] / close[i - k])
        if i >= 20:
            out["rolling_vol_20"][i] = statistics.stdev(out["ret_1"][i - 19 : i + 1])
        for window in (20, 50, 200):
            if i >= window - 1:
                out[f"ma_{window}"][i] = sum(close[i - window + 1 : i + 1]) / window / close[i]
        if i >= 19:
            last = close[i - 19 : i + 1]
            mean = sum(last) / 20
            population_std = math.sqrt(sum((x - mean) ** 2 for x in last) / 20)
            out["bb_upper"][i], out["bb_lower"][i] = mean + 2 * population_std, mean - 2 * population_std
            width = out["bb_upper"][i] - out["bb_lower"][i]
            out["bb_pct_b"][i] = (close[i] - out["bb_lower"][i]) / width if width else 0.5
            mean_volume = sum(volume[i - 19 : i + 1]) / 20
            out["vol_ratio"][i] = volume[i] / mean_volume if mean_volume else 0.0
    return out


def test_features_equal_the_reference_on_the_real_recording(recording: pd.DataFrame) -> None:
    bars = recording.iloc[:6000]
    ours = compute_features(bars, MINUTE_MS)
    reference = reference_features(bars["close"].tolist(), bars["volume"].tolist())
    for name in FEATURE_COLUMNS:
        expected = np.array(reference[name])
        got = ours[name].to_numpy()
        assert np.array_equal(np.isnan(got), np.isnan(expected)), name
        tolerance = 1e-9 if name == "rsi_14" else 1e-9 * np.nanmax(np.abs(expected))
        assert np.nanmax(np.abs(got - expected)) <= tolerance, name
    assert ours["is_valid"].sum() == 6000 - (LONGEST_WINDOW - 1)
    assert (recording["volume"] == 0).sum() == 658  # quiet minutes are bars, and features see them


def test_a_partition_read_with_its_lookback_equals_the_whole_series(sqlite_url: str, emulator, recording: pd.DataFrame) -> None:  # noqa: ANN001
    series = SeriesKey("binance", "BTCUSDT", Interval.parse("1m"))
    engine = get_engine(sqlite_url)
    with BinanceSpotClient(emulator.url) as client:
        ingest_candles(client, engine, series, datetime(2023, 3, 1, tzinfo=UTC), datetime(2023, 3, 12, tzinfo=UTC),
                       source="rest")
    day = datetime(2023, 3, 11, tzinfo=UTC)
    run = refresh_features(engine, series, day, day + timedelta(days=1), now=day)
    assert (run.rows, run.valid_rows) == (1440, 1440)
    stored = read_features(engine, [series], day, day + timedelta(days=1))
    whole = compute_features(recording[recording["open_time"] < day + timedelta(days=1)], MINUTE_MS)
    whole = whole[whole["open_time"] >= day].reset_index(drop=True)
    assert np.nanmax(np.abs(stored["rsi_14"].to_numpy() - whole["rsi_14"].to_numpy())) < 1e-9
    for name in FEATURE_COLUMNS:
        np.testing.assert_allclose(stored[name].to_numpy(), whole[name].to_numpy(), rtol=1e-9, err_msg=name)


def test_changing_the_next_bar_never_changes_features_up_to_now(recording: pd.DataFrame) -> None:
    bars = recording.iloc[:1200].reset_index(drop=True)
    base = compute_features(bars, MINUTE_MS)
    rng = np.random.default_rng(0)
    for t in rng.integers(0, len(bars) - 1, 25):
        changed = bars.copy()
        changed.loc[t + 1 :, "close"] *= rng.uniform(0.5, 2.0)
        changed.loc[t + 1 :, "volume"] = rng.uniform(0, 100)
        after = compute_features(changed, MINUTE_MS)
        pd.testing.assert_frame_equal(base.iloc[: t + 1], after.iloc[: t + 1])


def test_bars_whose_windows_cross_a_gap_are_flagged_not_computed_across_it(recording: pd.DataFrame) -> None:
    bars = recording.iloc[:1000].drop(index=range(500, 503)).reset_index(drop=True)  # a 3-minute hole
    features = compute_features(bars, MINUTE_MS)
    after_gap = features.iloc[500:]  # bar 500 is the first after the hole
    assert not after_gap.iloc[: LONGEST_WINDOW - 1]["is_valid"].any()
    assert set(after_gap.iloc[: LONGEST_WINDOW - 1]["invalid_reason"]) == {"window crosses a gap"}
    assert after_gap.iloc[LONGEST_WINDOW - 1 :]["is_valid"].all()
    assert set(features.iloc[: LONGEST_WINDOW - 1]["invalid_reason"]) == {"warm-up: fewer than 200 earlier bars"}
    # Right after the hole nothing reaches back across it: the first bar has no return at all.
    assert np.isnan(features.loc[500, "ret_1"]) and np.isnan(features.loc[500, "rsi_14"])
    alone = compute_features(bars.iloc[500:].reset_index(drop=True), MINUTE_MS)
    pd.testing.assert_frame_equal(features.iloc[500:].reset_index(drop=True).drop(columns=["invalid_reason"]),
                                  alone.drop(columns=["invalid_reason"]), rtol=1e-9)


def test_the_feature_contract(recording: pd.DataFrame) -> None:
    features = compute_features(recording.iloc[:800], MINUTE_MS)
    assert feature_contract_failures(features).empty
    broken = features.copy()
    broken.loc[300, "rsi_14"] = 140.0
    broken.loc[400, "vol_ratio"] = np.nan  # a valid row may not miss a value
    failures = feature_contract_failures(broken)
    assert set(failures["index"]) == {300, 400}


@pytest.mark.parametrize("database", ["sqlite_url", "pg_url"])
def test_recomputed_features_keep_the_time_they_first_existed(database: str, request, emulator) -> None:  # noqa: ANN001
    url = request.getfixturevalue(database)
    series = SeriesKey("binance", "BTCUSDT", Interval.parse("1m"))
    engine = get_engine(url)
    with BinanceSpotClient(emulator.url) as client:
        ingest_candles(client, engine, series, datetime(2023, 3, 10, tzinfo=UTC), datetime(2023, 3, 12, tzinfo=UTC),
                       source="rest")
    day, first, later = datetime(2023, 3, 11, tzinfo=UTC), datetime(2023, 3, 12, tzinfo=UTC), datetime(2023, 3, 13, tzinfo=UTC)
    refresh_features(engine, series, day, day + timedelta(days=1), now=first)
    # Inference and training recompute overlapping windows from other starting points.
    refresh_features(engine, series, day + timedelta(hours=20), day + timedelta(days=1), now=later)
    refresh_features(engine, series, day, day + timedelta(days=1), now=later)
    stamps = read_features(engine, [series], day, day + timedelta(days=1))["computed_at"]
    assert len(stamps) == 1440 and set(pd.to_datetime(stamps, utc=True)) == {pd.Timestamp(first)}

    # A corrected bar changes its features; the row is rewritten.
    before = read_features(engine, [series], day, day + timedelta(days=1))["ret_1"].iloc[-1]
    with engine.begin() as connection:
        connection.execute(text("UPDATE ohlcv_candles SET close = close * 1.01 WHERE open_time = :t"),
                           {"t": day + timedelta(hours=23, minutes=59) if database == "pg_url"
                            else int((day + timedelta(hours=23, minutes=59)).timestamp() * 1000)})
    refresh_features(engine, series, day + timedelta(hours=23), day + timedelta(days=1), now=later)
    assert read_features(engine, [series], day, day + timedelta(days=1))["ret_1"].iloc[-1] > before + 0.009
