"""The candle contract as a pandera model, and the split of a batch into stored and quarantined rows.

The model runs on a numeric view of the batch (floats for the decimal text, epoch milliseconds
for the times). Float conversion is monotonic, so every comparison below gives the same answer
as it would on the exact decimals.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from coinpilot_pipelines.market.candles import DECIMAL_COLUMNS, RAW_INDEX, CandleReject, epoch_ms
from coinpilot_pipelines.market.intervals import Interval


class CandleModel(pa.DataFrameModel):
    """One row per closed bar of one series, ascending and unique by open time."""

    open_time_ms: Series[np.int64] = pa.Field(unique=True)
    close_time_ms: Series[np.int64]
    interval_ms: Series[np.int64] = pa.Field(gt=0)
    open: Series[float] = pa.Field(gt=0)
    high: Series[float] = pa.Field(gt=0)
    low: Series[float] = pa.Field(gt=0)
    close: Series[float] = pa.Field(gt=0)
    volume: Series[float] = pa.Field(ge=0)
    quote_volume: Series[float] = pa.Field(ge=0, nullable=True)
    trade_count: Series[pd.Int64Dtype] = pa.Field(ge=0, nullable=True)

    @pa.dataframe_check
    def high_covers_open_and_close(cls, df: pd.DataFrame) -> Series[bool]:
        return df["high"] >= np.maximum(df["open"], df["close"])

    @pa.dataframe_check
    def low_covers_open_and_close(cls, df: pd.DataFrame) -> Series[bool]:
        return df["low"] <= np.minimum(df["open"], df["close"])

    @pa.dataframe_check
    def high_not_below_low(cls, df: pd.DataFrame) -> Series[bool]:
        return df["high"] >= df["low"]

    @pa.dataframe_check
    def open_time_on_interval_grid(cls, df: pd.DataFrame) -> Series[bool]:
        return df["open_time_ms"] % df["interval_ms"] == 0

    @pa.dataframe_check
    def close_time_within_interval(cls, df: pd.DataFrame) -> Series[bool]:
        # A full bar closes at open + interval - 1 ms; a bar cut short by a halt closes earlier.
        return (df["close_time_ms"] > df["open_time_ms"]) & (
            df["close_time_ms"] <= df["open_time_ms"] + df["interval_ms"] - 1
        )

    @pa.dataframe_check
    def open_time_ascending(cls, df: pd.DataFrame) -> Series[bool]:
        return df["open_time_ms"].diff().fillna(1) > 0

    class Config:
        strict = "filter"
        ordered = False


_REASONS = {
    "high_covers_open_and_close": "high is below max(open, close)",
    "low_covers_open_and_close": "low is above min(open, close)",
    "high_not_below_low": "high is below low",
    "open_time_on_interval_grid": "open_time is not on the {interval} grid",
    "close_time_within_interval": "close_time is not within the bar's {interval} interval",
    "open_time_ascending": "open_time is not ascending",
    "field_uniqueness": "open_time is duplicated",
}


def numeric_view(frame: pd.DataFrame, interval: Interval) -> pd.DataFrame:
    """Floats and epoch milliseconds for checking; the exact text stays in ``frame``."""
    return pd.DataFrame(
        {
            "open_time_ms": epoch_ms(frame["open_time"]),
            "close_time_ms": epoch_ms(frame["close_time"]),
            "interval_ms": np.full(len(frame), interval.ms, dtype=np.int64),
            **{name: frame[name].astype("float64") for name in DECIMAL_COLUMNS},
            "trade_count": frame["trade_count"].astype("Int64"),
        },
        index=frame.index,
    )


@dataclass
class ValidatedCandles:
    valid: pd.DataFrame
    rejects: list[CandleReject]


def validate_candles(frame: pd.DataFrame, raw_rows, interval: Interval) -> ValidatedCandles:  # noqa: ANN001
    """Split a normalized frame into rows that honour `CandleModel` and quarantined rows.

    Runs the model lazily so that every failing row is found in one pass, each with all of its
    reasons; the valid rows beside them are returned untouched.
    """
    if frame.empty:
        return ValidatedCandles(valid=frame, rejects=[])
    try:
        CandleModel.validate(numeric_view(frame, interval), lazy=True)
        return ValidatedCandles(valid=frame, rejects=[])
    except pa.errors.SchemaErrors as errors:
        reasons = _reasons_by_row(errors.failure_cases, frame, interval)

    bad = frame.index.isin(list(reasons))
    rejects = [
        CandleReject(
            raw_payload=raw_rows[int(row[RAW_INDEX])],
            reason="; ".join(reasons[index]),
            open_time=row["open_time"].to_pydatetime(),
        )
        for index, row in frame[bad].iterrows()
    ]
    return ValidatedCandles(valid=frame[~bad], rejects=rejects)


def _reasons_by_row(failure_cases: pd.DataFrame, frame: pd.DataFrame, interval: Interval) -> dict[int, list[str]]:
    reasons: dict[int, list[str]] = defaultdict(list)
    for case in failure_cases.itertuples(index=False):
        if pd.isna(case.index):
            # A column-wide failure (a dtype) means the parser broke its own contract.
            raise TypeError(f"candle frame violates its schema as a whole: {case.column}: {case.check}")
        check = str(case.check)
        template = _REASONS.get(check)
        if template is not None:
            text = template.format(interval=interval.code)
        else:
            # Quote the exchange's exact text rather than the float the check saw.
            value = frame.at[case.index, case.column] if case.column in frame.columns else case.failure_case
            text = f"{case.column} {value!r} fails {check}"
        if text not in reasons[int(case.index)]:
            reasons[int(case.index)].append(text)
    return reasons
