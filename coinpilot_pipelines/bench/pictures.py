"""``coinpilot bench pictures``: what drawing each picture costs (in memory, median of runs).

The candles chart is drawn once per materialized partition, so its cost is what a backfill pays
per day and symbol; the strip, the bands and the trades are drawn once per run.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta, timezone

import numpy as np
import pandas as pd

from coinpilot_pipelines.bench import BenchRow, median_seconds
from coinpilot_pipelines.bench.ingest import BENCH_END, BENCH_SERIES
from coinpilot_pipelines.emulator.synthetic import day_bars
from coinpilot_pipelines.features.candle_features import compute_features
from coinpilot_pipelines.pictures.features import bands_and_rsi
from coinpilot_pipelines.pictures.market import candles_day, completeness_strip

REPEATS = 5


def _bars(days: int) -> pd.DataFrame:
    first_day = (BENCH_END - timedelta(days=days)).date()
    generated = [day_bars(BENCH_SERIES.symbol, first_day + timedelta(days=i)) for i in range(days)]
    return pd.DataFrame({
        "open_time": pd.to_datetime(np.concatenate([d.open_ms for d in generated]), unit="ms", utc=True),
        **{name: np.concatenate([getattr(d, name) for d in generated]) for name in ("open", "high", "low", "close", "volume")},
    })


def bench_pictures(days: int, dsn: str | None, echo: Callable[[str], None]) -> list[BenchRow]:
    del dsn  # drawn in memory from generated bars; no database is involved
    echo(f"  generating {max(days, 2)} days of {BENCH_SERIES.symbol} 1m bars ...")
    bars = _bars(max(days, 2))
    last_day = datetime.combine((BENCH_END - timedelta(days=1)).date(), time(0), tzinfo=timezone.utc)
    day = bars[bars["open_time"] >= last_day]
    features = compute_features(bars[["open_time", "close", "volume"]], BENCH_SERIES.interval.ms)
    features = features[features["open_time"] >= last_day]
    strip_days = pd.date_range(end=last_day, periods=days, freq="D")
    completeness = pd.DataFrame({"BTCUSDT": np.ones(days), "XRPUSDT": np.linspace(0.95, 1.0, days)}, index=strip_days)
    outages = pd.DataFrame({"symbol": ["XRPUSDT"], "day": [strip_days[0]]})
    drawings = {
        "candles chart of one day (48 candles of 30m, one missing range)": lambda: candles_day(
            day, [(last_day + timedelta(hours=10), last_day + timedelta(hours=11))], start=last_day,
            end=last_day + timedelta(days=1), bucket=timedelta(minutes=30), title="bench"),
        "close, bands and RSI of one day (1,440 bars)": lambda: bands_and_rsi(features, title="bench"),
        f"completeness strip, 2 symbols x {days} days": lambda: completeness_strip(completeness, outages, title="bench"),
    }
    rows = []
    for label, draw in drawings.items():
        echo(f"  timing: {label}, median of {REPEATS} ...")
        rows.append(BenchRow("pictures", f"{label} ({len(draw()) / 1000:.0f} kB)",
                             median_seconds(draw, REPEATS) * 1000, "ms"))
    return rows
