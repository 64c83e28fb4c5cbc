"""Reading and writing news: source fetch state, articles, the per-source item memory, polls,
rejected items and per-poll dedup stats. SQLAlchemy Core only; writes are idempotent upserts.

On PostgreSQL one source's poll is written under a transaction-scoped advisory lock shared by
all news writers, since dedup looks across sources: two runs polling at once queue instead of
both inserting the same article.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, and_, case, func, or_, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from coinpilot_pipelines.news.dedup import ArticleRecord, ItemKind, ItemOutcome
from coinpilot_pipelines.news.health import FAILED_STATUSES, HealthCarry, PollHealth, PollRecord
from coinpilot_pipelines.news.identity import ItemIdentity
from coinpilot_pipelines.news.model import ItemReject, NewsFeed
from coinpilot_pipelines.storage.schema import (
    news_articles,
    news_dedup_stats,
    news_item_rejects,
    news_polls,
    news_source_items,
    news_sources,
)

NEWS_LOCK_KEY = "news_articles"
_ARTICLE_COLUMNS = ("identity_key", "guid_key", "title_hash", "source", "guid", "canonical_url", "title",
                    "summary", "published_at", "first_seen_at", "fetched_at", "content_hash")
_REVISED_COLUMNS = ("title", "summary", "title_hash", "published_at", "fetched_at", "content_hash")
_STATS_COLUMNS = ("poll_id", "rolling_ratio", "ratio_std", "low_ratio_streak", "last_new_article_at",
                  "seconds_since_new", "stalled", "low_ratio", "volatile", "error_share", "health_score")


def _insert(connection: Connection, table):  # noqa: ANN001, ANN202 - dialect-specific Insert
    return (pg_insert if connection.dialect.name == "postgresql" else sqlite_insert)(table)


@dataclass(frozen=True)
class SourceState:
    source: str
    etag: str | None
    last_modified: str | None
    consecutive_errors: int
    backoff_until: datetime | None
    first_polled_at: datetime
    last_new_article_at: datetime | None


def prepare_sources(engine: Engine, feeds: Sequence[NewsFeed], now: datetime) -> dict[str, SourceState]:
    """Fetch state per configured source, registering new sources; a changed URL forgets the
    validators (ETag, Last-Modified) of the old one."""
    if not feeds:
        return {}
    with engine.begin() as connection:
        connection.execute(
            _insert(connection, news_sources).on_conflict_do_nothing(index_elements=["source"]),
            [{"source": f.source, "url": f.display_url, "first_polled_at": now, "consecutive_errors": 0} for f in feeds],
        )
        for feed in feeds:
            connection.execute(
                news_sources.update()
                .where(news_sources.c.source == feed.source, news_sources.c.url != feed.display_url)
                .values(url=feed.display_url, etag=None, last_modified=None)
            )
        rows = connection.execute(
            select(news_sources).where(news_sources.c.source.in_([f.source for f in feeds]))
        ).all()
    return {
        row.source: SourceState(row.source, row.etag, row.last_modified, row.consecutive_errors, row.backoff_until,
                                row.first_polled_at, row.last_new_article_at)
        for row in rows
    }


def lock_news(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": NEWS_LOCK_KEY})


def candidate_articles(connection: Connection, identities: Iterable[ItemIdentity]) -> list[ArticleRecord]:
    """Stored articles that any of these items could be: same URL or GUID key, or same title."""
    keys, titles = set(), set()
    for identity in identities:
        keys |= identity.match_keys
        if identity.title_hash:
            titles.add(identity.title_hash)
    if not keys and not titles:
        return []
    rows = connection.execute(
        select(news_articles).where(
            or_(news_articles.c.identity_key.in_(keys), news_articles.c.guid_key.in_(keys),
                news_articles.c.title_hash.in_(titles))
        ).order_by(news_articles.c.id)
    ).all()
    return [ArticleRecord(id=row.id, **{name: getattr(row, name) for name in _ARTICLE_COLUMNS}) for row in rows]


def seen_item_keys(connection: Connection, source: str, item_keys: Iterable[str]) -> set[str]:
    keys = list(set(item_keys))
    if not keys:
        return set()
    return set(connection.execute(
        select(news_source_items.c.item_key).where(news_source_items.c.source == source,
                                                   news_source_items.c.item_key.in_(keys))
    ).scalars())


def save_outcomes(connection: Connection, source: str, outcomes: Sequence[ItemOutcome], now: datetime) -> None:
    """Insert new articles, rewrite revised ones and remember which items this source delivered."""
    new = [o.article for o in outcomes if o.kind is ItemKind.NEW and o.article is not None]
    # Articles created by this poll are inserted with their final values, revised or not.
    revised = {id(o.article): o.article for o in outcomes
               if o.article is not None and o.article.changed and o.article.id is not None}
    if new:
        inserted = connection.execute(
            news_articles.insert().returning(news_articles.c.id, sort_by_parameter_order=True),
            [{name: getattr(article, name) for name in _ARTICLE_COLUMNS} for article in new],
        ).scalars().all()
        for article, article_id in zip(new, inserted, strict=True):
            article.id = article_id
    for article in revised.values():
        connection.execute(
            news_articles.update().where(news_articles.c.id == article.id)
            .values({name: getattr(article, name) for name in _REVISED_COLUMNS})
        )
    delivered = {o.identity.item_key: o.article.id for o in outcomes if o.article is not None}
    if delivered:
        connection.execute(
            _insert(connection, news_source_items).on_conflict_do_nothing(index_elements=["source", "item_key"]),
            [{"source": source, "item_key": key, "article_id": article_id, "first_seen_at": now}
             for key, article_id in delivered.items()],
        )


def record_item_rejects(connection: Connection, source: str, rejects: Sequence[ItemReject], now: datetime) -> None:
    """Quarantine items that cannot be stored; an item refused before is not added twice."""
    if not rejects:
        return
    connection.execute(
        _insert(connection, news_item_rejects).on_conflict_do_nothing(index_elements=["source", "item_sha256"]),
        [{"source": source, "reason": r.reason, "raw_item": r.raw_item,
          "item_sha256": hashlib.sha256(r.raw_item.encode()).hexdigest(), "rejected_at": now} for r in rejects],
    )


@dataclass(frozen=True)
class PollRow:
    source: str
    polled_at: datetime
    status: str
    http_status: int | None
    raw_count: int
    unique_count: int
    updated_count: int
    duplicate_count: int
    unchanged_count: int
    rejected_count: int
    dedup_ratio: float | None
    error: str | None
    elapsed_ms: int | None


def record_poll(connection: Connection, poll: PollRow) -> None:
    connection.execute(news_polls.insert().values(**asdict(poll)))


def update_source_state(connection: Connection, source: str, **values: object) -> None:
    connection.execute(news_sources.update().where(news_sources.c.source == source).values(**values))


def count_articles(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(news_articles)).scalar_one()


# -- dedup stats ---------------------------------------------------------------------------------

def _poll_record(row) -> PollRecord:  # noqa: ANN001 - a result row
    return PollRecord(row.id, row.polled_at, row.status, row.raw_count, row.unique_count, row.dedup_ratio)


@dataclass(frozen=True)
class StatsBacklog:
    """One source's polls without stats, and what evaluating them continues from."""

    source: str
    polls: list[PollRecord]
    history: list[PollRecord]
    carry: HealthCarry
    first_polled_at: datetime


def stats_backlog(engine: Engine, history_size: int) -> list[StatsBacklog]:
    """Per source, the polls that have no stats row yet (oldest first) with their context."""
    with engine.connect() as connection:
        pending = connection.execute(
            select(news_polls)
            .outerjoin(news_dedup_stats, news_dedup_stats.c.poll_id == news_polls.c.id)
            .where(news_dedup_stats.c.poll_id.is_(None))
            .order_by(news_polls.c.source, news_polls.c.polled_at, news_polls.c.id)
        ).all()
        by_source: dict[str, list[PollRecord]] = {}
        for row in pending:
            by_source.setdefault(row.source, []).append(_poll_record(row))
        backlogs = []
        for source, polls in by_source.items():
            before = and_(news_polls.c.source == source,
                          tuple_(news_polls.c.polled_at, news_polls.c.id) < tuple_(polls[0].polled_at, polls[0].poll_id))
            evaluated = (
                select(news_polls, news_dedup_stats.c.last_new_article_at, news_dedup_stats.c.low_ratio_streak)
                .join(news_dedup_stats, news_dedup_stats.c.poll_id == news_polls.c.id)
                .where(before)
                .order_by(news_polls.c.polled_at.desc(), news_polls.c.id.desc())
                .limit(max(1, history_size))
            )
            history = connection.execute(evaluated).all()
            carry = (HealthCarry(history[0].last_new_article_at, history[0].low_ratio_streak)
                     if history else HealthCarry())
            first_polled_at = connection.execute(
                select(news_sources.c.first_polled_at).where(news_sources.c.source == source)
            ).scalar_one()
            backlogs.append(StatsBacklog(source, polls, [_poll_record(r) for r in reversed(history)], carry,
                                         first_polled_at))
    return backlogs


def save_dedup_stats(engine: Engine, rows: Sequence[PollHealth], computed_at: datetime) -> int:
    if not rows:
        return 0
    values = [{**{name: getattr(row, name) for name in _STATS_COLUMNS}, "computed_at": computed_at} for row in rows]
    with engine.begin() as connection:
        statement = _insert(connection, news_dedup_stats)
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=["poll_id"],
                set_={name: statement.excluded[name] for name in (*_STATS_COLUMNS[1:], "computed_at")},
            ),
            values,
        )
    return len(values)



@dataclass(frozen=True)
class SourceSummary:
    """One source's totals over all polls and its state as of its latest evaluated poll."""

    source: str
    polls: int
    raw: int
    new: int
    updated: int
    duplicates: int
    errors: int
    last_polled_at: datetime | None
    last_status: str | None
    last_error: str | None
    health: PollHealth | None


def source_summaries(engine: Engine, sources: Sequence[str]) -> list[SourceSummary]:
    failed = news_polls.c.status.in_(sorted(FAILED_STATUSES))
    totals_query = (
        select(
            news_polls.c.source,
            func.count().label("polls"),
            func.sum(news_polls.c.raw_count).label("raw"),
            func.sum(news_polls.c.unique_count).label("new"),
            func.sum(news_polls.c.updated_count).label("updated"),
            func.sum(news_polls.c.duplicate_count).label("duplicates"),
            func.sum(case((failed, 1), else_=0)).label("errors"),
        )
        .where(news_polls.c.source.in_(sources))
        .group_by(news_polls.c.source)
    )
    latest = (
        select(news_polls.c.source, func.max(news_polls.c.id).label("poll_id"))
        .join(news_dedup_stats, news_dedup_stats.c.poll_id == news_polls.c.id)
        .where(news_polls.c.source.in_(sources))
        .group_by(news_polls.c.source)
        .subquery()
    )
    latest_query = (
        select(news_polls, *(news_dedup_stats.c[name] for name in _STATS_COLUMNS[1:]))
        .join(latest, latest.c.poll_id == news_polls.c.id)
        .join(news_dedup_stats, news_dedup_stats.c.poll_id == news_polls.c.id)
    )
    with engine.connect() as connection:
        totals = {row.source: row for row in connection.execute(totals_query)}
        latest_rows = {row.source: row for row in connection.execute(latest_query)}
    summaries = []
    for source in sources:
        total, last = totals.get(source), latest_rows.get(source)
        summaries.append(SourceSummary(
            source=source,
            polls=int(total.polls) if total else 0,
            raw=int(total.raw or 0) if total else 0,
            new=int(total.new or 0) if total else 0,
            updated=int(total.updated or 0) if total else 0,
            duplicates=int(total.duplicates or 0) if total else 0,
            errors=int(total.errors or 0) if total else 0,
            last_polled_at=last.polled_at if last else None,
            last_status=last.status if last else None,
            last_error=last.error if last else None,
            health=PollHealth(poll_id=last.id, **{name: getattr(last, name) for name in _STATS_COLUMNS[1:]})
            if last else None,
        ))
    return summaries


@dataclass(frozen=True)
class PollWithHealth:
    poll: PollRow
    health: PollHealth | None


def poll_history(engine: Engine, sources: Sequence[str], *, limit: int) -> list[PollWithHealth]:
    """The latest ``limit`` polls of these sources, oldest first, with their stats if evaluated."""
    query = (
        select(news_polls, *(news_dedup_stats.c[name] for name in _STATS_COLUMNS))
        .outerjoin(news_dedup_stats, news_dedup_stats.c.poll_id == news_polls.c.id)
        .where(news_polls.c.source.in_(sources))
        .order_by(news_polls.c.polled_at.desc(), news_polls.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    history = []
    for row in reversed(rows):
        poll = PollRow(**{name: getattr(row, name) for name in PollRow.__dataclass_fields__})
        health = (PollHealth(**{name: getattr(row, name) for name in _STATS_COLUMNS})
                  if row.poll_id is not None else None)
        history.append(PollWithHealth(poll, health))
    return history
