"""Labels: the direction of the forward return over a horizon, with a dead band.

A label looks into the future by construction, so labels live in their own table and are joined
to features only as training targets and as realized outcomes, never as inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from coinpilot_pipelines.features.candle_features import run_ids
from coinpilot_pipelines.market.candles import epoch_ms


@dataclass(frozen=True)
class LabelSpec:
    horizon_bars: int = 15
    dead_band: float = 0.0005  # |log return| at or below this is no direction: no label

    def __post_init__(self) -> None:
        if self.horizon_bars < 1 or self.dead_band < 0:
            raise ValueError(f"a label needs a horizon of at least 1 bar and a dead band >= 0, got {self}")

    @property
    def version(self) -> str:
        return f"direction-h{self.horizon_bars}-db{self.dead_band:g}"


def direction_labels(bars: pd.DataFrame, interval_ms: int, spec: LabelSpec) -> pd.DataFrame:
    """For each bar t: ``forward_return = ln(close[t+H] / close[t])`` and ``label`` 1 (up), 0 (down)
    or missing (inside the dead band). Only bars whose next H bars are all stored get a row.

    ``bars``: ``open_time``, ``close`` ascending. Returns ``open_time``, ``forward_return``,
    ``label`` (nullable integer) and ``outcome_at`` (the close of bar t+H, when the label is known).
    """
    horizon = spec.horizon_bars
    runs = run_ids(epoch_ms(bars["open_time"]), interval_ms)
    close = bars["close"].to_numpy(dtype=np.float64)
    ahead = max(len(close) - horizon, 0)
    future = np.full(len(close), np.nan)
    future[:ahead] = close[horizon:]
    same_run = np.zeros(len(close), dtype=bool)
    same_run[:ahead] = runs[horizon:] == runs[:ahead]  # the next H bars exist, no hole between
    forward = np.log(future / close)
    keep = same_run & np.isfinite(forward)
    label = pd.array(np.where(forward > spec.dead_band, 1, 0), dtype="Int8")
    label[np.abs(forward) <= spec.dead_band] = pd.NA
    frame = pd.DataFrame({
        "open_time": bars["open_time"].reset_index(drop=True),
        "forward_return": forward,
        "label": label,
        "outcome_at": bars["open_time"].reset_index(drop=True) + pd.Timedelta(milliseconds=interval_ms * (horizon + 1)),
    })
    return frame[keep].reset_index(drop=True)
