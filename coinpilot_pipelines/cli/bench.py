"""``coinpilot bench``: each benchmark beside its yardstick, printed as the README's table."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import click

from coinpilot_pipelines.bench import BenchRow


def _print_table(rows: list[BenchRow]) -> str:
    lines = ["| bench | measurement | value | target | met |", "|---|---|---:|---|---|"]
    for row in rows:
        met = "" if row.met is None else ("yes" if row.met else "NO")
        lines.append(f"| {row.bench} | {row.measurement} | {row.formatted()} | {row.target} | {met} |")
    table = "\n".join(lines)
    click.echo("\n" + table)
    return table


def _run(name: str, days: int, dsn: str | None, measure: Callable[..., list[BenchRow]]) -> list[BenchRow]:
    from coinpilot_pipelines.bench.environment import machine_description

    click.echo(f"coinpilot bench {name}: {days} days, on {machine_description()}")
    return measure(days, dsn, click.echo)


def _options(function: Callable) -> Callable:
    function = click.option("--dsn", default=None, help="A PostgreSQL URL; default: a throwaway local cluster.")(function)
    return click.option("--days", default=365, show_default=True, type=click.IntRange(1, 3660))(function)


@click.group(invoke_without_command=True,
             help="Measure throughput beside yardsticks taken in the same run (PostgreSQL). Without a "
                  "subcommand: every benchmark, and the table written to --out.")
@click.option("--out", default="bench-results.md", show_default=True, type=click.Path(dir_okay=False),
              help="Where the full run writes its table.")
@click.option("--dsn", default=None, help="A PostgreSQL URL; default: a throwaway local cluster.")
@click.pass_context
def bench(context: click.Context, out: str, dsn: str | None) -> None:
    if context.invoked_subcommand is not None:
        return
    from coinpilot_pipelines.bench.environment import machine_description
    from coinpilot_pipelines.bench.features import bench_features
    from coinpilot_pipelines.bench.ingest import bench_ingest
    from coinpilot_pipelines.bench.pictures import bench_pictures
    from coinpilot_pipelines.bench.scale import bench_scale
    from coinpilot_pipelines.bench.scan import bench_scan
    from coinpilot_pipelines.bench.sensor import bench_sensor

    rows: list[BenchRow] = []
    for name, days, measure in (("ingest", 365, bench_ingest), ("scan", 365, bench_scan),
                                ("features", 365, bench_features), ("sensor", 1, bench_sensor),
                                ("scale", 30, bench_scale), ("pictures", 365, bench_pictures)):
        rows += _run(name, days, dsn, measure)
    table = _print_table(rows)
    machine = machine_description()
    Path(out).write_text(f"Machine: {machine}\n\n{table}\n")
    click.echo(f"\nwritten to {out}")


@bench.command(name="ingest", help="Backfill N days of 1m bars from the emulator into PostgreSQL, beside raw COPY.")
@_options
def bench_ingest_command(days: int, dsn: str | None) -> None:
    from coinpilot_pipelines.bench.ingest import bench_ingest

    _print_table(_run("ingest", days, dsn, bench_ingest))


@bench.command(name="scan", help="The continuity scan of one symbol beside a bare count(*) of the same rows.")
@_options
def bench_scan_command(days: int, dsn: str | None) -> None:
    from coinpilot_pipelines.bench.scan import bench_scan

    _print_table(_run("scan", days, dsn, bench_scan))


@bench.command(name="features", help="The feature set over N days of 1m bars of one symbol (in memory).")
@_options
def bench_features_command(days: int, dsn: str | None) -> None:
    from coinpilot_pipelines.bench.features import bench_features

    _print_table(_run("features", days, dsn, bench_features))


@bench.command(name="sensor", help="One live_kline_sensor tick over a watch list of N symbols (PostgreSQL).")
@_options
@click.option("--symbols", default=10, show_default=True, type=click.IntRange(1, 1000),
              help="How many symbols the sensor watches (beyond the ten known ones the emulator makes up bars).")
def bench_sensor_command(days: int, dsn: str | None, symbols: int) -> None:
    from coinpilot_pipelines.bench.sensor import bench_sensor

    _print_table(_run("sensor", days, dsn, functools.partial(bench_sensor, symbols=symbols)))


@bench.command(name="pictures", help="What drawing each picture costs, over N days of 1m bars (in memory).")
@_options
def bench_pictures_command(days: int, dsn: str | None) -> None:
    from coinpilot_pipelines.bench.pictures import bench_pictures

    _print_table(_run("pictures", days, dsn, bench_pictures))


@bench.command(name="scale", help="Ten symbols x N days backfilled by 1, 2 and 4 parallel runs (PostgreSQL).")
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 366))
@click.option("--dsn", default=None, help="A PostgreSQL URL; default: a throwaway local cluster.")
def bench_scale_command(days: int, dsn: str | None) -> None:
    from coinpilot_pipelines.bench.scale import bench_scale

    _print_table(_run("scale", days, dsn, bench_scale))


@bench.command(name="live", help="The live chain in real time under the coinpilot ui daemon against the emulator: "
                                 "bar close -> stored -> scored -> order decision, beside bare klines requests.")
@click.option("--days", default=14, show_default=True, type=click.IntRange(2, 20),
              help="Recorded days of BTCUSDT the first model is trained on.")
@click.option("--symbols", default=10, show_default=True, type=click.IntRange(1, 10),
              help="How many of the emulator's ten USDT symbols the sensor watches.")
@click.option("--minutes", default=4, show_default=True, type=click.IntRange(1, 120),
              help="Live minutes measured (after one minute of warm-up).")
@click.option("--dsn", default=None, help="A database URL for the application tables; default: the SQLite file.")
def bench_live_command(days: int, symbols: int, minutes: int, dsn: str | None) -> None:
    from coinpilot_pipelines.bench.live import bench_live

    _print_table(_run("live", days, dsn, functools.partial(bench_live, symbols=symbols, minutes=minutes)))
