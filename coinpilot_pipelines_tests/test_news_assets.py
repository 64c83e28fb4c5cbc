"""The news assets, their check and the polling sensor, run through Dagster."""

from __future__ import annotations

import dagster as dg
from dagster._core.test_utils import create_run_for_test

from coinpilot_pipelines.defs.news import HEALTH_CHECK, NEWS_JOB, build_news_sensor, news_articles, news_dedup_stats
from coinpilot_pipelines.emulator.feeds import DEFAULT_SOURCES
from coinpilot_pipelines.settings import Settings
from coinpilot_pipelines_tests.dagster_helpers import QUIET, news_resources, project_definitions

SOURCES = tuple(DEFAULT_SOURCES)


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
    assert sensor.minimum_interval_seconds == 120 and sensor.job_name == NEWS_JOB
    assert defs.resolve_job_def(NEWS_JOB).asset_layer.selected_asset_keys == {
        dg.AssetKey("news_articles"), dg.AssetKey("news_dedup_stats")}


def test_the_sensor_requests_a_poll_unless_one_is_still_running() -> None:
    sensor = build_news_sensor(90)
    with dg.instance_for_test() as instance:
        assert isinstance(sensor(dg.build_sensor_context(instance=instance)), dg.RunRequest)
        create_run_for_test(instance, job_name=NEWS_JOB, status=dg.DagsterRunStatus.STARTED)
        skipped = sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(skipped, dg.SkipReason) and "still in progress" in skipped.skip_message


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
