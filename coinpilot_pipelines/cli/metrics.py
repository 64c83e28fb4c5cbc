"""``coinpilot metrics``: the Prometheus exporter, computing every metric from the application database per scrape."""

from __future__ import annotations

import signal
import sys

import click
from prometheus_client import CollectorRegistry, start_http_server

from coinpilot_pipelines.clock import SYSTEM_CLOCK
from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.metrics.collector import CoinpilotCollector, ExporterConfig
from coinpilot_pipelines.settings import Settings
from coinpilot_pipelines.storage.database import get_engine


@click.command(help="Serve Prometheus metrics on http://HOST:PORT/metrics, read from the application database "
                    "(COINPILOT_DATABASE_URL) at every scrape. SIGTERM or Ctrl-C stops it.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9108, show_default=True, type=click.IntRange(1, 65535))
def metrics(host: str, port: int) -> None:
    settings = Settings.from_env()
    engine = get_engine(settings.database_url)
    config = ExporterConfig(
        series=[SeriesKey(settings.market_exchange, symbol, settings.interval) for symbol in settings.symbols],
        start_date=settings.start_date, daily_loss_limit=settings.trading.daily_loss_limit)
    # A registry of its own: the exporter serves the project's metrics, not this process's.
    registry = CollectorRegistry()
    registry.register(CoinpilotCollector(engine, config, SYSTEM_CLOCK))
    server, thread = start_http_server(port, addr=host, registry=registry)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    click.echo(f"serving Prometheus metrics on http://{host}:{server.server_port}/metrics (Ctrl-C to stop)")
    try:
        thread.join()
    finally:
        server.shutdown()
        server.server_close()
        engine.dispose()
