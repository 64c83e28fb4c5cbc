"""Sorting one poll's items into new articles, updates, duplicates and unchanged repeats.

Pure logic over the candidate articles storage found for the poll's keys; articles created by
earlier items of the same poll are matched too, so a story listed twice counts once.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from coinpilot_pipelines.news.identity import ItemIdentity, published_within
from coinpilot_pipelines.news.model import FeedItem

# The same normalized title more than this far apart in time is a recurring headline, not a copy.
TITLE_MATCH_WINDOW_S = 48 * 3600


class ItemKind(enum.StrEnum):
    NEW = "new"  # an article not stored before
    UPDATED = "updated"  # a stored article seen with a newer pubDate or revised text
    DUPLICATE = "duplicate"  # a stored article (or the same story under another URL), nothing new
    UNCHANGED = "unchanged"  # still in the feed exactly as this source delivered it before


@dataclass(eq=False)  # one record per article: compared by identity
class ArticleRecord:
    """A stored article (``id`` set) or one this poll creates (``id`` None until inserted)."""

    identity_key: str
    guid_key: str | None
    title_hash: str | None
    source: str
    guid: str | None
    canonical_url: str | None
    title: str
    summary: str
    published_at: datetime | None
    first_seen_at: datetime
    fetched_at: datetime
    content_hash: str
    id: int | None = None
    changed: bool = field(default=False, compare=False)

    def keys(self) -> set[str]:
        return {key for key in (self.identity_key, self.guid_key) if key}


@dataclass(frozen=True)
class ItemOutcome:
    kind: ItemKind
    item: FeedItem
    identity: ItemIdentity
    article: ArticleRecord | None  # None only for UNCHANGED: nothing to write


class ArticleIndex:
    """Articles by identity/GUID key and by title hash."""

    def __init__(self, articles: Iterable[ArticleRecord] = ()) -> None:
        self._by_key: dict[str, ArticleRecord] = {}
        self._by_title: dict[str, list[ArticleRecord]] = {}
        for article in articles:
            self.add(article)

    def add(self, article: ArticleRecord) -> None:
        for key in article.keys():
            self._by_key.setdefault(key, article)
        if article.title_hash:
            self._by_title.setdefault(article.title_hash, []).append(article)

    def same_article(self, identity: ItemIdentity) -> ArticleRecord | None:
        for key in (identity.url_key, identity.guid_key):
            if key and key in self._by_key:
                return self._by_key[key]
        return None

    def same_story(self, identity: ItemIdentity, published_at: datetime | None) -> ArticleRecord | None:
        for article in self._by_title.get(identity.title_hash or "", []):
            if published_within(article.published_at or article.first_seen_at, published_at, TITLE_MATCH_WINDOW_S):
                return article
        return None


def classify_items(source: str, items: list[FeedItem], identities: list[ItemIdentity], index: ArticleIndex,
                   seen_item_keys: set[str], *, fetched_at: datetime) -> list[ItemOutcome]:
    """Decide for each item what it is, updating ``index`` (and matched records) as it goes.

    ``identities`` are the items' ``item_identity``, in order. ``seen_item_keys`` are the items
    this source delivered in earlier polls; the same item listed twice within this poll is a
    duplicate, not an unchanged repeat.
    """
    outcomes = []
    in_this_poll: set[str] = set()
    for item, identity in zip(items, identities, strict=True):
        article = index.same_article(identity)
        if identity.item_key in seen_item_keys and identity.item_key not in in_this_poll:
            kind, article = ItemKind.UNCHANGED, None
        elif article is not None:
            kind = ItemKind.UPDATED if _revises(article, item, identity, source) else ItemKind.DUPLICATE
            if kind is ItemKind.UPDATED:
                _apply_revision(article, item, identity, fetched_at)
        elif (copied := index.same_story(identity, item.published_at)) is not None:
            kind, article = ItemKind.DUPLICATE, copied
        else:
            kind, article = ItemKind.NEW, _new_article(source, item, identity, fetched_at)
            index.add(article)
        in_this_poll.add(identity.item_key)
        outcomes.append(ItemOutcome(kind, item, identity, article))
    return outcomes


def _newer_pubdate(article: ArticleRecord, item: FeedItem) -> bool:
    return item.published_at is not None and (article.published_at is None or item.published_at > article.published_at)


def _revises(article: ArticleRecord, item: FeedItem, identity: ItemIdentity, source: str) -> bool:
    if _newer_pubdate(article, item):
        return True
    # Another source's copy with different wording is a copy, not a revision by the publisher.
    return source == article.source and identity.content_hash != article.content_hash


def _apply_revision(article: ArticleRecord, item: FeedItem, identity: ItemIdentity, fetched_at: datetime) -> None:
    if _newer_pubdate(article, item):
        article.published_at = item.published_at
    article.title, article.summary, article.content_hash = item.title, item.summary, identity.content_hash
    article.title_hash = identity.title_hash
    article.fetched_at = fetched_at
    article.changed = True


def _new_article(source: str, item: FeedItem, identity: ItemIdentity, fetched_at: datetime) -> ArticleRecord:
    return ArticleRecord(
        identity_key=identity.identity_key,
        guid_key=identity.guid_key,
        title_hash=identity.title_hash,
        source=source,
        guid=item.guid,
        canonical_url=identity.canonical_url,
        title=item.title,
        summary=item.summary,
        published_at=item.published_at,
        first_seen_at=fetched_at,
        fetched_at=fetched_at,
        content_hash=identity.content_hash,
    )
