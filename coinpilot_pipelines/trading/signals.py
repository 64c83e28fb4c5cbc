"""Trade signals, computed from stored data only, so the same data always gives the same signals.

- ``model``: enter long when the champion's probability reaches the threshold (it was below it on
  the bar before); exit when it falls below the exit threshold.
- ``mean_reversion`` (the older rule strategy): enter when RSI(14) < 30, close > MA200, close at
  or below the lower Bollinger band and volume ratio > 1.5 -- all four together.
Both exit on take-profit, stop-loss (on the close) or after the maximum holding time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import pandas as pd

MODEL = "model"
MEAN_REVERSION = "mean_reversion"


@dataclass(frozen=True)
class Signal:
    key: str
    symbol: str
    strategy: str
    action: str
    bar_open_time: datetime
    reason: str
    close: Decimal
    probability: float | None = None
    paper_trade_id: int | None = None
    context: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ExitRules:
    exit_probability: float
    take_profit: Decimal
    stop_loss: Decimal
    max_holding: timedelta


def _key(strategy: str, symbol: str, action: str, moment: pd.Timestamp) -> str:
    return f"{strategy}:{symbol}:{action}:{moment.strftime('%Y%m%dT%H%MZ')}"


def latest_model_entry(symbol: str, scored: pd.DataFrame, threshold: float) -> Signal | None:
    """``scored``: ``open_time``, ``probability``, ``close`` ascending. The newest upward crossing."""
    if len(scored) < 2:
        return None
    above = scored["probability"] >= threshold
    crossings = scored[above & ~above.shift(1, fill_value=True)]
    if crossings.empty:
        return None
    row = crossings.iloc[-1]
    return Signal(_key(MODEL, symbol, "enter", row["open_time"]), symbol, MODEL, "enter",
                  row["open_time"].to_pydatetime(), f"probability {row['probability']:.3f} reached {threshold}",
                  Decimal(str(row["close"])), probability=float(row["probability"]),
                  context={"probability": float(row["probability"]), "threshold": threshold})


MEAN_REVERSION_FEATURES = ("rsi_14", "ma_200", "bb_lower", "vol_ratio", "close")  # what its rule reads


def latest_mean_reversion_entry(symbol: str, features: pd.DataFrame) -> Signal | None:
    """``features``: valid feature rows ascending. ``ma_200`` is MA200 / close, so close > MA200 is < 1."""
    hits = features[(features["rsi_14"] < 30) & (features["ma_200"] < 1) & (features["close"] <= features["bb_lower"])
                    & (features["vol_ratio"] > 1.5)]
    if hits.empty:
        return None
    row = hits.iloc[-1]
    context = {name: float(row[name]) for name in MEAN_REVERSION_FEATURES}
    return Signal(_key(MEAN_REVERSION, symbol, "enter", row["open_time"]), symbol, MEAN_REVERSION, "enter",
                  row["open_time"].to_pydatetime(),
                  f"RSI {row['rsi_14']:.1f} < 30, close above MA200, at the lower band, volume x{row['vol_ratio']:.1f}",
                  Decimal(str(row["close"])), context=context)


def first_exit(trade_id: int, symbol: str, strategy: str, entry_time: datetime, entry_price: Decimal,
               bars: pd.DataFrame, rules: ExitRules) -> Signal | None:
    """``bars``: ``open_time``, ``close`` (and ``probability`` for model trades) from the entry bar on."""
    for row in bars.itertuples(index=False):
        close = Decimal(str(row.close))
        change = close / entry_price - 1
        reason = None
        if change >= rules.take_profit:
            reason = f"take_profit: {change:+.4%}"
        elif change <= -rules.stop_loss:
            reason = f"stop_loss: {change:+.4%}"
        elif row.open_time.to_pydatetime() - entry_time >= rules.max_holding:
            reason = f"time_exit: held {rules.max_holding}"
        elif strategy == MODEL and pd.notna(getattr(row, "probability", None)) and row.probability < rules.exit_probability:
            reason = f"low_probability: {row.probability:.3f} < {rules.exit_probability}"
        if reason:
            return Signal(f"{strategy}:{symbol}:exit:trade-{trade_id}", symbol, strategy, "exit",
                          row.open_time.to_pydatetime(), reason, close, paper_trade_id=trade_id,
                          context={"entry_price": str(entry_price), "close": str(close), "change": float(change)})
    return None
