"""The feature contract, as a pandera model run by the `features` asset check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from coinpilot_pipelines.features.candle_features import FEATURE_COLUMNS


class FeatureModel(pa.DataFrameModel):
    close: Series[float] = pa.Field(gt=0)
    ret_1: Series[float] = pa.Field(nullable=True)
    ret_5: Series[float] = pa.Field(nullable=True)
    ret_10: Series[float] = pa.Field(nullable=True)
    rsi_14: Series[float] = pa.Field(ge=0, le=100, nullable=True)
    rolling_vol_20: Series[float] = pa.Field(ge=0, nullable=True)
    ma_20: Series[float] = pa.Field(gt=0, nullable=True)
    ma_50: Series[float] = pa.Field(gt=0, nullable=True)
    ma_200: Series[float] = pa.Field(gt=0, nullable=True)
    bb_upper: Series[float] = pa.Field(nullable=True)
    bb_lower: Series[float] = pa.Field(nullable=True)
    bb_pct_b: Series[float] = pa.Field(nullable=True)
    vol_ratio: Series[float] = pa.Field(ge=0, nullable=True)
    is_valid: Series[bool]

    @pa.dataframe_check
    def valid_rows_are_complete_and_finite(cls, df: pd.DataFrame) -> Series[bool]:
        finite = np.isfinite(df[list(FEATURE_COLUMNS)].to_numpy(dtype=np.float64)).all(axis=1)
        return pd.Series(~df["is_valid"].to_numpy() | finite, index=df.index)

    @pa.dataframe_check
    def bands_are_ordered(cls, df: pd.DataFrame) -> Series[bool]:
        return df["bb_lower"].isna() | (df["bb_lower"] <= df["bb_upper"])

    class Config:
        strict = "filter"


def feature_contract_failures(features: pd.DataFrame) -> pd.DataFrame:
    """The rows and checks that break `FeatureModel` (empty when the frame honours it)."""
    try:
        FeatureModel.validate(features, lazy=True)
    except pa.errors.SchemaErrors as errors:
        return errors.failure_cases
    return pd.DataFrame(columns=["column", "check", "failure_case", "index"])
