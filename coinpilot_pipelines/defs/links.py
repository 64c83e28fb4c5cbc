"""Links into the Dagster UI at COINPILOT_UI_BASE_URL, for messages that leave the UI (alerts)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote, urlencode

import dagster as dg


def run_url(base: str, run_id: str) -> str:
    return f"{base.rstrip('/')}/runs/{quote(run_id, safe='')}"


def asset_url(base: str, asset_key: dg.AssetKey | str | Sequence[str], partition: str | None = None) -> str:
    """An asset's page; with ``partition``, its partitions view on that partition."""
    path = dg.AssetKey.from_coercible(asset_key).path
    url = f"{base.rstrip('/')}/assets/{'/'.join(quote(part, safe='') for part in path)}"
    if partition is not None:
        url += "?" + urlencode({"view": "partitions", "partition": partition})
    return url
