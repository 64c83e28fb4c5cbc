"""The promotion gate: block-bootstrap intervals that hold their confidence on overlapping labels,
a climatology baseline every champion must beat, and reasons that say what the interval did."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import integrate
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from coinpilot_pipelines.emulator.recordings import read_bundled_csv
from coinpilot_pipelines.emulator.synthetic import day_bars
from coinpilot_pipelines.features.candle_features import compute_features
from coinpilot_pipelines.market.candles import epoch_ms
from coinpilot_pipelines.ml.baselines import brier_skill, climatology, previous_return_sign
from coinpilot_pipelines.ml.bootstrap import BlockBootstrap
from coinpilot_pipelines.ml.labels import LabelSpec, direction_labels
from coinpilot_pipelines.ml.promotion import HeldOut, PromotionPolicy, decide
from coinpilot_pipelines.ml.training import Dataset, TrainingSpec, build_dataset, fit, predict_up, split
from coinpilot_pipelines.settings import ConfigError, ModelSettings

MINUTE = timedelta(minutes=1)
HORIZON = LabelSpec().horizon_bars


@pytest.fixture(scope="module")
def held_out() -> tuple[Dataset, Dataset]:
    """The demo's data: 21 days of the BTCUSDT recording and of synthetic XRPUSDT, split as in training."""
    raw = read_bundled_csv("binance_us_BTCUSDT_1m_20230301_20230321.csv.gz")
    frames = {"BTCUSDT": pd.DataFrame({"open_time": pd.to_datetime(raw["open_time"], utc=True),
                                       "close": raw["close"].astype(float), "volume": raw["volume"].astype(float)})}
    days = [day_bars("XRPUSDT", date(2023, 3, 1) + timedelta(days=d)) for d in range(21)]
    frames["XRPUSDT"] = pd.DataFrame({"open_time": pd.to_datetime(np.concatenate([d.open_ms for d in days]), unit="ms",
                                                                  utc=True),
                                      "close": np.concatenate([d.close for d in days]),
                                      "volume": np.concatenate([d.volume for d in days])})
    features = pd.concat([compute_features(bars, 60_000).assign(symbol=s) for s, bars in frames.items()])
    labels = pd.concat([direction_labels(bars, 60_000, LabelSpec()).assign(symbol=s) for s, bars in frames.items()])
    train, test, _ = split(build_dataset(features, labels), TrainingSpec(), MINUTE)
    return train, test


def test_on_overlapping_labels_the_block_interval_is_wider_than_the_independent_one(held_out) -> None:  # noqa: ANN001
    train, test = held_out
    prob = predict_up(fit(train, TrainingSpec(), MINUTE), test.features)
    reference = climatology(train.up, len(test))
    times, rows = epoch_ms(test.times), np.arange(len(test))
    assert test.symbols.nunique() == 2 and len(np.unique(times)) < len(test)  # symbols share timestamps
    statistics = {"brier skill": lambda r: brier_skill(test.up, prob, reference, r),
                  "auc": lambda r: roc_auc_score(test.up[r], prob[r])}
    for name, statistic in statistics.items():
        block = BlockBootstrap(240).interval(times, statistic)
        independent = BlockBootstrap(1).interval(rows, statistic)  # every row on its own: the old bootstrap
        ratio = (block[1] - block[0]) / (independent[1] - independent[0])
        assert 2 < ratio < 4, (name, block, independent)


def simulate(rng: np.random.Generator, timestamps: int, rho: float, scale: float) -> tuple[np.ndarray, ...]:
    """Two symbols sharing a market shock, labels over the next 15 returns (overlapping), and a
    forecast ``p = Phi(scale * x)`` whose signal ``x`` has correlation ``rho`` with the label's
    return and slow noise shared by the symbols, as rolling-window features have."""
    symbols, noise_window = 2, 60
    market = rng.normal(size=timestamps + HORIZON)
    returns = (market + rng.normal(size=(symbols, timestamps + HORIZON))) / np.sqrt(2)
    total = np.cumsum(returns, axis=1)
    forward = (total[:, HORIZON:] - total[:, :timestamps]) / np.sqrt(HORIZON)  # N(0, 1) at every bar
    shocks = np.cumsum((rng.normal(size=timestamps + noise_window)
                        + rng.normal(size=(symbols, timestamps + noise_window))) / np.sqrt(2), axis=1)
    slow = (shocks[:, noise_window:] - shocks[:, :timestamps]) / np.sqrt(noise_window)  # N(0, 1), autocorrelated
    signal = rho * forward + np.sqrt(1 - rho**2) * slow
    times = np.tile(np.arange(timestamps), symbols)
    return times, (forward > 0).astype(int).ravel(), norm.cdf(scale * signal).ravel()


def true_brier_skill(rho: float, scale: float) -> float:
    """The population Brier skill of that forecast against the constant 0.5 (the true up-rate):
    with ``x ~ N(0, 1)`` and ``P(up | x) = Phi(rho x / sqrt(1 - rho^2))``."""
    squared = integrate.quad(lambda x: norm.cdf(scale * x) ** 2 * norm.pdf(x), -12, 12)[0]
    joint = integrate.quad(lambda x: norm.cdf(scale * x) * norm.cdf(rho * x / np.sqrt(1 - rho**2)) * norm.pdf(x),
                           -12, 12)[0]
    return 1 - (squared - 2 * joint + 0.5) / 0.25


def test_the_block_interval_covers_a_known_gain_about_95_percent_of_the_time() -> None:
    rho, scale = 0.2, 0.3
    truth = true_brier_skill(rho, scale)
    assert 0.02 < truth < 0.021
    rng = np.random.default_rng(2024)
    covered = 0
    for replicate in range(200):
        times, up, prob = simulate(rng, 4800, rho, scale)  # 20 blocks of 240 bars, as in a 5-day held-out window
        reference = np.full(len(up), 0.5)
        low, high = BlockBootstrap(240, seed=replicate).interval(times, lambda r: brier_skill(up, prob, reference, r))
        covered += low <= truth <= high
    assert 0.90 <= covered / 200 <= 0.99, covered


def held_out_of(size: int, seed: int) -> tuple[HeldOut, np.random.Generator]:
    rng = np.random.default_rng(seed)
    return HeldOut(rng.integers(0, 2, size), np.repeat(np.arange(size // 2), 2)), rng


def test_a_model_no_better_than_climatology_is_never_champion() -> None:
    held, rng = held_out_of(6000, 1)
    base = np.full(6000, held.up.mean())
    policy = PromotionPolicy()
    for forecast in (base, np.clip(base + rng.normal(0, 0.02, 6000), 0, 1)):  # the constant itself; it plus noise
        decision = decide(held, forecast, None, base, policy)
        assert not decision.promote and decision.brier_skill_ci[0] <= 0
        assert decision.reason.startswith("no champion yet, and this model does not earn it: Brier skill vs climatology")
    # Ranking better than a weak champion is not enough either: an overconfident forecast that
    # knows a little has a better AUC and a worse Brier score than climatology.
    knows_a_little = np.where((held.up == 1) == (rng.random(6000) < 0.55), 0.9, 0.1)  # right 55 % of the time
    champion = np.clip(base + rng.normal(0, 0.01, 6000), 0, 1)
    decision = decide(held, knows_a_little, champion, base, PromotionPolicy(max_brier_degrade=1, max_ece_degrade=1))
    assert decision.challenger.auc > decision.champion.auc + 0.04 and decision.auc_gain_ci[0] > 0
    assert not decision.promote and decision.reason.startswith("kept the champion: Brier skill vs climatology -")


def test_a_model_that_beats_climatology_is_promoted_and_the_reason_gives_the_interval() -> None:
    held, rng = held_out_of(6000, 2)
    base = np.full(6000, 0.5)
    skilled = np.clip(np.where(held.up == 1, 0.56, 0.44) + rng.normal(0, 0.05, 6000), 0, 1)
    decision = decide(held, skilled, None, base, PromotionPolicy())
    low, high = decision.brier_skill_ci
    assert decision.promote and 0 < low < decision.brier_skill < high and decision.block_bars == 240
    assert decision.reason == (f"promoted as the first champion: Brier skill vs climatology {decision.brier_skill:+.2%} "
                               f"(95% CI [{low:+.2%}, {high:+.2%}])")


def test_an_interval_wholly_below_zero_is_called_that() -> None:
    held, _ = held_out_of(6000, 3)
    base = np.full(6000, 0.5)
    wrong = np.where(held.up == 1, 0.45, 0.55)  # confidently the other way
    decision = decide(held, wrong, None, base, PromotionPolicy())
    assert decision.brier_skill_ci[1] < 0
    assert decision.reason.endswith(f"[{decision.brier_skill_ci[0]:+.2%}, {decision.brier_skill_ci[1]:+.2%}] "
                                    "lies wholly below zero")
    # Against a champion that ranks well, a challenger leaning slightly the wrong way loses AUC.
    against_champion = decide(held, base + (wrong - base) / 5, np.where(held.up == 1, 0.6, 0.4), base,
                              PromotionPolicy())
    assert against_champion.auc_gain_ci[1] < 0
    assert ("the AUC gain does not hold under the block bootstrap: 95% CI "
            f"[{against_champion.auc_gain_ci[0]:+.4f}, {against_champion.auc_gain_ci[1]:+.4f}] lies wholly below zero"
            in against_champion.reason)
    noisy = decide(held, np.clip(base + np.random.default_rng(4).normal(0, 0.001, 6000), 0, 1), None, base,
                   PromotionPolicy())
    assert noisy.brier_skill_ci[0] < 0 < noisy.brier_skill_ci[1] and noisy.reason.endswith("includes zero")


def test_a_held_out_window_too_short_for_the_blocks_promotes_nothing() -> None:
    held, _ = held_out_of(2000, 5)  # 1000 timestamps: 4 blocks of 240
    skilled = np.where(held.up == 1, 0.7, 0.3)
    decision = decide(held, skilled, None, np.full(2000, 0.5), PromotionPolicy())
    assert not decision.promote and decision.brier_skill > 0.3 and decision.brier_skill_ci is None
    assert decision.reason.endswith("the held-out window has 1000 timestamps, 4 block(s) of 240 bars, fewer than the 5 "
                                    "the block bootstrap needs: lengthen the training window (TRAIN_WINDOW_DAYS) or "
                                    "shorten the blocks (PROMOTION_BOOTSTRAP_BLOCK_BARS)")


def test_the_block_resamples_keep_every_symbol_of_a_timestamp_and_runs_of_timestamps() -> None:
    times = np.repeat(np.arange(1200), 2)[::-1].copy()  # two symbols per timestamp, rows in any order
    for rows in BlockBootstrap(240, samples=20).resamples(times):
        drawn = times[rows]
        assert len(rows) == len(times)
        assert (drawn[::2] == drawn[1::2]).all() and (rows[::2] != rows[1::2]).all()  # both symbols, together
        for block in drawn[::2].reshape(5, 240):  # 5 blocks of 240 consecutive timestamps, wrapping at the end
            assert (np.diff(block) % 1200 == 1).all()


def test_the_previous_return_sign_baseline_uses_training_rates_per_sign() -> None:
    train_ret = np.array([0.1, 0.2, -0.1, -0.3, 0.0, 0.0, 0.0, 0.5])
    train_up = np.array([1, 1, 0, 1, 0, 0, 1, 0])
    prob = previous_return_sign(train_ret, train_up, np.array([0.3, -0.2, 0.0]))
    np.testing.assert_allclose(prob, [2 / 3, 1 / 2, 1 / 3])
    # A sign the training window never saw gets the overall rate.
    np.testing.assert_allclose(previous_return_sign(np.array([0.1, 0.2]), np.array([1, 0]), np.array([-0.1])), [0.5])


@pytest.mark.parametrize("env,message", [
    ({"PROMOTION_BOOTSTRAP_BLOCK_BARS": "10"}, "PROMOTION_BOOTSTRAP_BLOCK_BARS: 10 is shorter than LABEL_HORIZON_BARS (15)"),
    ({"PROMOTION_BOOTSTRAP_BLOCK_BARS": "240", "LABEL_HORIZON_BARS": "300"},
     "PROMOTION_BOOTSTRAP_BLOCK_BARS: 240 is shorter than LABEL_HORIZON_BARS (300)"),
    ({"PROMOTION_BOOTSTRAP_BLOCK_BARS": "0"}, "PROMOTION_BOOTSTRAP_BLOCK_BARS: '0' must be >= 1"),
    ({"DRIFT_PSI_THRESHOLD": "0"}, "DRIFT_PSI_THRESHOLD: '0' must be > 0 and <= 10"),
    ({"DRIFT_PSI_THRESHOLD": "high"}, "DRIFT_PSI_THRESHOLD: 'high' is not a number"),
    ({"COINPILOT_MLFLOW_UI_URL": "mlflow:5000"}, "COINPILOT_MLFLOW_UI_URL: 'mlflow:5000' is not an http(s) URL"),
])
def test_the_gate_and_drift_settings_refuse_bad_values_by_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        ModelSettings.from_env(env)
    assert str(error.value).startswith(message)


def test_the_gate_and_drift_settings_defaults() -> None:
    settings = ModelSettings.from_env({"COINPILOT_MLFLOW_UI_URL": "https://mlflow.example/"})
    assert (settings.bootstrap_block_bars, settings.drift_psi_threshold) == (240, 0.25)
    assert settings.mlflow_ui_url == "https://mlflow.example"
    assert ModelSettings.from_env({}).mlflow_ui_url == "http://127.0.0.1:5000"
