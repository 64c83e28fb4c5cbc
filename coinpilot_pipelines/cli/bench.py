"""``coinpilot bench``: each benchmark beside its yardstick, printed as the README's table."""

from __future__ import annotations

from collections.abc import Callable

import click

from coinpilot_pipelines.bench import BenchRow


def _print_table(rows: list[BenchRow]) -> None:
    click.echo("\n| bench | measurement | value | target | met |")
    click.echo("|---|---|---:|---|---|")
    for row in rows:
        met = "" if row.met is None else ("yes" if row.met else "NO")
        click.echo(f"| {row.bench} | {row.measurement} | {row.formatted()} | {row.target} | {met} |")


def _run(name: str, days: int, dsn: str | None, measure: Callable[..., list[BenchRow]]) -> list[BenchRow]:
    from coinpilot_pipelines.bench.environment import machine_description

    click.echo(f"coinpilot bench {name}: {days} days, on {machine_description()}")
    return measure(days, dsn, click.echo)


def _options(function: Callable) -> Callable:
    function = click.option("--dsn", default=None, help="A PostgreSQL URL; default: a throwaway local cluster.")(function)
    return click.option("--days", default=365, show_default=True, type=click.IntRange(1, 3660))(function)


@click.group(help="Measure throughput beside yardsticks taken in the same run (PostgreSQL).")
def bench() -> None:
    pass


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
