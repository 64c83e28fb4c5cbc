"""The news picture: each source's dedup ratio (unique / raw items) poll by poll."""

from __future__ import annotations

from datetime import timezone

import pandas as pd
from matplotlib import dates as mdates

from coinpilot_pipelines.pictures import new_figure, png_bytes, small_text, thinned


def dedup_ratio_by_source(polls: pd.DataFrame, *, title: str) -> bytes:
    """``polls``: ``source``, ``polled_at`` (UTC), ``dedup_ratio`` (empty when a poll brought nothing fresh)."""
    figure = new_figure(3.0)
    axes = figure.add_axes((0.12, 0.14, 0.85, 0.76))
    for source, rows in polls.dropna(subset=["dedup_ratio"]).groupby("source", sort=True):
        line = thinned(rows.sort_values("polled_at"))
        axes.plot(mdates.date2num(line["polled_at"]), line["dedup_ratio"], marker=".", markersize=3,
                  linewidth=0.8, label=source)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("unique / raw")
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M", tz=timezone.utc))
    axes.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=5))
    if axes.lines:
        axes.legend(loc="lower left", fontsize=6, frameon=False, ncols=3)
    small_text(axes, title)
    return png_bytes(figure)
