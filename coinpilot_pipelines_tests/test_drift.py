"""Feature drift at the default windows, on real data: the bundled Binance.US BTCUSDT recording
(2023-03-01..21) and the synthetic market, through the same feature code the pipeline runs."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from coinpilot_pipelines.emulator.recordings import read_bundled_csv
from coinpilot_pipelines.emulator.synthetic import day_bars
from coinpilot_pipelines.features.candle_features import compute_features
from coinpilot_pipelines.ml.drift import Drift, drift_of, feature_drift, population_stability_index
from coinpilot_pipelines.ml.monitoring import RetrainPolicy, recommend_retrain
from coinpilot_pipelines.settings import ModelSettings

DEFAULTS = ModelSettings()
POLICY = RetrainPolicy(drift_z=DEFAULTS.drift_z_threshold, drift_features=DEFAULTS.drift_features,
                       drift_psi=DEFAULTS.drift_psi_threshold)
LIVE = timedelta(days=DEFAULTS.calibration_live_window_days)
TRAINING = timedelta(days=DEFAULTS.train_window_days)


def valid_features(bars: pd.DataFrame) -> pd.DataFrame:
    features = compute_features(bars, 60_000)
    return features[features["is_valid"]]


@pytest.fixture(scope="module")
def btc() -> pd.DataFrame:
    raw = read_bundled_csv("binance_us_BTCUSDT_1m_20230301_20230321.csv.gz")
    return valid_features(pd.DataFrame({"open_time": pd.to_datetime(raw["open_time"], utc=True),
                                        "close": raw["close"].astype(float), "volume": raw["volume"].astype(float)}))


def windows(features: pd.DataFrame, live_start: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The default training window (30 days, as far as stored bars reach) and the 7-day live window after it."""
    times = features["open_time"]
    training = features[(times >= live_start - TRAINING) & (times < live_start)]
    return training, features[(times >= live_start) & (times < live_start + LIVE)]


def report(training: pd.DataFrame, live: pd.DataFrame, shift_sd: float = 0.0) -> tuple[list[Drift], object]:
    """Drift of the watched features, the live ones moved by ``shift_sd`` training standard deviations."""
    train = {f: training[f].to_numpy() for f in POLICY.drift_features}
    recent = {f: live[f].to_numpy() + shift_sd * train[f].std() for f in POLICY.drift_features}
    drift = feature_drift(train, recent)
    return drift, recommend_retrain(0.02, 0.02, len(live), [], drift, POLICY)


LIVE_WEEK = pd.Timestamp("2023-03-15", tz="UTC")


def test_drift_fires_on_shifted_real_features_and_not_on_the_following_unshifted_week(btc: pd.DataFrame) -> None:
    # A store that starts on 2023-03-08: the default 30-day window holds 03-08..14, the week of the
    # USDC de-peg; the live week 03-15..21 follows it.
    training, live = windows(btc[btc["open_time"] >= pd.Timestamp("2023-03-08", tz="UTC")], LIVE_WEEK)
    assert (len(training), len(live)) == (7 * 1440, 7 * 1440)

    drift, unshifted = report(training, live)
    assert not unshifted.retrain, unshifted.reason
    assert all(np.isfinite(d.z) and abs(d.z) < 1 for d in drift)
    # rolling_vol_20 moves by PSI 0.76 inside one volatility regime: a bare 0.25 threshold would fire.
    vol = next(d for d in drift if d.feature == "rolling_vol_20")
    assert vol.psi_reference > vol.psi > 0.7

    drift, shifted = report(training, live, shift_sd=3.0)
    assert shifted.retrain
    for d in drift:
        assert abs(d.z) > POLICY.drift_z and d.psi > max(POLICY.drift_psi, d.psi_reference), d
        assert f"{d.feature} z=+" in shifted.reason


def test_a_training_window_reaching_into_the_calm_before_the_de_peg_sees_the_volatility_regime_change(
        btc: pd.DataFrame) -> None:
    # The whole recording: 10 of the 14 training days lie before 2023-03-10, when 1m volatility
    # about doubled and stayed there through the live week. That is drift, and PSI says so; the
    # mean shift does not, because the training window's last blocks were as volatile.
    training, live = windows(btc, LIVE_WEEK)
    drift, recommendation = report(training, live)
    assert recommendation.retrain
    assert recommendation.reason.startswith("feature drift: rolling_vol_20 PSI 2.31 (training blocks against the rest")
    assert all(abs(d.z) < POLICY.drift_z for d in drift)
    assert [d.feature for d in drift if d.psi > max(POLICY.drift_psi, d.psi_reference)] == ["rolling_vol_20"]


def test_z_is_computed_at_the_default_windows() -> None:
    # 37 days of the synthetic market: exactly the 30-day training and 7-day live windows.
    first = date(2024, 1, 1)
    frames = []
    for offset in range(37):
        day = day_bars("BTCUSDT", first + timedelta(days=offset))
        frames.append(pd.DataFrame({"open_time": pd.to_datetime(day.open_ms, unit="ms", utc=True),
                                    "close": day.close, "volume": day.volume}))
    features = valid_features(pd.concat(frames, ignore_index=True))
    training, live = windows(features, pd.Timestamp(first + timedelta(days=30), tz="UTC"))
    drift, recommendation = report(training, live)
    assert len(training) == 30 * 1440 - 199  # the first day starts with the 200-bar warm-up
    for d in drift:
        assert (d.blocks, d.block_bars) == (5, len(training) // 5), d  # 5 blocks of 6 days; 7-day ones would give 4
        assert np.isfinite(d.z) and d.z_missing is None
    assert not recommendation.retrain, recommendation.reason


def test_when_a_statistic_cannot_be_computed_the_report_says_which_and_why() -> None:
    short = drift_of("rsi_14", np.linspace(40, 60, 7), np.tile(np.linspace(40, 60, 7), 10))
    assert np.isnan(short.z) and np.isnan(short.psi_reference) and np.isfinite(short.psi)
    assert short.report()["z"] is None
    assert short.report()["z_missing"] == ("7 training and 70 recent values of rsi_14 are too few to cut "
                                           "5 training blocks of 2 bars or more")
    constant = drift_of("vol_ratio", np.ones(1000), np.ones(200))
    assert constant.report()["z_missing"].startswith("the 5 training block means of vol_ratio are all equal")
    empty = drift_of("ret_1", np.ones(1000), np.full(10, np.nan))
    assert empty.report() == {"blocks": 0, "block_bars": 0, "z": None, "psi": None, "psi_reference": None,
                              "z_missing": "no finite recent values of ret_1", "psi_missing": "no finite recent values of ret_1"}
    summary = recommend_retrain(0.02, 0.02, 100, [], [short], POLICY)
    assert not summary.retrain
    assert summary.reason.endswith("mean shift not computed for rsi_14: 7 training and 70 recent values of rsi_14 "
                                   "are too few to cut 5 training blocks of 2 bars or more")


def test_psi_sees_a_move_away_from_a_constant_training_feature() -> None:
    constant = np.zeros(1000)
    assert population_stability_index(constant, np.zeros(100)) == 0.0
    moved = population_stability_index(constant, np.full(100, 0.5))
    half = population_stability_index(constant, np.r_[np.zeros(50), np.full(50, -0.5)])
    assert moved > 8 and 0 < half < moved  # all mass in a bin the training never filled, then half of it
    # A constant training feature has no spread to measure a mean shift by; PSI is the trigger.
    drift = drift_of("vol_ratio", constant, np.full(500, 0.5))
    recommendation = recommend_retrain(0.02, 0.02, 100, [], [drift], POLICY)
    assert recommendation.retrain and recommendation.reason == (
        f"feature drift: vol_ratio PSI {drift.psi:.2f} (training blocks against the rest: up to 0.00)")
