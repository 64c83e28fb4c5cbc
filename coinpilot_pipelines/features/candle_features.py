"""Per-bar features from that bar and earlier ones only (no look-ahead).

Definitions (``n`` bars = the bar itself and the ``n - 1`` before it):
- ``ret_k``: log return over k bars, ``ln(close_t / close_{t-k})``.
- ``rsi_14``: Wilder's RSI with TA-Lib's seeding: the first value at the 14th change of a run of
  bars, seeded with the simple mean of 14 gains and losses, then Wilder smoothing
  ``avg = (13 avg + x) / 14``; ``100 * gain / (gain + loss)``, and 0 when both are 0 (as TA-Lib).
- ``rolling_vol_20``: sample standard deviation of ``ret_1`` over 20 bars.
- ``ma_20``, ``ma_50``, ``ma_200``: simple moving average of close over n bars, divided by close.
- ``bb_upper``, ``bb_lower``: 20-bar mean of close +/- 2 population standard deviations (prices);
  ``bb_pct_b = (close - lower) / (upper - lower)``, 0.5 when the band has no width.
- ``vol_ratio``: volume over its 20-bar mean; 0 when the 20 bars traded nothing.

Features are computed per run of consecutive bars: a hole restarts every window and the RSI
recursion. A bar is valid only when its longest window (200 bars) lies inside one run; the
others are stored flagged invalid with the reason, never computed across the hole.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from coinpilot_pipelines.market.candles import epoch_ms

FEATURE_SET_VERSION = "candle-features-v1"
FEATURE_COLUMNS = (
    "ret_1", "ret_5", "ret_10", "rsi_14", "rolling_vol_20", "ma_20", "ma_50", "ma_200",
    "bb_upper", "bb_lower", "bb_pct_b", "vol_ratio",
)
# Scale-free features a model can share across symbols (the Bollinger bands are prices).
MODEL_FEATURES = tuple(c for c in FEATURE_COLUMNS if c not in ("bb_upper", "bb_lower"))
LONGEST_WINDOW = 200
RSI_PERIOD = 14
# Bars read before a partition: the longest window, plus enough for the RSI recursion to forget
# where it was seeded ((13/14)^1000 is far below float precision).
LOOKBACK_BARS = 1000


def run_ids(open_ms: np.ndarray, interval_ms: int) -> np.ndarray:
    """A run number per bar: it changes wherever the previous bar is not exactly one interval back."""
    breaks = np.ones(len(open_ms), dtype=bool)
    breaks[1:] = np.diff(open_ms) != interval_ms
    return np.cumsum(breaks)


def wilder_rsi(close: np.ndarray, period: int = RSI_PERIOD) -> np.ndarray:
    """RSI of one run of consecutive closes, TA-Lib style (NaN for the first ``period`` bars)."""
    rsi = np.full(len(close), np.nan)
    if len(close) <= period:
        return rsi
    change = np.diff(close)
    gain, loss = np.clip(change, 0, None), np.clip(-change, 0, None)
    seeded_gain = np.concatenate(([gain[:period].mean()], gain[period:]))
    seeded_loss = np.concatenate(([loss[:period].mean()], loss[period:]))
    alpha = 1.0 / period
    avg_gain = pd.Series(seeded_gain).ewm(alpha=alpha, adjust=False).mean().to_numpy()
    avg_loss = pd.Series(seeded_loss).ewm(alpha=alpha, adjust=False).mean().to_numpy()
    total = avg_gain + avg_loss
    with np.errstate(invalid="ignore", divide="ignore"):
        rsi[period:] = np.where(total > 0, 100.0 * avg_gain / total, 0.0)
    return rsi


def _window_mean_std(values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std of each n-bar window, two-pass per window.

    Running-sum variance loses digits when the band is narrow next to the price (a 20 USDT band on
    a 20,000 USDT price); two passes over each window keep %b exact to about 1e-12.
    """
    mean, std = np.full(len(values), np.nan), np.full(len(values), np.nan)
    if len(values) >= n:
        windows = sliding_window_view(values, n)
        mean[n - 1:] = windows.mean(axis=1)
        std[n - 1:] = windows.std(axis=1)
    return mean, std


def compute_features(bars: pd.DataFrame, interval_ms: int) -> pd.DataFrame:
    """Features for every bar of ``bars`` (columns ``open_time``, ``close``, ``volume``; ascending).

    Returns ``open_time``, ``close``, the `FEATURE_COLUMNS`, ``is_valid`` and ``invalid_reason``.
    """
    open_ms = epoch_ms(bars["open_time"])
    close = bars["close"].to_numpy(dtype=np.float64)
    volume = bars["volume"].to_numpy(dtype=np.float64)
    runs = run_ids(open_ms, interval_ms)
    run_starts = np.flatnonzero(np.r_[True, runs[1:] != runs[:-1]]) if len(runs) else np.zeros(0, np.int64)
    position = np.arange(len(runs)) - np.repeat(run_starts, np.diff(np.r_[run_starts, len(runs)]))

    def within_run(values: np.ndarray, bars_needed: int) -> np.ndarray:
        # Windows are computed over the whole frame at C speed; a window reaching back past the
        # start of its run is then blanked, which is exactly what a per-run window would give.
        values = np.asarray(values, dtype=np.float64).copy()
        values[position < bars_needed - 1] = np.nan
        return values

    close_s, log_close = pd.Series(close), pd.Series(np.log(close))
    out = pd.DataFrame({"open_time": bars["open_time"].reset_index(drop=True), "close": close})
    for k in (1, 5, 10):
        out[f"ret_{k}"] = within_run(log_close.diff(k), k + 1)
    out["rsi_14"] = np.concatenate([wilder_rsi(close[a:b]) for a, b in zip(run_starts, np.r_[run_starts[1:], len(close)], strict=True)]) if len(close) else []
    out["rolling_vol_20"] = within_run(pd.Series(out["ret_1"]).rolling(20).std(), 21)
    for n in (20, 50, 200):
        out[f"ma_{n}"] = within_run(close_s.rolling(n).mean() / close_s, n)
    mean_20, std_20 = (within_run(values, 20) for values in _window_mean_std(close, 20))
    out["bb_upper"] = mean_20 + 2 * std_20
    out["bb_lower"] = mean_20 - 2 * std_20
    width = out["bb_upper"] - out["bb_lower"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["bb_pct_b"] = np.where(width > 0, (close - out["bb_lower"]) / width, 0.5)
    out.loc[np.isnan(mean_20), "bb_pct_b"] = np.nan
    mean_volume = within_run(pd.Series(volume).rolling(20).mean(), 20)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["vol_ratio"] = np.where(mean_volume > 0, volume / mean_volume, 0.0)
    out.loc[np.isnan(mean_volume), "vol_ratio"] = np.nan

    valid = position >= LONGEST_WINDOW - 1
    out["is_valid"] = valid
    after_gap = runs > runs[0] if len(runs) else np.zeros(0, dtype=bool)  # runs after the first begin at a hole
    reason = np.full(len(valid), None, dtype=object)
    reason[~valid & after_gap] = "window crosses a gap"
    reason[~valid & ~after_gap] = "warm-up: fewer than 200 earlier bars"
    out["invalid_reason"] = pd.Series(reason, dtype=object)
    return out
