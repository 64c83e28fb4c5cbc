"""The embedded-default environment the demo and the UI share: home, Dagster home, emulator."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from coinpilot_pipelines.emulator.server import Emulator
from coinpilot_pipelines.settings import Settings

# The local instance keeps Dagster's default SQLite storage; telemetry is off since nothing
# here should call out.
LOCAL_DAGSTER_YAML = """\
telemetry:
  enabled: false
"""


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
    dagster_home.mkdir(parents=True, exist_ok=True)
    instance_yaml = dagster_home / "dagster.yaml"
    if not instance_yaml.exists():
        instance_yaml.write_text(LOCAL_DAGSTER_YAML)

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
