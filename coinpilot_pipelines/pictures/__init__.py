"""Pictures for the Dagster UI: pure functions from data frames to small PNGs.

Drawn with matplotlib's object API on the Agg canvas (no pyplot global state, safe in any thread),
at a low resolution and with few points, so each image stays a few tens of kB inside metadata.
"""

from __future__ import annotations

import io

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 72  # a 5.5 x 3 inch figure becomes about 400 x 220 pixels
WIDTH = 5.5  # inches
MAX_LINE_POINTS = 300  # a line of more points than pixels only adds bytes


def new_figure(height: float) -> Figure:
    figure = Figure(figsize=(WIDTH, height))
    FigureCanvasAgg(figure)
    return figure


def png_bytes(figure: Figure, dpi: int = DPI) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def thinned(frame: pd.DataFrame, max_points: int = MAX_LINE_POINTS) -> pd.DataFrame:
    """Every k-th row (and the last), so a line has at most about ``max_points`` points."""
    step = max(1, -(-len(frame) // max_points))
    if step == 1:
        return frame
    keep = list(range(0, len(frame), step))
    if keep[-1] != len(frame) - 1:
        keep.append(len(frame) - 1)
    return frame.iloc[keep]


def small_text(axes: Axes, title: str | None = None) -> None:
    """Tick labels and title sized for a 400-pixel-wide image (per axes: rcParams are process-wide)."""
    axes.tick_params(labelsize=7)
    axes.yaxis.label.set_size(7)
    axes.xaxis.label.set_size(7)
    if title is not None:
        axes.set_title(title, fontsize=8, loc="left")
