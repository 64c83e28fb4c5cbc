"""``coinpilot bench features``: features for a year of 1m bars (525,600) of one symbol.

The yardstick, timed in the same run, is a single pandas ``rolling(200).mean()`` over the same
closes: the cheapest pass any feature needs, so the ratio says how many such passes the whole
feature set costs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pandas as pd

from coinpilot_pipelines.bench import BenchRow, median_seconds, within
from coinpilot_pipelines.bench.ingest import BENCH_END, BENCH_SERIES
from coinpilot_pipelines.emulator.synthetic import day_bars
from coinpilot_pipelines.features.candle_features import compute_features

REPEATS = 5


def bench_features(days: int, dsn: str | None, echo: Callable[[str], None]) -> list[BenchRow]:
    del dsn  # features are computed in memory; no database is involved
    echo(f"  generating {days} days of {BENCH_SERIES.symbol} 1m bars ...")
    first_day = (BENCH_END - timedelta(days=days)).date()
    generated = [day_bars(BENCH_SERIES.symbol, first_day + timedelta(days=i)) for i in range(days)]
    bars = pd.DataFrame({
        "open_time": pd.to_datetime(np.concatenate([d.open_ms for d in generated]), unit="ms", utc=True),
        "close": np.concatenate([d.close for d in generated]),
        "volume": np.concatenate([d.volume for d in generated]),
    })
    echo(f"  timing the feature set over {len(bars):,} bars, median of {REPEATS} ...")
    features_s = median_seconds(lambda: compute_features(bars, BENCH_SERIES.interval.ms), REPEATS)
    yardstick_s = median_seconds(lambda: bars["close"].rolling(200).mean(), REPEATS)
    return [
        BenchRow("features", f"yardstick: one rolling(200).mean() over {len(bars):,} closes", yardstick_s * 1000, "ms"),
        BenchRow("features", f"all features for {len(bars):,} bars", features_s, "s", "< 2 s", within(features_s, at_most=2.0)),
        BenchRow("features", "features / yardstick", features_s / yardstick_s, "x"),
    ]
