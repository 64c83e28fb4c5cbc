"""The ``coinpilot`` command line."""

from __future__ import annotations

import logging
import sys

import click

from coinpilot_pipelines.cli.bench import bench
from coinpilot_pipelines.cli.commands import continuity_scan, db, demo, emulator, instance, simulate, ui
from coinpilot_pipelines.cli.metrics import metrics
from coinpilot_pipelines.security import install_redaction, redact, secret_values


@click.group(help="CoinPilot Pipelines: crypto market data, models and a guarded order executor on Dagster.")
@click.option("-v", "--verbose", is_flag=True, help="Show library logs (retries, pauses) on stderr.")
def cli(verbose: bool) -> None:
    install_redaction()
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


for command in (demo, ui, simulate, emulator, db, instance, continuity_scan, bench, metrics):
    cli.add_command(command)


def main() -> None:
    """Run the CLI; any failure ends with one line saying why and a non-zero exit code."""
    try:
        sys.exit(cli.main(standalone_mode=False) or 0)
    except click.exceptions.Abort:
        click.echo("coinpilot: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:  # option errors name the option, in one line
        click.echo(f"coinpilot: error: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the one place errors become exit codes
        message = redact(" ".join(str(exc).split()), secret_values()) or exc.__class__.__name__
        click.echo(f"coinpilot: error: {message}", err=True)
        sys.exit(1)
