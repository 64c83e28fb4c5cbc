"""Candles as they travel from an exchange payload to the database.

A `CandleBatch` keeps the exchange's decimal values as their exact text (so nothing is rounded
on the way to a ``numeric`` column) next to the raw payload rows, so that any row refused later
can be quarantined with the bytes the exchange actually sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from coinpilot_pipelines.market.intervals import Interval

DECIMAL_COLUMNS = ("open", "high", "low", "close", "volume", "quote_volume")
CANDLE_COLUMNS = ("open_time", "close_time", *DECIMAL_COLUMNS, "trade_count")
# Position of each row in `CandleBatch.raw_rows`, so a refused row can be quarantined verbatim.
RAW_INDEX = "raw_index"

# Plain decimal text as exchanges send it; exponents, NaN, Infinity and blanks are refused.
DECIMAL_TEXT_PATTERN = r"^-?\d+(\.\d+)?$"


@dataclass(frozen=True)
class SeriesKey:
    """One candle series: the key prefix of `ohlcv_candles`."""

    exchange: str
    symbol: str
    interval: Interval


@dataclass(frozen=True)
class CandleReject:
    """A payload row that will not be stored, with the reason, kept for `candle_rejects`."""

    raw_payload: object
    reason: str
    open_time: datetime | None = None


@dataclass
class CandleBatch:
    """Bars parsed from exchange payloads, plus what could not be parsed.

    ``frame`` holds `CANDLE_COLUMNS` and `RAW_INDEX`: times as UTC datetimes, decimals as the
    exchange's exact text, ``trade_count`` as nullable integers.
    """

    frame: pd.DataFrame
    raw_rows: Sequence[object]
    rejects: list[CandleReject] = field(default_factory=list)
    open_bars: int = 0  # bars not yet closed at fetch time: fetched again later, never stored
    extra_fields: int = 0  # rows that carried fields after the documented ones (kept, extras dropped)

    def __len__(self) -> int:
        return len(self.frame)


def build_candle_frame(
    *,
    open_time_ms: np.ndarray,
    close_time_ms: np.ndarray,
    decimals: dict[str, Sequence[str | None] | pd.Series | pa.ChunkedArray],
    trade_count: Sequence[int | None] | np.ndarray,
    raw_index: np.ndarray,
) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "open_time": pd.to_datetime(np.asarray(open_time_ms, dtype=np.int64), unit="ms", utc=True),
            "close_time": pd.to_datetime(np.asarray(close_time_ms, dtype=np.int64), unit="ms", utc=True),
        }
    )
    for name in DECIMAL_COLUMNS:
        frame[name] = pd.array(decimals[name], dtype="str")
    frame["trade_count"] = pd.array(trade_count, dtype="Int64")
    frame[RAW_INDEX] = np.asarray(raw_index, dtype=np.int64)
    return frame


def invalid_decimal_mask(values: pd.Series) -> pd.Series:
    """True where a value is not plain decimal text (exponents, NaN, Infinity, blanks refused)."""
    text = values.astype("str")
    return ~text.str.match(DECIMAL_TEXT_PATTERN).fillna(False).astype(bool) | values.isna()


def epoch_ms(times: pd.Series) -> np.ndarray:
    """Epoch milliseconds of a UTC datetime column."""
    return times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ms]").astype(np.int64)


def closed_in_window(keep: np.ndarray, open_ms: np.ndarray, close_ms: np.ndarray, *, now_ms: int | None,
                     window: tuple[int, int] | None, interval_ms: int | None = None) -> tuple[np.ndarray, int]:
    """Narrow ``keep`` to closed bars inside ``window``; also return how many were still open.

    A bar whose close time is after ``now_ms`` is still forming: it is counted, not stored, and
    fetched again later. With ``interval_ms``, only a close time inside the bar makes it forming;
    a close time beyond the bar's end is a fault of the payload, left in for validation to
    quarantine with its reason instead of vanishing as "open". Bars outside the requested window
    belong to another fetch.
    """
    open_bars = 0
    if now_ms is not None:
        not_closed = keep & (close_ms > now_ms)
        if interval_ms is not None:
            not_closed &= close_ms <= open_ms + interval_ms - 1
        open_bars = int(not_closed.sum())
        keep = keep & ~not_closed
    if window is not None:
        keep = keep & (open_ms >= window[0]) & (open_ms < window[1])
    return keep, open_bars


@dataclass
class NormalizedCandles:
    frame: pd.DataFrame
    rejects: list[CandleReject]
    duplicates_collapsed: int


def normalize(batch: CandleBatch) -> NormalizedCandles:
    """Sort by open time, collapse exact duplicates, quarantine conflicting ones.

    Exchanges (and proxies) sometimes repeat or reorder rows across pages. An exact repeat is the
    same bar and is kept once; two different versions of the same open time cannot both be right,
    so every version is quarantined and the gap is left for repair to fetch again.
    """
    frame = batch.frame
    if not frame["open_time"].is_monotonic_increasing:
        frame = frame.sort_values("open_time", kind="stable")
    if not frame["open_time"].duplicated().any():  # the common case: skip the costly row compare
        return NormalizedCandles(frame=frame.reset_index(drop=True), rejects=[], duplicates_collapsed=0)
    exact_repeat = frame.duplicated(subset=list(CANDLE_COLUMNS), keep="first")
    duplicates_collapsed = int(exact_repeat.sum())
    frame = frame[~exact_repeat]

    conflicting = frame.duplicated(subset=["open_time"], keep=False)
    rejects: list[CandleReject] = []
    if conflicting.any():
        clashes = frame[conflicting]
        versions = clashes.groupby("open_time")["open_time"].transform("size")
        for (_, row), count in zip(clashes.iterrows(), versions, strict=True):
            rejects.append(
                CandleReject(
                    raw_payload=batch.raw_rows[int(row[RAW_INDEX])],
                    reason=f"conflicting duplicate: {count} different bars share open_time "
                    f"{row['open_time'].isoformat()} in one fetch",
                    open_time=row["open_time"].to_pydatetime(),
                )
            )
        frame = frame[~conflicting]
    return NormalizedCandles(frame=frame.reset_index(drop=True), rejects=rejects,
                             duplicates_collapsed=duplicates_collapsed)
