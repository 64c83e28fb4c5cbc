"""Figures in Dagster metadata: a small PNG inline in markdown, which the Dagster UI renders."""

from __future__ import annotations

import base64

import dagster as dg
from matplotlib.figure import Figure

from coinpilot_pipelines.pictures import png_bytes


def png_markdown(png: bytes, alt: str) -> dg.MetadataValue:
    """The PNG as markdown metadata: an image with a ``data:image/png;base64,`` source."""
    encoded = base64.b64encode(png).decode("ascii")
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{encoded})")


def figure_markdown(figure: Figure, alt: str) -> dg.MetadataValue:
    return png_markdown(png_bytes(figure), alt)
