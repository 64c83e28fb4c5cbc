"""The values that travel between the RSS client, the dedup rules and storage."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

SOURCE_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class NewsFeed:
    """One configured feed. ``source`` names it in storage, so it must stay stable across runs."""

    source: str
    url: str

    @property
    def display_url(self) -> str:
        return redacted_url(self.url)


def redacted_url(url: str) -> str:
    """The URL without credentials or query string, which may carry access tokens."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass(frozen=True)
class FeedItem:
    """One item of a parsed RSS or Atom feed, times already in UTC."""

    guid: str | None
    link: str | None
    title: str
    summary: str
    published_at: datetime | None


@dataclass(frozen=True)
class ItemReject:
    """An item that cannot be stored, with the reason and what the feed said."""

    reason: str
    raw_item: str


@dataclass(frozen=True)
class ParsedFeed:
    items: list[FeedItem]
    rejects: list[ItemReject]
