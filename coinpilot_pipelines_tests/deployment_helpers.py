"""Shared by the deployment tests: the files under test, and the environment that points a Dagster
instance at the test PostgreSQL server."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import make_url

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
HELM_VALUES = DOCKER / "helm" / "values.yaml"

# A password the test cluster ignores (it trusts loopback) but that must never show up in output.
PLACEHOLDER_PASSWORD = "not-a-real-password-7f3a"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def settings_variables() -> set[str]:
    """Every environment variable coinpilot_pipelines/settings.py reads."""
    text = (REPO / "coinpilot_pipelines" / "settings.py").read_text()
    return set(re.findall(r'"([A-Z]+(?:_[A-Z0-9]+)+)"', text))


def dagster_home_with(tmp_path: Path, instance_yaml: Path | dict) -> Path:
    """A DAGSTER_HOME directory holding the given dagster.yaml (a file to copy, or a mapping)."""
    home = tmp_path / "dagster-home"
    home.mkdir(parents=True, exist_ok=True)
    if isinstance(instance_yaml, Path):
        shutil.copy(instance_yaml, home / "dagster.yaml")
    else:
        (home / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml, sort_keys=False))
    return home


def instance_env(database_url: str) -> dict[str, str]:
    """The DAGSTER_PG_* variables the instance files read, naming the database at ``database_url``."""
    url = make_url(database_url)
    return {
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_USER": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": PLACEHOLDER_PASSWORD,
        "DAGSTER_PG_DB": url.database or "postgres",
    }
