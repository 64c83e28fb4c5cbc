"""Market pictures: a day of candles with its missing ranges, and completeness over a scanned window."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
from matplotlib import dates as mdates
from matplotlib.colors import Normalize

from coinpilot_pipelines.pictures import new_figure, png_bytes, small_text

UP, DOWN, MISSING = "tab:green", "tab:red", "tab:orange"
COMPLETENESS_FLOOR = 0.9  # the strip's colour scale: a day below 90 % is as red as an empty one


def ohlc_buckets(bars: pd.DataFrame, bucket: timedelta, origin: datetime) -> pd.DataFrame:
    """``open_time``-indexed OHLC of ``bucket``-wide buckets from ``origin`` (empty buckets dropped)."""
    indexed = bars.set_index("open_time")[["open", "high", "low", "close"]]
    aggregated = indexed.resample(bucket, origin=origin).agg(
        {"open": "first", "high": "max", "low": "min", "close": "last"})
    return aggregated.dropna()


def candles_day(bars: pd.DataFrame, missing: Sequence[tuple[datetime, datetime]], *, start: datetime,
                end: datetime, bucket: timedelta, title: str) -> bytes:
    """Candlesticks of ``bars`` (``open_time`` UTC; ``open``, ``high``, ``low``, ``close`` floats)
    over ``[start, end)`` in ``bucket``-wide candles, each missing ``[from, to)`` range shaded."""
    figure = new_figure(3.0)
    axes = figure.add_axes((0.12, 0.14, 0.85, 0.76))
    for gap_start, gap_end in missing:
        axes.axvspan(mdates.date2num(gap_start), mdates.date2num(gap_end), color=MISSING, alpha=0.35, linewidth=0)
    candles = ohlc_buckets(bars, bucket, start)
    if len(candles):
        x = mdates.date2num(candles.index + bucket / 2)
        rising = (candles["close"] >= candles["open"]).to_numpy()
        colours = np.where(rising, UP, DOWN)
        axes.vlines(x, candles["low"], candles["high"], colors=colours, linewidth=0.8)
        # A body's line width in points: 70 % of a bucket's share of the axes' width.
        axes_points = 0.85 * figure.get_figwidth() * 72
        body = 0.7 * axes_points * (bucket / (end - start))
        axes.vlines(x, np.minimum(candles["open"], candles["close"]), np.maximum(candles["open"], candles["close"]),
                    colors=colours, linewidth=max(1.0, body))
    axes.set_xlim(mdates.date2num(start), mdates.date2num(end))
    axes.xaxis.set_major_locator(mdates.HourLocator(byhour=range(0, 24, 4), tz=timezone.utc))
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=timezone.utc))
    axes.set_xlabel("UTC")
    missing_note = f", {len(missing)} missing range(s) shaded" if missing else ""
    small_text(axes, f"{title} ({bucket / timedelta(minutes=1):.0f}m candles{missing_note})")
    return png_bytes(figure)


def completeness_strip(completeness: pd.DataFrame, outages: pd.DataFrame, *, title: str) -> bytes:
    """A heat strip: ``completeness`` (index: UTC days; columns: symbols; 0..1) one row per symbol,
    with an ``x`` on each day of ``outages`` (columns ``symbol``, ``day``)."""
    symbols = list(completeness.columns)
    figure = new_figure(0.9 + 0.35 * len(symbols))
    axes = figure.add_axes((0.14, 0.3, 0.74, 0.55))
    first = mdates.date2num(completeness.index.min())
    last = mdates.date2num(completeness.index.max() + pd.Timedelta(days=1))
    image = axes.imshow(completeness.T.to_numpy(dtype=float), aspect="auto", cmap="RdYlGn", interpolation="nearest",
                        norm=Normalize(COMPLETENESS_FLOOR, 1.0), extent=(first, last, len(symbols) - 0.5, -0.5))
    rows = {symbol: i for i, symbol in enumerate(symbols)}
    marked = outages[outages["symbol"].isin(rows)]
    if len(marked):
        axes.scatter(mdates.date2num(pd.to_datetime(marked["day"], utc=True) + pd.Timedelta(hours=12)),
                     marked["symbol"].map(rows), marker="x", color="black", s=14, linewidths=1, label="outage")
        axes.legend(loc="upper right", bbox_to_anchor=(1.0, 1.45), fontsize=6, frameon=False)
    axes.set_yticks(range(len(symbols)), symbols)
    axes.xaxis_date(tz=timezone.utc)
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d", tz=timezone.utc))
    axes.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=5))
    colorbar = figure.colorbar(image, cax=figure.add_axes((0.9, 0.3, 0.02, 0.55)))
    colorbar.ax.tick_params(labelsize=6)
    small_text(axes, title)
    return png_bytes(figure)
