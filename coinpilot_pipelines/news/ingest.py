"""Polling the configured feeds: fetch them together, then dedup and store each source's items.

A source that fails is recorded with its error and backs off on its own (by default 60 s after
the first failure, doubling up to an hour); the others are fetched and stored as usual. Every round writes one
poll row per configured source, skipped or not, so the poll history says what happened when.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from coinpilot_pipelines.clients.rss import FeedRequest, FeedResponse, FetchFailure, RssClient
from coinpilot_pipelines.news.dedup import ArticleIndex, ItemKind, classify_items
from coinpilot_pipelines.news.health import dedup_ratio
from coinpilot_pipelines.news.identity import item_identity
from coinpilot_pipelines.news.model import NewsFeed
from coinpilot_pipelines.news.validation import screen_items
from coinpilot_pipelines.storage import news as store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackoffPolicy:
    base_s: float = 60.0
    max_s: float = 3600.0

    def delay_s(self, consecutive_errors: int) -> float:
        return min(self.max_s, self.base_s * 2 ** max(0, consecutive_errors - 1))


@dataclass(frozen=True)
class BootstrapPolicy:
    """Repeat polls of an empty store until it holds ``min_articles`` or stops growing."""

    min_articles: int = 200
    plateau_rounds: int = 2
    max_rounds: int = 10
    pause_s: float = 5.0
    budget_s: float | None = None  # no round starts after this long (a sensor tick has a deadline)


@dataclass
class SourcePoll:
    """What one poll of one source did."""

    source: str
    polled_at: datetime
    status: str  # ok, not_modified, error, backoff
    http_status: int | None = None
    counts: Counter[ItemKind] = field(default_factory=Counter)
    rejected: int = 0
    error: str | None = None
    elapsed_ms: int | None = None

    @property
    def raw_count(self) -> int:
        """Items this source had not delivered before in this form; the base of the dedup ratio."""
        return self.counts[ItemKind.NEW] + self.counts[ItemKind.UPDATED] + self.counts[ItemKind.DUPLICATE]

    @property
    def dedup_ratio(self) -> float | None:
        return dedup_ratio(self.raw_count, self.counts[ItemKind.NEW])

    def row(self) -> store.PollRow:
        return store.PollRow(
            source=self.source, polled_at=self.polled_at, status=self.status, http_status=self.http_status,
            raw_count=self.raw_count, unique_count=self.counts[ItemKind.NEW],
            updated_count=self.counts[ItemKind.UPDATED], duplicate_count=self.counts[ItemKind.DUPLICATE],
            unchanged_count=self.counts[ItemKind.UNCHANGED], rejected_count=self.rejected,
            dedup_ratio=self.dedup_ratio, error=self.error, elapsed_ms=self.elapsed_ms,
        )


@dataclass
class NewsIngestReport:
    rounds: list[list[SourcePoll]]
    bootstrapped: bool
    articles_stored: int

    def per_source(self) -> dict[str, list[SourcePoll]]:
        polls: dict[str, list[SourcePoll]] = {}
        for round_polls in self.rounds:
            for poll in round_polls:
                polls.setdefault(poll.source, []).append(poll)
        return polls


def poll_feeds(client: RssClient, engine: Engine, feeds: Sequence[NewsFeed], *, now: datetime,
               backoff: BackoffPolicy = BackoffPolicy()) -> list[SourcePoll]:
    """One poll of every feed at ``now``; one `SourcePoll` per feed, in feed order."""
    states = store.prepare_sources(engine, feeds, now)
    due = [f for f in feeds if not (states[f.source].backoff_until and now < states[f.source].backoff_until)]
    fetched = dict(zip(
        (f.source for f in due),
        client.fetch_all([FeedRequest(f, states[f.source].etag, states[f.source].last_modified) for f in due]),
        strict=True,
    ))
    results = []
    for feed in feeds:
        state = states[feed.source]
        outcome = fetched.get(feed.source)
        if outcome is None:
            poll = SourcePoll(feed.source, now, "backoff",
                              error=f"backing off after {state.consecutive_errors} failed polls "
                                    f"until {state.backoff_until:%Y-%m-%d %H:%M:%S} UTC")
            _record_poll(engine, poll)
        elif isinstance(outcome, FetchFailure):
            poll = _record_failure(engine, feed, state, outcome, now, backoff)
        else:
            poll = _record_response(engine, feed, outcome, now)
        log.info("news %s: %s, %d new, %d updated, %d duplicate%s", feed.source, poll.status,
                 poll.counts[ItemKind.NEW], poll.counts[ItemKind.UPDATED], poll.counts[ItemKind.DUPLICATE],
                 f" ({poll.error})" if poll.error else "")
        results.append(poll)
    return results


def _record_poll(engine: Engine, poll: SourcePoll, **source_state: object) -> None:
    with engine.begin() as connection:
        store.record_poll(connection, poll.row())
        store.update_source_state(connection, poll.source, last_polled_at=poll.polled_at, **source_state)


def _record_failure(engine: Engine, feed: NewsFeed, state: store.SourceState, failure: FetchFailure,
                    now: datetime, backoff: BackoffPolicy) -> SourcePoll:
    errors = state.consecutive_errors + 1
    poll = SourcePoll(feed.source, now, "error", http_status=failure.error.http_status, error=str(failure.error),
                      elapsed_ms=round(failure.elapsed_s * 1000))
    _record_poll(engine, poll, consecutive_errors=errors, last_error=poll.error,
           backoff_until=now + timedelta(seconds=backoff.delay_s(errors)))
    log.warning("news %s: %s (failure %d in a row)", feed.source, poll.error, errors)
    return poll


def _record_response(engine: Engine, feed: NewsFeed, response: FeedResponse, now: datetime) -> SourcePoll:
    poll = SourcePoll(feed.source, now, "not_modified" if response.feed is None else "ok",
                      http_status=response.http_status, elapsed_ms=round(response.elapsed_s * 1000))
    with engine.begin() as connection:
        success = dict(consecutive_errors=0, backoff_until=None, last_error=None, last_success_at=now,
                       etag=response.etag, last_modified=response.last_modified)
        if response.feed is not None:
            store.lock_news(connection)
            items, implausible = screen_items(response.feed.items, now)
            rejects = [*response.feed.rejects, *implausible]
            identities = [item_identity(feed.source, item) for item in items]
            index = ArticleIndex(store.candidate_articles(connection, identities))
            seen = store.seen_item_keys(connection, feed.source, (i.item_key for i in identities))
            outcomes = classify_items(feed.source, items, identities, index, seen, fetched_at=now)
            store.save_outcomes(connection, feed.source, outcomes, now)
            store.record_item_rejects(connection, feed.source, rejects, now)
            poll.counts = Counter(o.kind for o in outcomes)
            poll.rejected = len(rejects)
            if poll.counts[ItemKind.NEW]:
                success["last_new_article_at"] = now
        store.record_poll(connection, poll.row())
        store.update_source_state(connection, feed.source, last_polled_at=now, **success)
    return poll


def ingest_news(client: RssClient, engine: Engine, feeds: Sequence[NewsFeed], *, clock: Callable[[], datetime],
                backoff: BackoffPolicy = BackoffPolicy(), bootstrap: BootstrapPolicy = BootstrapPolicy(),
                sleep: Callable[[float], None] = time.sleep,
                monotonic: Callable[[], float] = time.monotonic) -> NewsIngestReport:
    """One poll of every feed; on an empty store, the bootstrap's repeated polls instead."""
    stored = store.count_articles(engine)
    if stored:
        rounds = [poll_feeds(client, engine, feeds, now=clock(), backoff=backoff)]
        return NewsIngestReport(rounds, bootstrapped=False, articles_stored=store.count_articles(engine))
    rounds, flat_rounds = [], 0
    started = monotonic()
    while len(rounds) < bootstrap.max_rounds:
        if rounds and bootstrap.budget_s is not None and monotonic() - started + bootstrap.pause_s > bootstrap.budget_s:
            log.info("news bootstrap: time budget spent after %d rounds; later polls go on from here", len(rounds))
            break
        if rounds:
            sleep(bootstrap.pause_s)
        rounds.append(poll_feeds(client, engine, feeds, now=clock(), backoff=backoff))
        now_stored = store.count_articles(engine)
        flat_rounds = flat_rounds + 1 if now_stored == stored else 0
        stored = now_stored
        log.info("news bootstrap round %d: %d articles stored", len(rounds), stored)
        if stored >= bootstrap.min_articles or flat_rounds >= bootstrap.plateau_rounds:
            break
    return NewsIngestReport(rounds, bootstrapped=True, articles_stored=stored)
