"""The ``coinpilot`` subcommands. Each prints progress on long work; failures end in `main`."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
from datetime import date, datetime
from pathlib import Path

import click

from coinpilot_pipelines.cli.demo import DEMO_DAYS, run_demo
from coinpilot_pipelines.cli.environment import local_environment
from coinpilot_pipelines.clock import parse_utc_time
from coinpilot_pipelines.defs.pools import apply_pool_limits, pool_limits
from coinpilot_pipelines.emulator.scenarios import PRESETS, load_scenario
from coinpilot_pipelines.emulator.server import Emulator
from coinpilot_pipelines.emulator.symbols import DEFAULT_BINANCE, DEFAULT_UPBIT, ServedSymbols
from coinpilot_pipelines.processes import StopRequested, start_session, stop_on_signals, stop_sessions
from coinpilot_pipelines.settings import Settings, exchange_pool_limit, validate_symbol
from coinpilot_pipelines.storage.database import create_database_engine, upgrade


class IsoDate(click.ParamType):
    """A calendar date written YYYY-MM-DD; a bad one is refused naming the option."""

    name = "YYYY-MM-DD"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            self.fail(f"{text!r} is not a date (YYYY-MM-DD)", param, ctx)
        try:
            date.fromisoformat(text)
        except ValueError as exc:
            self.fail(f"{text!r} is not a date: {exc}", param, ctx)
        return text


class UtcTime(click.ParamType):
    """An ISO-8601 time with its UTC offset; a bad one is refused naming the option."""

    name = "ISO-TIME"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        try:
            return parse_utc_time(str(value), "time")
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@click.command(help="Run the pipeline end to end on the embedded defaults against the bundled emulator.")
@click.option("--days", default=DEMO_DAYS, show_default=True, type=click.IntRange(1, 31),
              help="Days of 1m candles per symbol.")
def demo(days: int) -> None:
    run_demo(days=days)


@click.command(help="Start the Dagster UI (dagster dev) and the MLflow UI on the demo's home, with the emulator "
                    "running. Ctrl-C or SIGTERM stops all of it.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3000, show_default=True, type=int)
@click.option("--mlflow-port", default=5000, show_default=True, type=int,
              help="The MLflow UI on the same store (when the store is the local one).")
def ui(host: str, port: int, mlflow_port: int) -> None:
    stop_on_signals()
    with local_environment() as environment:
        settings = environment.settings
        click.echo(f"emulator on {environment.emulator_url}; Dagster home {environment.dagster_home}")
        started = [start_session(
            [sys.executable, "-m", "dagster", "dev", "-m", "coinpilot_pipelines.definitions", "-h", host, "-p", str(port)],
            env=os.environ.copy(),
            cwd=environment.dagster_home,  # the instance is DAGSTER_HOME's, not a dagster.yaml in the cwd
        )]
        if settings.mlflow_tracking_uri.startswith("sqlite"):
            started.append(start_session(
                [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", settings.mlflow_tracking_uri,
                 "--no-serve-artifacts", "--host", host, "--port", str(mlflow_port), "--workers", "1"],
                # Without its job runner: seven queue consumers for GenAI jobs this project never submits,
                # whose jobs start sessions of their own that stopping this session would not reach.
                env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, cwd=settings.home))
            click.echo(f"the MLflow UI on http://{host}:{mlflow_port}")
        click.echo(f"opening the Dagster UI on http://{host}:{port} (Ctrl-C to stop)")
        try:
            code = started[0].wait()
        except StopRequested:
            code = 0
        finally:
            stop_sessions(started)
        if code not in (0, 130, -2):
            raise RuntimeError(f"dagster dev exited with code {code}")


@click.command(help="Serve the emulator (Binance and Upbit market data, Upbit orders, the bundled news feeds) on loopback.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=int)
@click.option("--scenario", default=None,
              help=f"A preset ({', '.join(PRESETS)}), a JSON object, or a JSON file of faults to play.")
@click.option("--symbols", default=None,
              help="Comma list of the symbols to serve (Binance BTCUSDT, Upbit KRW-BTC); default: "
                   f"{','.join(DEFAULT_BINANCE + DEFAULT_UPBIT)}. Any other is an unknown symbol.")
def emulator(host: str, port: int, scenario: str | None, symbols: str | None) -> None:
    try:
        served = ServedSymbols.parse(symbols) if symbols is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--symbols") from None
    server = Emulator(host=host, port=port, scenario=load_scenario(scenario), symbols=served)
    # Stop on SIGTERM whatever disposition was inherited: a parent that ignores SIGTERM (as Dagster
    # leaves one whose SIGINT was ignored) would otherwise leave an emulator nobody can stop politely.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    click.echo(f"emulator serving on {server.url} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    finally:
        server.stop()


@click.command(help="Run a live period on simulated time on the embedded defaults: backfill the history, train, "
                    "then move one clock bar by bar while the project's sensors and schedules run as the daemon "
                    "would run them. Prints the invariant figures at the end.")
@click.option("--start", required=True, type=UtcTime(), help="Where the live period starts, e.g. 2023-03-20T00:00Z.")
@click.option("--hours", required=True, type=click.IntRange(1, 24 * 7))
@click.option("--symbols", default="BTCUSDT", show_default=True, help="Comma list of symbols.")
@click.option("--scenario", default=None, help=f"A preset ({', '.join(PRESETS)}), a JSON object or a JSON file.")
@click.option("--history-days", default=7, show_default=True, type=click.IntRange(1, 365),
              help="Days backfilled (and trained on) before --start.")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Also write the figures here.")
def simulate(start: datetime, hours: int, symbols: str, scenario: str | None, history_days: int,
             json_path: str | None) -> None:
    from coinpilot_pipelines.simulation.run import Period, simulate as run_simulation

    chosen = tuple(validate_symbol(s.strip(), source="--symbols") for s in symbols.split(",") if s.strip())
    period = Period(start, hours, history_days, chosen)
    home = Settings.from_env().home
    click.echo(f"simulating {hours} h from {start:%Y-%m-%d %H:%M} UTC for {', '.join(chosen)} "
               f"({history_days} days of history) in {home / 'simulation'}")
    # A line per signal for a day of bars would bury the progress bar; warnings still show.
    logging.getLogger("dagster").setLevel(logging.WARNING)
    with click.progressbar(length=hours * 60, label="bars", file=sys.stderr) as bar:
        figures = run_simulation(period, load_scenario(scenario), home,
                                 progress=lambda done, _total: bar.update(done - bar.pos))
    text = json.dumps(figures, indent=2, default=str)
    click.echo(text)
    if json_path:
        Path(json_path).write_text(text + "\n")


@click.group(help="Application database maintenance.")
def db() -> None:
    pass


@click.group(help="The Dagster instance (DAGSTER_HOME).")
def instance() -> None:
    pass


@instance.command(name="pools", help="Set the pool limits: exchange_api to EXCHANGE_API_POOL_LIMIT (default 4), "
                                     "orders to 1. Part of the deploy step (docker/init.sh).")
def instance_pools_command() -> None:
    import dagster as dg

    limits = pool_limits(exchange_pool_limit())
    with dg.DagsterInstance.get() as dagster_instance:
        for line in apply_pool_limits(dagster_instance, limits):
            click.echo(line)


@db.command(name="upgrade", help="Migrate the application database to the newest schema (idempotent).")
@click.option("--dsn", default=None, help="Database URL; defaults to COINPILOT_DATABASE_URL or the SQLite file.")
def upgrade_command(dsn: str | None) -> None:
    url = dsn or Settings.from_env().database_url
    engine = create_database_engine(url)
    try:
        revision = upgrade(engine)
    finally:
        engine.dispose()
    click.echo(f"database {engine.url.render_as_string(hide_password=True)} is at revision {revision}")



@click.command(name="continuity-scan", help="Scan [end - days, end) at 00:00 UTC for missing bars, in SQL.")
@click.option("--symbol", required=True, help="e.g. BTCUSDT")
@click.option("--interval", default="1m", show_default=True)
@click.option("--days", default=365, show_default=True, type=click.IntRange(1, 3660))
@click.option("--end", default=None, type=IsoDate(), help="YYYY-MM-DD (exclusive); default: today")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Also write the report here.")
@click.option("--auto-insert-missing", is_flag=True, help="Register gaps not yet known as segments for repair.")
@click.option("--dsn", default=None, help="Database URL; defaults to COINPILOT_DATABASE_URL or the SQLite file.")
def continuity_scan(symbol: str, interval: str, days: int, end: str | None, json_path: str | None,
                    auto_insert_missing: bool, dsn: str | None) -> None:
    from coinpilot_pipelines.cli.scan import run_continuity_scan

    report = run_continuity_scan(symbol=symbol, interval=interval, days=days, end=end, dsn=dsn,
                                 auto_insert_missing=auto_insert_missing)
    text = json.dumps(report, indent=2)
    click.echo(text)
    if json_path:
        Path(json_path).write_text(text + "\n")
