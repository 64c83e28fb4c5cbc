"""Time-ordered train/test split, purged and embargoed.

A training sample at time t uses the outcome at t + H. Purging drops every training sample whose
label window ``[t, t + H]`` reaches the test window; the embargo drops training samples just after
the test window, whose features overlap the test labels' future.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SplitWindows:
    test_start: datetime
    test_end: datetime  # exclusive


def last_block(times: pd.Series, test_fraction: float) -> SplitWindows:
    """The most recent ``test_fraction`` of the time range as the test window."""
    first, last = times.min(), times.max()
    start = first + (last - first) * (1 - test_fraction)
    return SplitWindows(start.to_pydatetime(), (last + pd.Timedelta(microseconds=1)).to_pydatetime())


def purged_split(times: pd.Series, windows: SplitWindows, *, horizon: timedelta,
                 embargo: timedelta) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, test) over ``times``."""
    test = ((times >= windows.test_start) & (times < windows.test_end)).to_numpy()
    before = (times + horizon < windows.test_start).to_numpy()
    after = (times >= windows.test_end + embargo).to_numpy()
    return before | after, test
