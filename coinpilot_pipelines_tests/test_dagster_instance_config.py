"""The production dagster.yaml validates against Dagster's own instance-config schema."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dagster._core.instance.config import dagster_instance_config

REPO = Path(__file__).resolve().parents[1]


def test_production_dagster_yaml_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"DAGSTER_PG_HOST": "db", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_USER": "dagster",
                        "DAGSTER_PG_PASSWORD": "secret", "DAGSTER_PG_DB": "dagster"}.items():
        monkeypatch.setenv(name, value)
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["storage"]["postgres"]["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    assert config["concurrency"]["pools"]["default_limit"] >= 1
