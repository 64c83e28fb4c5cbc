"""Which parsed feed items can be stored: bounds a real article stays within.

A feed is outside input. An item dated before the web had news feeds, or more than a day ahead of
now, would sort to the top (or bottom) of every "latest" query and fool stall detection; a title of
a megabyte or a URL longer than browsers accept is not an article. Such items are quarantined in
`news_item_rejects` with the reason; the valid items of the same poll are stored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from coinpilot_pipelines.news.model import FeedItem, ItemReject

EARLIEST_PUBLISHED = datetime(1995, 1, 1, tzinfo=timezone.utc)
MAX_AHEAD_OF_NOW = timedelta(days=1)
MAX_TITLE_CHARS = 1000
MAX_URL_CHARS = 2048
_RAW_ITEM_CHARS = 4000  # how much of a refused item is kept as evidence


def item_problem(item: FeedItem, now: datetime) -> str | None:
    """Why ``item`` cannot be stored, or None."""
    if item.published_at is not None and item.published_at < EARLIEST_PUBLISHED:
        return f"published {item.published_at.isoformat()} is before {EARLIEST_PUBLISHED:%Y-%m-%d}"
    if item.published_at is not None and item.published_at > now + MAX_AHEAD_OF_NOW:
        return f"published {item.published_at.isoformat()} is more than a day after now ({now.isoformat()})"
    if len(item.title) > MAX_TITLE_CHARS:
        return f"title of {len(item.title)} characters is longer than {MAX_TITLE_CHARS}"
    for name, value in (("link", item.link), ("guid", item.guid)):
        if value is not None and len(value) > MAX_URL_CHARS:
            return f"{name} of {len(value)} characters is longer than {MAX_URL_CHARS}"
    return None


def screen_items(items: Sequence[FeedItem], now: datetime) -> tuple[list[FeedItem], list[ItemReject]]:
    """The items that can be stored, and the others as rejects with their reasons."""
    kept, rejects = [], []
    for item in items:
        problem = item_problem(item, now)
        if problem is None:
            kept.append(item)
            continue
        raw = json.dumps({"guid": item.guid, "link": item.link, "title": item.title,
                          "published": item.published_at.isoformat() if item.published_at else None},
                         ensure_ascii=False, sort_keys=True)
        rejects.append(ItemReject(reason=problem, raw_item=raw[:_RAW_ITEM_CHARS]))
    return kept, rejects
