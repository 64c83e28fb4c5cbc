"""The bundled real feeds (see data/PROVENANCE.md) and the byte-level edits scenarios ask for.

Feeds are served as recorded. A scenario may serve a subset of a file's items or give items a
new ``pubDate``; both are done on the document's bytes (items are cut out and put back, dates
replaced in place) so everything else stays exactly as the publisher wrote it.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

RSS_DIR = Path(__file__).with_name("data") / "rss"

# Feed name -> bundled file.
BUNDLED_FEEDS: dict[str, str] = {
    "coindesk": "single_polls/coindesk.rss.gz",
    "cointelegraph-all": "single_polls/coingtelegraph-all.rss.gz",
    "cointelegraph-trimmed": "single_polls/coingtelegraph-trimmed.rss.gz",
    "decrypt": "single_polls/decrypt.rss.gz",
    "theblock": "single_polls/theblock.rss.gz",
    "prnewswire": "single_polls/prnews-news-releases-list.rss.gz",
    "cointelegraph-daily-2026-02-02": "cointelegraph_daily_polls/cointelegraph_poll-2026-02-02_feeds-path_2e56bcbb.xml.gz",
    "cointelegraph-daily-2026-02-07": "cointelegraph_daily_polls/cointelegraph_poll-2026-02-07_4a226858.xml.gz",
    "cointelegraph-daily-2026-02-15": "cointelegraph_daily_polls/cointelegraph_poll-2026-02-15_0199fbdd.xml.gz",
}

# Source served at /rss/{source} -> the feeds its successive polls return (the last one repeats).
# Cointelegraph's official poll of December is followed by the three daily polls of February;
# the trimmed copy comes last so the originals are attributed to `cointelegraph`.
DEFAULT_SOURCES: dict[str, tuple[str, ...]] = {
    "coindesk": ("coindesk",),
    "cointelegraph": ("cointelegraph-all", "cointelegraph-daily-2026-02-02", "cointelegraph-daily-2026-02-07",
                      "cointelegraph-daily-2026-02-15"),
    "decrypt": ("decrypt",),
    "theblock": ("theblock",),
    "prnewswire": ("prnewswire",),
    "cointelegraph-trimmed": ("cointelegraph-trimmed",),
}

_ITEM = re.compile(rb"<item\b.*?</item>|<entry\b.*?</entry>", re.DOTALL)
_PUBDATE = re.compile(rb"(<pubDate>)\s*[^<]*?\s*(</pubDate>)")


@lru_cache(maxsize=None)
def feed_bytes(name: str) -> bytes:
    if name not in BUNDLED_FEEDS:
        raise KeyError(f"no bundled feed {name!r}; known: {', '.join(BUNDLED_FEEDS)}")
    return gzip.decompress((RSS_DIR / BUNDLED_FEEDS[name]).read_bytes())


@lru_cache(maxsize=None)
def _split(name: str) -> tuple[bytes, tuple[bytes, ...], bytes]:
    """A feed as (text before the first item, the items, text after the last item)."""
    body = feed_bytes(name)
    matches = list(_ITEM.finditer(body))
    if not matches:
        return body, (), b""
    return body[: matches[0].start()], tuple(m.group(0) for m in matches), body[matches[-1].end():]


def item_count(name: str) -> int:
    return len(_split(name)[1])


def render_feed(name: str, *, items: Sequence[int] | None = None, pubdates: Mapping[int, str] | None = None,
                drop_items: bool = False) -> bytes:
    """The feed, optionally with only ``items`` (indices in file order), some items' pubDate
    replaced (index -> new text), or no items at all."""
    if items is None and not pubdates and not drop_items:
        return feed_bytes(name)
    head, all_items, tail = _split(name)
    chosen = [] if drop_items else list(range(len(all_items)) if items is None else items)
    rendered = []
    for index in chosen:
        item = all_items[index]
        if pubdates and index in pubdates:
            item = _PUBDATE.sub(rb"\g<1>" + pubdates[index].encode() + rb"\g<2>", item)
        rendered.append(item)
    return head + b"\n".join(rendered) + tail
