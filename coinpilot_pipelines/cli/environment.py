"""The embedded-default environment the demo and the UI share: home, Dagster home, emulator.

The laptop instance gets the production policy, derived from the repository's root dagster.yaml
each time it is prepared: the run queue and its tag limits (one order executor, one retrain at a
time), run monitoring and retries, and the pool limits `docker/init.sh` applies. Only what a
laptop cannot share with production differs: Dagster's default SQLite storage under DAGSTER_HOME
instead of PostgreSQL, and a shorter run-time backstop (`LOCAL_MAX_RUNTIME_S`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import yaml

from coinpilot_pipelines.defs.pools import apply_pool_limits, pool_limits
from coinpilot_pipelines.emulator.server import Emulator
from coinpilot_pipelines.settings import Settings, exchange_pool_limit

ROOT_POLICY = Path(__file__).resolve().parents[2] / "dagster.yaml"
# When a code server dies on a laptop its run workers die with it and nothing marks their runs;
# the backstop ends such a run within 5 minutes (a laptop run of this project takes seconds).
LOCAL_MAX_RUNTIME_S = 240
LOCAL_MONITORING_POLL_S = 30


def local_instance_config(root_policy: Path = ROOT_POLICY) -> dict:
    """The root policy for a laptop: default SQLite storage, the shorter backstop."""
    if not root_policy.exists():
        raise FileNotFoundError(f"the instance policy {root_policy} is missing: coinpilot ui and the demo run from "
                                "the repository checkout (pip install -e .)")
    policy = yaml.safe_load(root_policy.read_text())
    policy.pop("storage")  # DAGSTER_HOME's own SQLite files
    policy["run_monitoring"].update(max_runtime_seconds=LOCAL_MAX_RUNTIME_S,
                                    poll_interval_seconds=LOCAL_MONITORING_POLL_S)
    return policy


def prepare_dagster_home(dagster_home: Path) -> list[str]:
    """Write the laptop instance's dagster.yaml and set its pool limits; what was set."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(
        "# Written by coinpilot from the repository's dagster.yaml at every start; edit that file instead.\n"
        + yaml.safe_dump(local_instance_config(), sort_keys=False))
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return apply_pool_limits(instance, pool_limits(exchange_pool_limit()))


@dataclass(frozen=True)
class LocalEnvironment:
    settings: Settings
    dagster_home: Path
    emulator_url: str


@contextmanager
def local_environment() -> Iterator[LocalEnvironment]:
    """Point this process (and its children) at the local home and a fresh in-process emulator."""
    home = Settings.from_env().home
    dagster_home = home / "dagster"
    prepare_dagster_home(dagster_home)

    emulator = Emulator().start()
    overrides = {
        "COINPILOT_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "COINPILOT_BINANCE_BASE_URL": emulator.url,
        "COINPILOT_UPBIT_BASE_URL": emulator.url,
        "COINPILOT_NEWS_BASE_URL": emulator.url,  # the bundled feeds, unless NEWS_RSS_FEEDS names others
    }
    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    try:
        yield LocalEnvironment(Settings.from_env(), dagster_home, emulator.url)
    finally:
        emulator.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
