"""The production dagster.yaml and the compose deployment's docker/dagster.yaml: valid against
Dagster's own instance-config schema, the policy the issue asks for, a working instance on
PostgreSQL, and the init step that sets the pool limits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config
from dagster_docker import DockerRunLauncher
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

from coinpilot_pipelines_tests.conftest import PostgresServer
from coinpilot_pipelines_tests.deployment_helpers import (
    DOCKER,
    PLACEHOLDER_PASSWORD,
    REPO,
    dagster_home_with,
    instance_env,
    load_yaml,
)

ROOT_YAML = REPO / "dagster.yaml"
COMPOSE_YAML = DOCKER / "dagster.yaml"


@pytest.mark.parametrize("path", [ROOT_YAML, COMPOSE_YAML], ids=["root", "compose"])
def test_instance_yaml_is_valid_dagster_instance_config(path: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in instance_env("postgresql://dagster@db:5432/dagster").items():
        monkeypatch.setenv(name, value)
    config, _ = dagster_instance_config(str(dagster_home_with(tmp_path, path)))
    postgres_db = dict(config["storage"]["postgres"]["postgres_db"])
    assert postgres_db.pop("scheme") == "postgresql+psycopg2"  # the driver dagster-postgres is written for
    # every connection setting, the password above all, comes from the environment
    assert postgres_db == {key: {"env": f"DAGSTER_PG_{name}"} for key, name in
                           [("hostname", "HOST"), ("port", "PORT"), ("username", "USER"),
                            ("password", "PASSWORD"), ("db_name", "DB")]}


def test_compose_instance_is_the_root_policy_plus_the_docker_launcher() -> None:
    root, compose = load_yaml(ROOT_YAML), load_yaml(COMPOSE_YAML)
    launcher = compose.pop("run_launcher")
    assert compose == root, "docker/dagster.yaml drifted from dagster.yaml; change the root file and copy it"
    assert "run_launcher" not in root
    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")
    result = validate_config(DockerRunLauncher.config_type(), launcher["config"])
    assert result.success, result.errors


def test_policy_limits_the_order_executor_and_backfills_and_never_reruns_failed_logic() -> None:
    config = load_yaml(ROOT_YAML)
    limits = {(limit["key"], limit.get("value")): limit["limit"]
              for limit in config["concurrency"]["runs"]["tag_concurrency_limits"]}
    runs = config["concurrency"]["runs"]["max_concurrent_runs"]
    assert limits[("coinpilot/exclusive", "order-executor")] == 1
    assert 1 <= limits[("dagster/backfill", None)] < runs  # backfills never take every run slot
    # a pool nobody sized (e.g. init not run yet) is the safest size, never unlimited
    assert config["concurrency"]["pools"] == {"default_limit": 1, "granularity": "op"}
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_monitoring"]["max_resume_run_attempts"] == 0
    retries = config["run_retries"]
    assert retries["enabled"] is True and 1 <= retries["max_retries"] <= 3
    assert retries["retry_on_asset_or_op_failure"] is False
    assert all(config[daemon]["use_threads"] for daemon in ("sensors", "schedules", "backfills"))


def test_compose_instance_runs_on_postgresql(postgres: PostgresServer, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in instance_env(postgres.fresh_database(migrated=False)).items():
        monkeypatch.setenv(name, value)
    with DagsterInstance.from_config(str(dagster_home_with(tmp_path, COMPOSE_YAML))) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.run_launcher, DockerRunLauncher)
        assert instance.run_launcher.networks == ["coinpilot"]
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 8
        assert {"key": "coinpilot/exclusive", "value": "order-executor", "limit": 1} in queue.tag_concurrency_limits
        assert instance.run_monitoring_enabled and instance.run_monitoring_max_resume_run_attempts == 0
        assert instance.run_retries_enabled and not instance.run_retries_retry_on_asset_or_op_failure
        assert instance.get_runs() == []  # the storage answers


def test_init_step_migrates_and_sets_the_pool_limits(postgres: PostgresServer, tmp_path: Path) -> None:
    """docker/init.sh, as the compose `init` service and the Kubernetes Job run it."""
    home = dagster_home_with(tmp_path, COMPOSE_YAML)
    env = {
        **os.environ,
        **instance_env(postgres.fresh_database(migrated=False)),
        "DAGSTER_HOME": str(home),
        "COINPILOT_DATABASE_URL": postgres.fresh_database(migrated=False),
        "EXCHANGE_API_POOL_LIMIT": "3",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    result = subprocess.run(["sh", str(DOCKER / "init.sh")], env=env, cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "is at revision" in result.stdout  # the application database was migrated
    assert PLACEHOLDER_PASSWORD not in result.stdout + result.stderr
    with pytest.MonkeyPatch.context() as patch:
        for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"):
            patch.setenv(name, env[name])
        with DagsterInstance.from_config(str(home)) as instance:
            storage = instance.event_log_storage
            assert storage.get_concurrency_info("exchange_api").slot_count == 3
            assert storage.get_concurrency_info("orders").slot_count == 1


def test_init_step_refuses_a_malformed_pool_limit(tmp_path: Path) -> None:
    result = subprocess.run(["sh", str(DOCKER / "init.sh")], env={**os.environ, "EXCHANGE_API_POOL_LIMIT": "four"},
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "EXCHANGE_API_POOL_LIMIT" in result.stderr
