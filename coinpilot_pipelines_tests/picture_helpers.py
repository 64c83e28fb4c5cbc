"""Checking a picture: a valid PNG, small, of a sensible size in pixels, with something drawn."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
from matplotlib import image

MAX_PNG_BYTES = 60_000
_INLINE_PNG = re.compile(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)")


def decoded(png: bytes) -> np.ndarray:
    """The PNG's pixels, after checking it is one, under `MAX_PNG_BYTES`, and not blank."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) < MAX_PNG_BYTES, len(png)
    pixels = image.imread(io.BytesIO(png), format="png")
    height, width = pixels.shape[:2]
    assert 300 <= width <= 500 and 100 <= height <= 500, (width, height)
    assert pixels[..., :3].std() > 0.05  # something is drawn, not a blank canvas
    return pixels


def inline_png(markdown: str) -> bytes:
    """The PNG inside markdown metadata (``![alt](data:image/png;base64,...)``)."""
    match = _INLINE_PNG.fullmatch(markdown)
    assert match, markdown[:80]
    return base64.b64decode(match.group(1))
