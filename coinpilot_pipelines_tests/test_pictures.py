"""The pictures drawn from the bundled real recording: valid PNGs of bounded size."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from coinpilot_pipelines.emulator.recordings import binance_recordings
from coinpilot_pipelines.features.candle_features import compute_features
from coinpilot_pipelines.pictures.features import bands_and_rsi
from coinpilot_pipelines.pictures.market import candles_day, completeness_strip
from coinpilot_pipelines.pictures.trading import equity_and_drawdown, trades_and_equity

from .picture_helpers import decoded

UTC = timezone.utc
DAY = datetime(2023, 3, 10, tzinfo=UTC)
OUTAGE = (DAY + timedelta(hours=10), DAY + timedelta(hours=10, minutes=45))


def recorded(symbol: str, *, start: datetime, end: datetime) -> pd.DataFrame:
    """The bundled recording's 1m bars in ``[start, end)`` as floats."""
    rows = pd.DataFrame([row[:6] for row in binance_recordings()[symbol].rows.values()],
                        columns=["open_ms", "open", "high", "low", "close", "volume"])
    rows["open_time"] = pd.to_datetime(rows["open_ms"], unit="ms", utc=True)
    rows = rows.astype({c: "float64" for c in ("open", "high", "low", "close", "volume")})
    return rows[(rows["open_time"] >= start) & (rows["open_time"] < end)].reset_index(drop=True)


def test_a_day_of_candles_with_its_missing_range_shaded() -> None:
    bars = recorded("BTCUSDT", start=DAY, end=DAY + timedelta(days=1))
    kept = bars[(bars["open_time"] < OUTAGE[0]) | (bars["open_time"] >= OUTAGE[1])]
    decoded(candles_day(kept, [OUTAGE], start=DAY, end=DAY + timedelta(days=1), bucket=timedelta(minutes=30),
                        title="BTCUSDT 2023-03-10"))


def test_the_sparse_recording_draws_as_candles_too() -> None:
    day = datetime(2019, 10, 12, tzinfo=UTC)
    bars = recorded("XRPETH", start=day, end=day + timedelta(days=1))
    assert 0 < len(bars) < 1440  # the recording's real gaps
    decoded(candles_day(bars, [], start=day, end=day + timedelta(days=1), bucket=timedelta(minutes=15),
                        title="XRPETH 2019-10-12"))


def test_completeness_per_symbol_and_day_as_a_heat_strip_with_outages() -> None:
    window = (datetime(2023, 3, 1, tzinfo=UTC), datetime(2023, 3, 22, tzinfo=UTC))
    btc = recorded("BTCUSDT", start=window[0], end=window[1])
    xrp = recorded("XRPETH", start=datetime(2019, 10, 11, tzinfo=UTC), end=datetime(2019, 10, 14, tzinfo=UTC))
    days = pd.date_range(*window, freq="D", inclusive="left")
    btc_shares = btc.groupby(btc["open_time"].dt.floor("D")).size().reindex(days, fill_value=0) / 1440
    # The sparse recording's three days, laid on the window's first three: its real completeness.
    xrp_shares = xrp.groupby(xrp["open_time"].dt.floor("D")).size().to_numpy() / 1440
    completeness = pd.DataFrame({"BTCUSDT": btc_shares,
                                 "XRPUSDT": np.r_[xrp_shares, np.ones(len(days) - len(xrp_shares))]}, index=days)
    outages = pd.DataFrame({"symbol": ["XRPUSDT"], "day": [days[1]]})
    decoded(completeness_strip(completeness, outages, title="completeness per day"))


def test_close_bands_and_rsi_for_the_last_day() -> None:
    bars = recorded("BTCUSDT", start=DAY - timedelta(days=1), end=DAY + timedelta(days=1))
    features = compute_features(bars[["open_time", "close", "volume"]], 60_000)
    last_day = features[features["open_time"] >= DAY]
    assert last_day["rsi_14"].notna().all()
    decoded(bands_and_rsi(last_day, title="BTCUSDT 2023-03-10: close, Bollinger bands, RSI"))


def recorded_trades(bars: pd.DataFrame, every: int = 90, hold: int = 40) -> pd.DataFrame:
    """Paper trades at the recording's prices: one entry every ``every`` bars, held ``hold`` bars;
    the last one still open."""
    rows = []
    for i in range(0, len(bars) - hold, every):
        entry, leave = bars.iloc[i], bars.iloc[i + hold]
        rows.append({"symbol": "BTCUSDT", "entry_time": entry["open_time"], "entry_price": entry["open"],
                     "exit_time": leave["open_time"], "exit_price": leave["open"],
                     "pnl": 0.005 * (leave["open"] - entry["open"])})
    trades = pd.DataFrame(rows)
    trades.loc[trades.index[-1], ["exit_time", "exit_price", "pnl"]] = [pd.NaT, np.nan, np.nan]
    return trades


def test_price_with_entries_and_exits_and_the_equity_curve_with_drawdown() -> None:
    bars = recorded("BTCUSDT", start=DAY, end=DAY + timedelta(days=1))
    trades = recorded_trades(bars)
    curve = equity_and_drawdown(trades)
    assert len(curve) == len(trades) - 1 and (curve["drawdown"] <= 0).all()
    assert curve["equity"].iloc[-1] == pytest.approx(trades["pnl"].sum())
    decoded(trades_and_equity({"BTCUSDT": bars[["open_time", "close"]]}, trades, title="paper trades"))

