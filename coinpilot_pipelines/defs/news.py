"""The news assets: `news_articles` (poll, dedup, store) and `news_dedup_stats` (source health),
the health check, the polling job and its sensor."""

from datetime import datetime, timezone
from typing import Any

import dagster as dg
import pandas as pd

from coinpilot_pipelines.defs.resources import NO_CONFIG, DatabaseResource, NewsFeedsResource
from coinpilot_pipelines.news.dedup import ItemKind
from coinpilot_pipelines.news.health import FAILED_STATUSES
from coinpilot_pipelines.news.ingest import NewsIngestReport, ingest_news
from coinpilot_pipelines.news.stats import health_table, poll_table, recent_polls, source_health, update_dedup_stats

NEWS_GROUP = "news"
NEWS_JOB = "news_poll"
HEALTH_CHECK = "news_sources_healthy"
RECENT_POLLS_SHOWN = 30


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


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
def news_articles(context: dg.AssetExecutionContext, database: dg.ResourceParam[DatabaseResource],
                  news: dg.ResourceParam[NewsFeedsResource]) -> dg.MaterializeResult:
    engine = database.engine()
    feeds = news.feeds
    with news.client() as client:
        report = ingest_news(client, engine, feeds, clock=utc_now, backoff=news.backoff, bootstrap=news.bootstrap)
    for source, polls in report.per_source().items():
        failed = [p for p in polls if p.status == "error"]
        if failed:
            context.log.warning(f"{source}: {failed[-1].error}")
    context.log.info(f"{len(feeds)} feeds, {len(report.rounds)} poll round(s), "
                     f"{report.articles_stored} articles stored")
    return dg.MaterializeResult(metadata=news_articles_metadata(report))


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
def news_dedup_stats(context: dg.AssetExecutionContext, database: dg.ResourceParam[DatabaseResource],
                     news: dg.ResourceParam[NewsFeedsResource]) -> dg.MaterializeResult:
    engine = database.engine()
    evaluated = update_dedup_stats(engine, news.thresholds, computed_at=utc_now())
    sources = [feed.source for feed in news.feeds]
    summaries = source_health(engine, sources)
    flagged = {s.source: s.health.problems for s in summaries if s.health and s.health.problems}
    context.log.info(f"{evaluated} polls evaluated; {len(flagged)} of {len(summaries)} sources need attention")
    return dg.MaterializeResult(
        metadata={
            "polls_evaluated": evaluated,
            "sources": len(summaries),
            "sources_flagged": len(flagged),
            "per_source": dg.MetadataValue.md(health_table(summaries).to_markdown(index=False)),
            "recent_polls": dg.MetadataValue.md(
                poll_table(recent_polls(engine, sources, RECENT_POLLS_SHOWN)).to_markdown(index=False)
            ),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=HEALTH_CHECK,
                passed=not flagged,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"flagged_sources": dg.MetadataValue.json(flagged)},
            )
        ],
    )


news_poll_job = dg.define_asset_job(NEWS_JOB, selection=dg.AssetSelection.groups(NEWS_GROUP))


def build_news_sensor(poll_interval_s: int) -> dg.SensorDefinition:
    @dg.sensor(
        name="news_poll_sensor",
        job=news_poll_job,
        minimum_interval_seconds=poll_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Polls the news feeds every {poll_interval_s} s (NEWS_POLL_INTERVAL).",
    )
    def news_poll_sensor(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        # A slow poll must not pile runs up behind it.
        running = context.instance.get_run_records(
            filters=dg.RunsFilter(job_name=NEWS_JOB, statuses=[dg.DagsterRunStatus.QUEUED,
                                                               dg.DagsterRunStatus.STARTING,
                                                               dg.DagsterRunStatus.STARTED]),
            limit=1,
        )
        if running:
            return dg.SkipReason(f"news poll run {running[0].dagster_run.run_id} is still in progress")
        return dg.RunRequest()

    return news_poll_sensor
