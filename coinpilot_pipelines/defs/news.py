"""The news assets: `news_articles` (poll, dedup, store) and `news_dedup_stats` (source health),
the health check, the polling job and its sensor."""

import dataclasses
import logging
from typing import Any

import dagster as dg
import pandas as pd
from sqlalchemy import Engine

from coinpilot_pipelines.clock import Clock
from coinpilot_pipelines.defs.images import png_markdown
from coinpilot_pipelines.defs.resources import NO_CONFIG, DatabaseResource, NewsFeedsResource
from coinpilot_pipelines.news.dedup import ItemKind
from coinpilot_pipelines.news.health import FAILED_STATUSES
from coinpilot_pipelines.news.ingest import NewsIngestReport, ingest_news
from coinpilot_pipelines.news.stats import health_table, poll_table, recent_polls, source_health, update_dedup_stats
from coinpilot_pipelines.pictures.news import dedup_ratio_by_source

NEWS_GROUP = "news"
NEWS_JOB = "news_poll"
HEALTH_CHECK = "news_sources_healthy"
RECENT_POLLS_SHOWN = 30
CHARTED_POLLS = 600  # the window of the dedup picture: the latest polls of all sources together
TICK_BOOTSTRAP_BUDGET_S = 25.0
log = logging.getLogger(__name__)


def _per_source_table(report: NewsIngestReport) -> str:
    rows = []
    for source, polls in report.per_source().items():
        rows.append({
            "source": source,
            "polls": len(polls),
            "new": sum(p.counts[ItemKind.NEW] for p in polls),
            "updated": sum(p.counts[ItemKind.UPDATED] for p in polls),
            "duplicates": sum(p.counts[ItemKind.DUPLICATE] for p in polls),
            "unchanged": sum(p.counts[ItemKind.UNCHANGED] for p in polls),
            "rejected": sum(p.rejected for p in polls),
            "last status": polls[-1].status,
            "last fetch error": next((p.error for p in reversed(polls) if p.status == "error"), "-"),
        })
    return pd.DataFrame(rows).to_markdown(index=False)


def news_articles_metadata(report: NewsIngestReport) -> dict[str, Any]:
    polls = [p for round_polls in report.rounds for p in round_polls]
    return {
        "articles_new": sum(p.counts[ItemKind.NEW] for p in polls),
        "articles_updated": sum(p.counts[ItemKind.UPDATED] for p in polls),
        "duplicates": sum(p.counts[ItemKind.DUPLICATE] for p in polls),
        "items_rejected": sum(p.rejected for p in polls),
        "failed_polls": sum(p.status in FAILED_STATUSES for p in polls),
        "poll_rounds": len(report.rounds),
        "bootstrapped": report.bootstrapped,
        "articles_stored": report.articles_stored,
        "per_source": dg.MetadataValue.md(_per_source_table(report)),
    }


def poll_news(engine: Engine, news: NewsFeedsResource, clock: Clock,
              bootstrap_budget_s: float | None = None) -> dict[str, Any]:
    """One poll of every feed (the bootstrap's rounds on an empty store); the `news_articles` metadata."""
    bootstrap = dataclasses.replace(news.bootstrap, budget_s=bootstrap_budget_s)
    with news.client() as client:
        report = ingest_news(client, engine, news.feeds, clock=clock.now, backoff=news.backoff, bootstrap=bootstrap)
    for source, polls in report.per_source().items():
        failed = [p for p in polls if p.status == "error"]
        if failed:
            log.warning("%s: %s", source, failed[-1].error)
    log.info("%d feeds, %d poll round(s), %d articles stored", len(news.feeds), len(report.rounds),
             report.articles_stored)
    return news_articles_metadata(report)


def evaluate_news_health(engine: Engine, news: NewsFeedsResource, clock: Clock) -> tuple[dict[str, Any], dict]:
    """Evaluate every new poll into `news_dedup_stats`; its metadata and the sources that need attention."""
    evaluated = update_dedup_stats(engine, news.thresholds, computed_at=clock.now())
    sources = [feed.source for feed in news.feeds]
    summaries = source_health(engine, sources)
    flagged = {s.source: s.health.problems for s in summaries if s.health and s.health.problems}
    log.info("%d polls evaluated; %d of %d sources need attention", evaluated, len(flagged), len(summaries))
    metadata = {
        "polls_evaluated": evaluated,
        "sources": len(summaries),
        "sources_flagged": len(flagged),
        "per_source": dg.MetadataValue.md(health_table(summaries).to_markdown(index=False)),
        "recent_polls": dg.MetadataValue.md(
            poll_table(recent_polls(engine, sources, RECENT_POLLS_SHOWN)).to_markdown(index=False)),
    }
    return metadata, flagged


def health_check_fields(flagged: dict) -> dict[str, Any]:
    return {"check_name": HEALTH_CHECK, "passed": not flagged, "severity": dg.AssetCheckSeverity.WARN,
            "metadata": {"flagged_sources": dg.MetadataValue.json(flagged)}}


def dedup_ratio_chart(engine: Engine, news: NewsFeedsResource) -> dg.MetadataValue:
    history = recent_polls(engine, [feed.source for feed in news.feeds], CHARTED_POLLS)
    polls = pd.DataFrame([{"source": e.poll.source, "polled_at": e.poll.polled_at, "dedup_ratio": e.poll.dedup_ratio}
                          for e in history], columns=["source", "polled_at", "dedup_ratio"])
    span = f"{polls['polled_at'].min():%Y-%m-%d %H:%M} .. {polls['polled_at'].max():%Y-%m-%d %H:%M}" if len(polls) else "no poll"
    title = f"dedup ratio per source, last {len(polls)} polls ({span})"
    return png_markdown(dedup_ratio_by_source(polls, title=title), "dedup ratio per source")


@dg.asset(
    name="news_articles",
    config_schema=NO_CONFIG,
    group_name=NEWS_GROUP,
    kinds={"python", "sql"},
    description=(
        "Unique articles from the configured RSS/Atom feeds. An article is its canonical URL and its "
        "GUID (a normalized-title hash catches the same story under another URL); seen again with a "
        "newer pubDate it is updated, not added. Every poll of every source is recorded in news_polls; "
        "an empty store is bootstrapped with repeated polls."
    ),
)
def news_articles(database: dg.ResourceParam[DatabaseResource], news: dg.ResourceParam[NewsFeedsResource],
                  clock: dg.ResourceParam[Clock]) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata=poll_news(database.engine(), news, clock))


@dg.asset(
    name="news_dedup_stats",
    config_schema=NO_CONFIG,
    group_name=NEWS_GROUP,
    deps=[news_articles],
    kinds={"python", "sql"},
    description=(
        "Per source and per poll: raw and unique counts, dedup ratio, rolling ratio and its spread, "
        "stall (no new article for longer than the threshold), low-ratio and volatility anomalies, "
        "and a 0..1 health score."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            HEALTH_CHECK,
            asset="news_dedup_stats",
            description="WARN when a source is stalled, anomalous (low or volatile dedup ratio) or failing.",
        )
    ],
)
def news_dedup_stats(database: dg.ResourceParam[DatabaseResource], news: dg.ResourceParam[NewsFeedsResource],
                     clock: dg.ResourceParam[Clock]) -> dg.MaterializeResult:
    engine = database.engine()
    metadata, flagged = evaluate_news_health(engine, news, clock)
    # The run's materialization only: the sensor's per-tick reports stay light.
    metadata["dedup_ratio_chart"] = dedup_ratio_chart(engine, news)
    return dg.MaterializeResult(metadata=metadata, check_results=[dg.AssetCheckResult(**health_check_fields(flagged))])


news_poll_job = dg.define_asset_job(
    NEWS_JOB, selection=dg.AssetSelection.groups(NEWS_GROUP),
    description="Poll the feeds and evaluate source health in a run (the sensor does the same in its tick).")


def build_news_sensor(poll_interval_s: int) -> dg.SensorDefinition:
    @dg.sensor(
        name="news_poll_sensor",
        minimum_interval_seconds=poll_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Every {poll_interval_s} s (NEWS_POLL_INTERVAL): polls the feeds and evaluates source health "
                    "inside its tick, reported as news_articles and news_dedup_stats materializations and the "
                    "news_sources_healthy check, without a run per poll.",
    )
    def news_poll_sensor(database: dg.ResourceParam[DatabaseResource], news: dg.ResourceParam[NewsFeedsResource],
                         clock: dg.ResourceParam[Clock]) -> dg.SensorResult:
        # A poll every 90 s as a run would put 960 runs a day on the Runs page. In the tick, the
        # bootstrap of an empty store starts no round after TICK_BOOTSTRAP_BUDGET_S, so a tick
        # ends well inside Dagster's 60 s sensor deadline (each round is bounded by the feeds' timeout).
        engine = database.engine()
        articles = poll_news(engine, news, clock, bootstrap_budget_s=TICK_BOOTSTRAP_BUDGET_S)
        metadata, flagged = evaluate_news_health(engine, news, clock)
        return dg.SensorResult(asset_events=[
            dg.AssetMaterialization("news_articles", metadata={"source": "news_poll_sensor", **articles}),
            dg.AssetMaterialization("news_dedup_stats", metadata={"source": "news_poll_sensor", **metadata}),
            dg.AssetCheckEvaluation(asset_key=dg.AssetKey("news_dedup_stats"), **health_check_fields(flagged)),
        ])

    return news_poll_sensor
