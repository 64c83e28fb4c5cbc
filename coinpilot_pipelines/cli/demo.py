"""``coinpilot demo``: the pipeline end to end on the embedded defaults, talking to the emulator."""

from __future__ import annotations

import logging
import time
from datetime import date, timedelta

import click
import dagster as dg
import pandas as pd

from coinpilot_pipelines.cli.environment import LocalEnvironment, local_environment
from coinpilot_pipelines.cli.runs import execute
from coinpilot_pipelines.clock import TICK_AFTER_CLOSE, SimulatedClock
from coinpilot_pipelines.defs import build_definitions, news_resource
from coinpilot_pipelines.defs.news import NEWS_JOB
from coinpilot_pipelines.defs.partitions import day_start, partition_range_tags
from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.news.ingest import BootstrapPolicy
from coinpilot_pipelines.news.stats import health_table, source_health
from coinpilot_pipelines.storage.candles import count_rejects, window_summary
from coinpilot_pipelines.storage.database import get_engine
from coinpilot_pipelines.storage.news import count_articles
from coinpilot_pipelines.storage.trading import closed_trades
from coinpilot_pipelines.trading.executor import decisions_table

# The bundled BTCUSDT recording covers 2023-03-01..21, the USDC de-peg weekend included, so the
# demo shows real market data (other symbols come from the synthetic market). All 21 days by
# default: a model has to beat climatology on its held-out days to become champion, and a
# few days are too few to show that (see ml/promotion.py).
DEMO_FIRST_DAY = date(2023, 3, 1)
DEMO_DAYS = 21


def run_demo(days: int) -> None:
    started = time.monotonic()
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # its INFO lines would drown the summary
    with local_environment() as environment:
        click.echo(f"coinpilot demo: home {environment.settings.home}")
        click.echo(f"  exchange emulator on {environment.emulator_url} (bundled real + synthetic data)")
        definitions = build_definitions(environment.settings)
        instance = dg.DagsterInstance.get()
        last_day = DEMO_FIRST_DAY + timedelta(days=days - 1)
        _materialize_candles(environment, definitions, instance, last_day)
        _print_candle_summary(environment, last_day)
        _train_and_calibrate(definitions, instance)
        _run_executor(environment, instance, last_day)
        _materialize_news(environment, definitions, instance)
        _print_news_summary(environment)
    click.echo(f"\ndone in {time.monotonic() - started:.1f} s. See the runs, lineage and metadata in the UI:")
    click.echo("  coinpilot ui      # then open http://127.0.0.1:3000")


def _materialize_candles(environment: LocalEnvironment, definitions: dg.Definitions,
                         instance: dg.DagsterInstance, last_day: date) -> None:
    job = definitions.resolve_implicit_global_asset_job_def()
    for symbol in environment.settings.symbols:
        click.echo(f"  candles + features {symbol} {DEMO_FIRST_DAY} .. {last_day}: materializing through Dagster ...")
        result = execute(job, instance, asset_selection=[dg.AssetKey("candles"), dg.AssetKey("features")],
                          tags=partition_range_tags(DEMO_FIRST_DAY, last_day, symbol))
        click.echo(f"    run {result.run_id} succeeded")


def _materialize_news(environment: LocalEnvironment, definitions: dg.Definitions,
                      instance: dg.DagsterInstance) -> None:
    click.echo("  news_articles, news_dedup_stats from the bundled feeds: materializing through Dagster ...")
    # The bootstrap of the empty store replays every poll the emulator has, without pausing.
    result = execute(definitions.resolve_job_def(NEWS_JOB), instance,
                      resources={"news": news_resource(environment.settings, bootstrap=BootstrapPolicy(pause_s=0.0))})
    click.echo(f"    run {result.run_id} succeeded")


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    event = next(e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset))
    return {key: value.value for key, value in event.materialization.metadata.items()}


def _train_and_calibrate(definitions: dg.Definitions, instance: dg.DagsterInstance) -> None:
    click.echo("\n  signal_model: training on all symbols, registering in MLflow, promotion step ...")
    model = _metadata(execute(definitions.resolve_job_def("retrain_job"), instance), "signal_model")
    click.echo(f"    model version {model['model_version']}, held-out {model['test_window']}, "
               f"{model['train_rows']} training / {model['test_rows']} held-out bars")
    click.echo("    held-out scores beside the baselines (brier_skill: against climatology, the training up-rate):")
    click.echo(model["metrics"])
    if not model["champion_version"]:
        click.echo("    no model beat the climatology baseline: there is no champion, and the model strategy stays idle")
        click.echo(f"    version {model['model_version']}: {model['promotion_reason']}")
        click.echo("    scoring and calibration need a champion: skipped")
        return
    status = "is the champion" if model["promoted"] else f"stays challenger; champion is v{model['champion_version']}"
    click.echo(f"    version {model['model_version']} {status}: {model['promotion_reason']}")

    click.echo("\n  inference_log + calibration_report: scoring with the champion, measuring calibration ...")
    calibration = execute(definitions.resolve_job_def("calibration_job"), instance)
    scored, report = _metadata(calibration, "inference_log"), _metadata(calibration, "calibration_report")
    click.echo(f"    scored {scored['scored']} bars, {scored['realized']} outcomes realized")
    click.echo(report["calibration"])
    verdict = "retrain recommended" if report["recommend_retrain"] else "no retrain needed"
    click.echo(f"    calibration report {report['report_id']}: {verdict} ({report['reason']})")


def _run_executor(environment: LocalEnvironment, instance: dg.DagsterInstance, last_day: date) -> None:
    """Replay the last demo day through the order executor, every few hours, in shadow mode. Each
    run happens on a clock set just after the bar it looks at closed, as it would live: signals of
    that moment are carried to an end, older ones have outlived their time-to-live."""
    click.echo("\n  order_executor_job (shadow mode: no exchange call), replaying the last day every 4 hours ...")
    interval = environment.settings.interval.delta
    clock = SimulatedClock(day_start(last_day))
    job = build_definitions(environment.settings, clock).resolve_job_def("order_executor_job")
    for hour in range(4, 25, 4):
        up_to = day_start(last_day) + timedelta(hours=hour) - interval
        clock.set(up_to + interval + TICK_AFTER_CLOSE)
        execute(job, instance, run_config={"ops": {
            "resolve_trading_mode": {"config": {"mode": "shadow"}},
            "collect_signals": {"config": {"up_to": up_to.isoformat()}}}})
    engine = get_engine(environment.settings.database_url)
    table = decisions_table(engine)
    if table.empty:
        click.echo("    no signal in the replayed day")
        return
    shown = table.assign(bar=table["bar_open_time"].map(lambda t: f"{t:%m-%d %H:%M}"))
    columns = ["symbol", "strategy", "action", "bar", "decision", "status", "status_reason"]
    click.echo(shown[[c for c in columns if c in shown.columns]].fillna("").to_markdown(index=False))
    trades = closed_trades(engine)
    if not trades.empty:
        click.echo(f"    {len(trades)} paper trades closed, realized PnL {trades['pnl'].sum():.4f} (quote currency)")


def _print_candle_summary(environment: LocalEnvironment, last_day: date) -> None:
    settings = environment.settings
    engine = get_engine(settings.database_url)
    start, end = day_start(DEMO_FIRST_DAY), day_start(last_day + timedelta(days=1))
    rows = []
    for symbol in settings.symbols:
        series = SeriesKey(settings.market_exchange, symbol, settings.interval)
        summary = window_summary(engine, series, start, end)
        expected = settings.interval.bars_between(int(start.timestamp() * 1000), int(end.timestamp() * 1000))
        rows.append(
            {
                "symbol": symbol,
                "bars stored": summary.present_bars,
                "expected": expected,
                "completeness %": round(100 * summary.present_bars / expected, 2),
                "rejects": count_rejects(engine, series, start, end),
                "first bar (UTC)": f"{summary.first_open_time:%Y-%m-%d %H:%M}" if summary.first_open_time else "-",
                "last bar (UTC)": f"{summary.last_open_time:%Y-%m-%d %H:%M}" if summary.last_open_time else "-",
            }
        )
    click.echo("\ncandles")
    click.echo(pd.DataFrame(rows).to_markdown(index=False))


def _print_news_summary(environment: LocalEnvironment) -> None:
    engine = get_engine(environment.settings.database_url)
    sources = [feed.source for feed in environment.settings.news_feeds]
    click.echo(f"\nnews: {count_articles(engine)} unique articles; per source, totals over all polls and "
               "health as of the latest poll")
    click.echo(health_table(source_health(engine, sources)).to_markdown(index=False))
