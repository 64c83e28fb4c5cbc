"""The features picture: close inside its Bollinger bands, and the RSI under it."""

from __future__ import annotations

from datetime import timezone

import pandas as pd
from matplotlib import dates as mdates

from coinpilot_pipelines.pictures import new_figure, png_bytes, small_text, thinned

RSI_BOUNDS = (30, 70)  # the usual oversold / overbought lines


def bands_and_rsi(features: pd.DataFrame, *, title: str) -> bytes:
    """``features``: ``open_time`` (UTC), ``close``, ``bb_upper``, ``bb_lower``, ``rsi_14``, ascending."""
    rows = thinned(features)
    x = mdates.date2num(rows["open_time"])
    figure = new_figure(3.6)
    price = figure.add_axes((0.13, 0.42, 0.84, 0.5))
    rsi = figure.add_axes((0.13, 0.1, 0.84, 0.24), sharex=price)
    price.fill_between(x, rows["bb_lower"], rows["bb_upper"], color="tab:blue", alpha=0.15, linewidth=0,
                       label="Bollinger bands (20, 2)")
    price.plot(x, rows["close"], color="black", linewidth=0.8, label="close")
    price.legend(loc="upper left", fontsize=6, frameon=False)
    price.tick_params(labelbottom=False)
    rsi.plot(x, rows["rsi_14"], color="tab:purple", linewidth=0.8)
    for bound in RSI_BOUNDS:
        rsi.axhline(bound, color="grey", linewidth=0.6, linestyle="--")
    rsi.set_ylim(0, 100)
    rsi.set_ylabel("RSI 14")
    rsi.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=timezone.utc))
    small_text(price, title)
    small_text(rsi)
    return png_bytes(figure)
