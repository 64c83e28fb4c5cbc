"""Calibration metrics against scikit-learn; labels; the purged and embargoed split."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, log_loss

from coinpilot_pipelines.ml.calibration import (
    brier_score,
    expected_calibration_error,
    maximum_calibration_error,
    reliability_table,
)
from coinpilot_pipelines.ml.drift import Drift
from coinpilot_pipelines.ml.labels import LabelSpec, direction_labels
from coinpilot_pipelines.ml.monitoring import RetrainPolicy, recommend_retrain
from coinpilot_pipelines.features.candle_features import MODEL_FEATURES
from coinpilot_pipelines.ml.split import SplitWindows, last_block, purged_split
from coinpilot_pipelines.ml.training import Dataset, TrainingSpec, early_stopping_split, fit


def reference_from_sklearn(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = 10) -> tuple[float, float]:
    """ECE and MCE from calibration_curve; bin sizes counted with its own bin rule."""
    prob_true, prob_pred = calibration_curve(y_true, y_prob, n_bins=n_bins, strategy="uniform")
    edges = np.linspace(0, 1, n_bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], y_prob), minlength=n_bins)
    counts = counts[counts > 0]
    gaps = np.abs(prob_true - prob_pred)
    return float(np.sum(counts * gaps) / counts.sum()), float(gaps.max())


CASES = {
    "random": (np.random.default_rng(1).integers(0, 2, 500), np.random.default_rng(2).uniform(0, 1, 500)),
    "skewed and miscalibrated": (np.random.default_rng(3).binomial(1, 0.8, 400),
                                 np.random.default_rng(4).beta(2, 5, 400)),
    "all one class": (np.ones(50, dtype=int), np.random.default_rng(5).uniform(0.3, 0.9, 50)),
    "empty bins": (np.array([0, 1, 1, 0, 1, 1]), np.array([0.05, 0.07, 0.93, 0.96, 0.99, 0.91])),
    "on the bin edges": (np.array([0, 1, 1, 0, 1, 0, 1, 1]), np.array([0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0])),
}


@pytest.mark.parametrize("case", CASES)
def test_metrics_equal_scikit_learn(case: str) -> None:
    y_true, y_prob = CASES[case]
    ece, mce = reference_from_sklearn(y_true, y_prob)
    assert expected_calibration_error(y_true, y_prob) == pytest.approx(ece, abs=1e-12)
    assert maximum_calibration_error(y_true, y_prob) == pytest.approx(mce, abs=1e-12)
    assert brier_score(y_true, y_prob) == pytest.approx(brier_score_loss(y_true, y_prob), abs=1e-12)


def test_reliability_table_lists_every_bin_with_sklearn_values() -> None:
    y_true, y_prob = CASES["empty bins"]
    table = reliability_table(y_true, y_prob)
    assert list(table["count"]) == [2, 0, 0, 0, 0, 0, 0, 0, 0, 4]
    prob_true, prob_pred = calibration_curve(y_true, y_prob, n_bins=10)
    filled = table[table["count"] > 0]
    np.testing.assert_allclose(filled["fraction_positive"], prob_true)
    np.testing.assert_allclose(filled["mean_predicted"], prob_pred)
    assert table.loc[1:8, "mean_predicted"].isna().all()
    # 0.1 sits on an edge and counts in the lower bin, as in scikit-learn.
    assert reliability_table([1], [0.1])["count"].tolist()[:2] == [1, 0]


@pytest.mark.parametrize("bad,message", [
    (([], []), "empty"), (([0, 1], [0.5]), "2 values"), (([0, 2], [0.1, 0.2]), "binary"),
    (([0, 1], [0.1, 1.2]), "probabilities"),
    ((["0", "1"], [0.1, 0.2]), r"y_true must hold numbers, got values of type <U1"),
    (([0, 1], ["0.1", "0.2"]), r"y_prob must hold numbers"),
    (([[0, 1], [1, 0]], [[0.1, 0.9], [0.8, 0.2]]), r"y_true must be one-dimensional, got an array of shape \(2, 2\)"),
    (([0, 1], [[0.1, 0.9]]), r"y_prob must be one-dimensional"),
    (([0, 1, 1], [0.1, np.nan, np.nan]), r"y_prob holds 2 NaN value\(s\)"),
    (([0, np.nan], [0.1, 0.2]), r"y_true holds 1 NaN value\(s\)"),
])
def test_bad_inputs_are_refused_clearly(bad: tuple, message: str) -> None:
    for metric in (expected_calibration_error, maximum_calibration_error, brier_score, reliability_table):
        with pytest.raises(ValueError, match=message):
            metric(*bad)


@pytest.mark.parametrize("n_bins", [0, -3, 2.5, True, "10"])
def test_a_bin_count_that_is_not_a_positive_integer_is_refused(n_bins: object) -> None:
    for metric in (expected_calibration_error, maximum_calibration_error, reliability_table):
        with pytest.raises(ValueError, match=f"n_bins must be a positive integer, got {n_bins!r}"):
            metric([0, 1], [0.2, 0.7], n_bins=n_bins)
    assert len(reliability_table([0, 1], [0.2, 0.7], n_bins=np.int64(1))) == 1


def bars_of(closes: list[float], missing: tuple[int, ...] = ()) -> pd.DataFrame:
    times = pd.date_range("2024-01-01", periods=len(closes), freq="1min", tz="UTC")
    frame = pd.DataFrame({"open_time": times, "close": closes})
    return frame.drop(index=list(missing)).reset_index(drop=True)


def test_direction_labels_use_the_bar_h_ahead_and_the_dead_band() -> None:
    closes = [100.0, 100.0, 101.0, 100.0, 99.0, 100.02, 100.0]
    labels = direction_labels(bars_of(closes), 60_000, LabelSpec(horizon_bars=2, dead_band=0.001))
    assert labels["open_time"].dt.minute.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(labels["forward_return"], np.log([101 / 100, 100 / 100, 99 / 101, 100.02 / 100, 100 / 99]))
    assert labels["label"].tolist() == [1, pd.NA, 0, pd.NA, 1]
    assert labels["outcome_at"].iloc[0] == pd.Timestamp("2024-01-01 00:03", tz="UTC")


def test_labels_never_span_a_hole() -> None:
    labels = direction_labels(bars_of([100.0 + i for i in range(10)], missing=(5,)), 60_000, LabelSpec(horizon_bars=2))
    assert labels["open_time"].dt.minute.tolist() == [0, 1, 2, 6, 7]


def test_purged_split_never_lets_a_training_label_reach_the_test_window() -> None:
    rng = np.random.default_rng(11)
    times = pd.Series(pd.date_range("2024-01-01", periods=5000, freq="1min", tz="UTC"))
    for _ in range(50):
        horizon, embargo = timedelta(minutes=int(rng.integers(1, 60))), timedelta(minutes=int(rng.integers(0, 60)))
        start = times.iloc[int(rng.integers(100, 4000))]
        windows = SplitWindows(start.to_pydatetime(), (start + timedelta(minutes=int(rng.integers(10, 900)))).to_pydatetime())
        train, test = purged_split(times, windows, horizon=horizon, embargo=embargo)
        assert not (train & test).any() and test.any()
        label_ends = times[train] + horizon
        before = times[train] < windows.test_start
        assert (label_ends[before] < windows.test_start).all()  # purged: no label window reaches the test
        assert (times[train][~before] >= windows.test_end + embargo).all()  # embargoed after it
        dropped = ~train & ~test
        assert dropped.sum() >= horizon // timedelta(minutes=1)  # the purge really removed bars


def test_last_block_holds_out_the_latest_share() -> None:
    times = pd.Series(pd.date_range("2024-01-01", periods=1000, freq="1min", tz="UTC"))
    windows = last_block(times, 0.2)
    assert windows.test_start == pd.Timestamp("2024-01-01 13:19:12", tz="UTC")
    assert ((times >= windows.test_start) & (times < windows.test_end)).sum() == 200


def test_retraining_needs_the_ece_gap_in_a_streak_of_reports_or_a_drifted_feature() -> None:
    policy = RetrainPolicy(ece_gap_abs=0.05, ece_gap_rel=0.5, streak=3, drift_z=3.0, min_live_outcomes=50)
    # production 0.02, live 0.20: the gap (0.18) passes both the absolute and the relative bar
    broken_streak = recommend_retrain(0.02, 0.20, 100, [True, False, True], [], policy)
    assert (broken_streak.retrain, broken_streak.gap_exceeded) == (False, True)
    streak = recommend_retrain(0.02, 0.20, 100, [True, True, False], [], policy)
    assert streak.retrain and "in 3 consecutive reports" in streak.reason
    assert not recommend_retrain(0.02, 0.20, 49, [True, True], [], policy).retrain  # too few outcomes
    assert not recommend_retrain(0.20, 0.28, 100, [True, True], [], policy).gap_exceeded  # 0.08 < 50 % of 0.20
    # rsi_14's PSI is above the threshold but not above its training window's own variation.
    drifted = recommend_retrain(0.02, 0.02, 100, [], [Drift("rsi_14", -3.5, 0.4, 0.5), Drift("ret_1", 2.9, 0.1, 0.05)],
                                policy)
    assert drifted.retrain and drifted.reason == "feature drift: rsi_14 z=-3.5"


def test_gradient_boosting_stops_early_on_the_latest_training_bars_purged_of_their_overlap() -> None:
    rng = np.random.default_rng(5)
    times = pd.Series(pd.date_range("2024-01-01", periods=6000, freq="1min", tz="UTC"))
    spec = TrainingSpec(model="gradient_boosting")
    fitting, validation = early_stopping_split(times, spec, timedelta(minutes=1))
    assert validation.sum() == 600 and times[validation].min() == times.iloc[5400]  # the latest 10 %, in time
    assert not (fitting & validation).any() and fitting.sum() == 5400 - 15  # labels reaching it purged
    assert (times[fitting] + timedelta(minutes=15) < times[validation].min()).all()

    features = pd.DataFrame(rng.normal(size=(6000, len(MODEL_FEATURES))), columns=list(MODEL_FEATURES))
    up = (features["ret_1"] + rng.normal(0, 3, 6000) > 0).to_numpy(dtype=int)  # little signal: it overfits soon
    model = fit(Dataset(features, up, np.ones(6000, dtype=bool), times, pd.Series(["BTCUSDT"] * 6000)), spec,
                timedelta(minutes=1))
    inputs, boosting = model[0], model[-1]
    assert boosting.n_iter_ < 200
    # It validated on exactly those rows: its last validation loss is their log loss.
    held = inputs.transform(features[validation])
    assert -boosting.validation_score_[-1] == pytest.approx(log_loss(up[validation], boosting.predict_proba(held)[:, 1]))
