"""The news assets, their check and the polling sensor, run through Dagster."""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg

from coinpilot_pipelines.clients.rss import RssClient
from coinpilot_pipelines.defs.news import HEALTH_CHECK, NEWS_JOB, build_news_sensor, news_articles, news_dedup_stats
from coinpilot_pipelines.news.ingest import BootstrapPolicy, NewsIngestReport, ingest_news
from coinpilot_pipelines.news.model import NewsFeed
from coinpilot_pipelines.storage.database import get_engine
from coinpilot_pipelines.emulator.feeds import DEFAULT_SOURCES
from coinpilot_pipelines.settings import Settings
from coinpilot_pipelines_tests.dagster_helpers import QUIET, news_resources, project_definitions
from coinpilot_pipelines_tests.picture_helpers import decoded, inline_png

SOURCES = tuple(DEFAULT_SOURCES)


def ingest_news_with_budget(db: str, emulator, monotonic, budget_s: float) -> NewsIngestReport:  # noqa: ANN001
    feeds = [NewsFeed(source, f"{emulator.url}/rss/{source}") for source in SOURCES]
    with RssClient(timeout_s=2) as client:
        return ingest_news(client, get_engine(db), feeds, clock=lambda: datetime.now(timezone.utc),
                           bootstrap=BootstrapPolicy(pause_s=0, budget_s=budget_s), sleep=lambda _: None,
                           monotonic=monotonic)


def materialize_news(resources: dict[str, object], instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return dg.materialize([news_articles, news_dedup_stats], resources=resources, instance=instance, run_config=QUIET)


def metadata_of(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    return event.materialization.metadata


def test_news_assets_bootstrap_an_empty_store_then_poll_once(sqlite_url: str, emulator) -> None:  # noqa: ANN001
    instance = dg.DagsterInstance.ephemeral()
    resources = news_resources(sqlite_url, emulator.url, *SOURCES)
    first = materialize_news(resources, instance)
    assert first.success
    articles = metadata_of(first, "news_articles")
    # Cointelegraph's four polls grow the store; two more rounds without growth end the bootstrap.
    assert articles["bootstrapped"].value is True and articles["poll_rounds"].value == 6
    assert (articles["articles_new"].value, articles["articles_updated"].value, articles["duplicates"].value) == \
        (177, 3, 4)
    assert articles["articles_stored"].value == 177
    per_source = articles["per_source"].value
    assert "| cointelegraph-trimmed |       6 |     0 |         0 |            2 |" in per_source
    stats = metadata_of(first, "news_dedup_stats")
    assert stats["polls_evaluated"].value == 6 * len(SOURCES)
    assert "| prnewswire            |       6 |    20 |    18 |         0 |            2 |" in stats["per_source"].value
    assert "recent_polls" in stats
    decoded(inline_png(stats["dedup_ratio_chart"].value))
    [check] = first.get_asset_check_evaluations()
    assert (check.check_name, check.passed) == (HEALTH_CHECK, True)

    again = materialize_news(resources, instance)
    assert again.success
    assert metadata_of(again, "news_articles")["bootstrapped"].value is False
    assert metadata_of(again, "news_articles")["poll_rounds"].value == 1
    assert metadata_of(again, "news_articles")["articles_new"].value == 0
    assert metadata_of(again, "news_dedup_stats")["polls_evaluated"].value == len(SOURCES)


def test_the_health_check_warns_for_an_anomalous_or_failing_source(sqlite_url: str, emulator) -> None:  # noqa: ANN001
    # A mirror re-serving CoinDesk's items: every poll is all duplicates, a low-ratio streak.
    mirror = [{"feed": "coindesk", "items": [i, i + 1]} for i in (0, 2, 4)]
    emulator.set_scenario({"news": {"broken": {"theblock": "html_page"}, "polls": {"mirror": mirror}}})
    resources = news_resources(sqlite_url, emulator.url, "coindesk", "theblock", "mirror")
    result = materialize_news(resources, dg.DagsterInstance.ephemeral())
    assert result.success, "a failing source is a warning, not a failed run"
    assert metadata_of(result, "news_articles")["poll_rounds"].value == 3
    [check] = result.get_asset_check_evaluations()
    assert check.passed is False and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["flagged_sources"].value == {"theblock": ["failing"], "mirror": ["low dedup ratio"]}
    assert "an HTML page instead of a feed" in metadata_of(result, "news_articles")["per_source"].value


def test_news_definitions_load_with_lineage_check_and_sensor(sqlite_url: str, emulator) -> None:  # noqa: ANN001
    defs = project_definitions(sqlite_url, emulator.url, NEWS_POLL_INTERVAL="120")
    stats = defs.resolve_assets_def("news_dedup_stats")
    assert stats.asset_deps[dg.AssetKey("news_dedup_stats")] == {dg.AssetKey("news_articles")}
    assert {spec.name for spec in stats.check_specs} == {HEALTH_CHECK}
    assert {defs.resolve_assets_def(k).group_names_by_key[dg.AssetKey(k)]
            for k in ("news_articles", "news_dedup_stats")} == {"news"}
    sensor = defs.resolve_sensor_def("news_poll_sensor")
    assert sensor.minimum_interval_seconds == 120 and not sensor.targets  # it polls in its tick: no runs
    assert defs.resolve_job_def(NEWS_JOB).asset_layer.selected_asset_keys == {
        dg.AssetKey("news_articles"), dg.AssetKey("news_dedup_stats")}


def test_the_sensor_polls_and_reports_in_its_tick_without_a_run(sqlite_url: str, emulator) -> None:  # noqa: ANN001
    sensor = build_news_sensor(90)
    resources = news_resources(sqlite_url, emulator.url, *SOURCES)
    with dg.instance_for_test() as instance:
        first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=resources))
        again = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=resources))
        assert instance.get_runs() == []
    for tick in (first, again):
        assert tick.run_requests == []
        articles, stats, check = tick.asset_events
        assert (articles.asset_key, stats.asset_key) == (dg.AssetKey("news_articles"), dg.AssetKey("news_dedup_stats"))
        assert (check.check_name, check.passed) == (HEALTH_CHECK, True)
    # The first tick bootstraps the empty store within its budget; the next is one poll.
    assert first.asset_events[0].metadata["bootstrapped"].value is True
    assert first.asset_events[0].metadata["articles_stored"].value == 177
    assert again.asset_events[0].metadata["poll_rounds"].value == 1
    assert again.asset_events[1].metadata["polls_evaluated"].value == len(SOURCES)


def test_the_bootstrap_in_a_tick_stops_starting_rounds_at_its_budget(sqlite_url: str, emulator) -> None:  # noqa: ANN001
    clock = iter(range(0, 1000, 10))  # each look at the clock: 10 s later
    report = ingest_news_with_budget(sqlite_url, emulator, lambda: next(clock), budget_s=25)
    # Rounds start at 0, 10 and 20 s; none at 30 s, past the budget (a full bootstrap takes 6).
    assert report.bootstrapped and len(report.rounds) == 3


def test_news_feeds_default_to_the_bundled_feeds_and_take_names() -> None:
    default = Settings.from_env({"COINPILOT_NEWS_BASE_URL": "http://127.0.0.1:9000"})
    assert [(f.source, f.url) for f in default.news_feeds][:2] == [
        ("coindesk", "http://127.0.0.1:9000/rss/coindesk"), ("cointelegraph", "http://127.0.0.1:9000/rss/cointelegraph")]
    assert (default.news_poll_interval_s, default.news_health.stall_after_s, default.news_health.min_ratio) == \
        (90, 900, 0.15)
    configured = Settings.from_env({"NEWS_RSS_FEEDS": "https://www.coindesk.com/arc/outboundfeeds/rss/, "
                                                      "ct=https://cointelegraph.com/rss?token=s3cret"})
    assert [(f.source, f.url) for f in configured.news_feeds] == [
        ("coindesk.com", "https://www.coindesk.com/arc/outboundfeeds/rss/"),
        ("ct", "https://cointelegraph.com/rss?token=s3cret")]
    assert configured.news_feeds[1].display_url == "https://cointelegraph.com/rss"
