"""Polling the emulator's feeds at deterministic times, the emulator's clock in step."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine

from coinpilot_pipelines.clients.rss import RssClient
from coinpilot_pipelines.emulator.server import Emulator
from coinpilot_pipelines.news.health import HealthThresholds, PollHealth
from coinpilot_pipelines.news.ingest import SourcePoll, poll_feeds
from coinpilot_pipelines.news.model import NewsFeed
from coinpilot_pipelines.news.stats import update_dedup_stats
from coinpilot_pipelines.storage.news import poll_history

T0 = datetime(2026, 2, 20, 12, 0, tzinfo=timezone.utc)


def feeds_on(emulator: Emulator, *sources: str) -> list[NewsFeed]:
    return [NewsFeed(source, f"{emulator.url}/rss/{source}") for source in sources]


class Poller:
    """Polls every ``interval_s`` of simulated time from `T0` and evaluates the stats after each."""

    def __init__(self, emulator: Emulator, engine: Engine, feeds: list[NewsFeed], *, interval_s: float = 90,
                 thresholds: HealthThresholds = HealthThresholds(), timeout_s: float = 2.0) -> None:
        self.emulator, self.engine, self.feeds = emulator, engine, feeds
        self.interval_s, self.thresholds = interval_s, thresholds
        self.client = RssClient(timeout_s=timeout_s, retry_delay_s=0.01)
        self.now = T0

    def poll(self) -> dict[str, SourcePoll]:
        self.emulator.clock.freeze(int(self.now.timestamp() * 1000))
        polls = poll_feeds(self.client, self.engine, self.feeds, now=self.now)
        update_dedup_stats(self.engine, self.thresholds, computed_at=self.now)
        self.now += timedelta(seconds=self.interval_s)
        return {poll.source: poll for poll in polls}

    def health(self, source: str) -> list[PollHealth]:
        """The stats of every poll of ``source`` so far, oldest first."""
        return [entry.health for entry in poll_history(self.engine, [source], limit=10_000) if entry.health]

    def close(self) -> None:
        self.client.close()
