"""Figures in Dagster metadata: a small PNG inline in markdown, which the Dagster UI renders."""

from __future__ import annotations

import base64
import io

import dagster as dg
from matplotlib.figure import Figure

DPI = 72  # a 5.5 x 4.2 inch figure becomes about 400 x 300 pixels, a few tens of kB


def png_bytes(figure: Figure, dpi: int = DPI) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def figure_markdown(figure: Figure, alt: str) -> dg.MetadataValue:
    """The figure as markdown metadata: an image with a ``data:image/png;base64,`` source."""
    encoded = base64.b64encode(png_bytes(figure)).decode("ascii")
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{encoded})")
