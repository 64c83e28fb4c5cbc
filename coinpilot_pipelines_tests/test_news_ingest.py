"""Dedup on the real feeds, through the emulator over HTTP, on PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select

from coinpilot_pipelines.clients.rss import RssClient
from coinpilot_pipelines.news.dedup import ItemKind
from coinpilot_pipelines.news.ingest import BootstrapPolicy, ingest_news
from coinpilot_pipelines.storage.database import get_engine
from coinpilot_pipelines.storage.schema import news_articles, news_item_rejects, news_polls, news_source_items
from coinpilot_pipelines_tests.news_helpers import Poller, feeds_on

UTC = timezone.utc
EVERGREEN = "https://cointelegraph.com/news/what-happened-in-crypto-today"


def articles(engine) -> list:  # noqa: ANN001
    with engine.connect() as connection:
        return connection.execute(select(news_articles).order_by(news_articles.c.id)).all()


def test_trimmed_cointelegraph_items_are_duplicates_of_the_full_poll(db_url: str, emulator) -> None:  # noqa: ANN001
    engine = get_engine(db_url)
    poller = Poller(emulator, engine, feeds_on(emulator, "cointelegraph", "cointelegraph-trimmed"))
    polls = poller.poll()
    assert polls["cointelegraph"].counts == {ItemKind.NEW: 30}
    assert polls["cointelegraph-trimmed"].counts == {ItemKind.DUPLICATE: 2}
    assert (polls["cointelegraph-trimmed"].raw_count, polls["cointelegraph-trimmed"].dedup_ratio) == (2, 0.0)
    stored = articles(engine)
    assert len(stored) == 30 and {a.source for a in stored} == {"cointelegraph"}
    with engine.connect() as connection:
        # Both sources remember delivering the two shared articles, so neither counts them again.
        shared = connection.execute(
            select(news_source_items.c.article_id).where(news_source_items.c.source == "cointelegraph-trimmed")
        ).scalars().all()
    assert sorted(a.title for a in stored if a.id in shared) == [
        "Figure Technology files ‘second IPO’ to bring native equity issuance to Solana",
        "Scaramucci predicts ‘exponential opportunity’ for crypto at LONGITUDE",
    ]
    poller.close()


def test_the_evergreen_article_in_four_polls_is_one_article_updated(db_url: str, emulator) -> None:  # noqa: ANN001
    """December's official poll (GUID without utm_*) then the three daily polls (GUID with utm_*),
    each with a new pubDate: one article, updated three times, with the newest pubDate."""
    engine = get_engine(db_url)
    poller = Poller(emulator, engine, feeds_on(emulator, "cointelegraph"))
    polls = [poller.poll()["cointelegraph"] for _ in range(4)]
    assert [dict(p.counts) for p in polls] == [
        {ItemKind.NEW: 30},
        {ItemKind.NEW: 9, ItemKind.UPDATED: 1},
        {ItemKind.NEW: 9, ItemKind.UPDATED: 1},
        {ItemKind.NEW: 9, ItemKind.UPDATED: 1},
    ]
    [evergreen] = [a for a in articles(engine) if a.canonical_url == EVERGREEN]
    assert evergreen.guid == EVERGREEN  # as first seen, in December, without utm_* parameters
    assert evergreen.published_at == datetime(2026, 2, 14, 22, 31, 39, tzinfo=UTC)
    assert evergreen.title == "Here’s what happened in crypto today"
    assert len(articles(engine)) == 57
    # The sequence is used up: the feed no longer changes and the server says so.
    assert poller.poll()["cointelegraph"].status == "not_modified"
    poller.close()


def test_same_release_under_two_urls_is_caught_by_the_title_hash(db_url: str, emulator) -> None:  # noqa: ANN001
    engine = get_engine(db_url)
    poller = Poller(emulator, engine, feeds_on(emulator, "prnewswire"))
    poll = poller.poll()["prnewswire"]
    assert dict(poll.counts) == {ItemKind.NEW: 18, ItemKind.DUPLICATE: 2}
    assert poll.dedup_ratio == 0.9
    titles = [a.title for a in articles(engine)]
    assert len(titles) == len(set(titles)) == 18
    poller.close()


def test_rerunning_polls_leaves_the_same_data(db_url: str, emulator) -> None:  # noqa: ANN001
    engine = get_engine(db_url)
    sources = ("coindesk", "cointelegraph", "decrypt", "theblock", "prnewswire", "cointelegraph-trimmed")
    first = Poller(emulator, engine, feeds_on(emulator, *sources))
    for _ in range(5):
        first.poll()
    before = [tuple(a) for a in articles(engine)]
    assert len(before) == 25 + 57 + 58 + 19 + 18
    # A fresh emulator state replays every source from its first poll: Cointelegraph's December
    # poll comes back (a changed feed, all of it delivered before); the others have not changed.
    emulator.set_scenario({})
    again = Poller(emulator, engine, feeds_on(emulator, *sources))
    replayed = again.poll()
    assert (replayed["cointelegraph"].status, replayed["cointelegraph"].counts) == ("ok", {ItemKind.UNCHANGED: 30})
    assert {p.status for source, p in replayed.items() if source != "cointelegraph"} == {"not_modified"}
    for _ in range(4):
        polls = again.poll()
        assert all(p.counts[ItemKind.NEW] == p.counts[ItemKind.UPDATED] == 0 for p in polls.values())
    assert [tuple(a) for a in articles(engine)] == before
    first.close()
    again.close()


def test_conditional_get_uses_the_stored_validators(db_url: str, emulator) -> None:  # noqa: ANN001
    engine = get_engine(db_url)
    poller = Poller(emulator, engine, feeds_on(emulator, "decrypt"))
    assert poller.poll()["decrypt"].status == "ok"
    second = poller.poll()["decrypt"]
    assert (second.status, second.http_status, second.raw_count) == ("not_modified", 304, 0)
    assert emulator.stats()["news_requests"] == {"decrypt": 2}
    poller.close()


def test_items_with_bad_dates_are_quarantined_once_and_the_rest_stored(db_url: str, emulator) -> None:  # noqa: ANN001
    engine = get_engine(db_url)
    emulator.set_scenario({"news": {"polls": {"coindesk": [{"feed": "coindesk", "items": [0, 1, 2], "bad_dates": [1]},
                                                           {"feed": "coindesk", "items": [0, 1, 2, 3], "bad_dates": [1]}]}}})
    poller = Poller(emulator, engine, feeds_on(emulator, "coindesk"))
    first, second = poller.poll()["coindesk"], poller.poll()["coindesk"]
    assert (dict(first.counts), first.rejected) == ({ItemKind.NEW: 2}, 1)
    assert (dict(second.counts), second.rejected) == ({ItemKind.NEW: 1, ItemKind.UNCHANGED: 2}, 1)
    with engine.connect() as connection:
        rejects = connection.execute(select(news_item_rejects)).all()
        rejected_counts = connection.execute(select(news_polls.c.rejected_count).order_by(news_polls.c.id)).scalars().all()
    assert [r.reason for r in rejects] == ["published date 'not a date' is not a date"]
    assert "Crypto Firm Tether Says It Wants to Take Over Italian Football Club Juventus" in rejects[0].raw_item
    assert rejected_counts == [1, 1]
    assert len(articles(engine)) == 3
    poller.close()


def test_bootstrap_stops_at_the_minimum_or_when_nothing_answers(sqlite_url: str, emulator) -> None:  # noqa: ANN001
    engine = get_engine(sqlite_url)
    pauses: list[float] = []
    with RssClient(timeout_s=2) as client:
        enough = ingest_news(client, engine, feeds_on(emulator, "cointelegraph"), clock=lambda: datetime.now(UTC),
                             bootstrap=BootstrapPolicy(min_articles=39, pause_s=0.25), sleep=pauses.append)
        assert (enough.bootstrapped, len(enough.rounds), enough.articles_stored) == (True, 2, 39)
        assert pauses == [0.25]
        # With articles stored, a run polls once.
        once = ingest_news(client, engine, feeds_on(emulator, "cointelegraph"), clock=lambda: datetime.now(UTC))
        assert (once.bootstrapped, len(once.rounds)) == (False, 1)

    emulator.set_scenario({"news": {"broken": {"decrypt": "empty_feed"}}})
    empty = get_engine(sqlite_url.replace("coinpilot.db", "other.db"))
    with RssClient(timeout_s=2) as client:
        nothing = ingest_news(client, empty, feeds_on(emulator, "decrypt"), clock=lambda: datetime.now(UTC),
                              bootstrap=BootstrapPolicy(pause_s=0), sleep=pauses.append)
    # The store stayed empty for two rounds: give up until the next scheduled poll.
    assert (len(nothing.rounds), nothing.articles_stored) == (2, 0)
    assert [r[0].status for r in nothing.rounds] == ["error", "backoff"]
