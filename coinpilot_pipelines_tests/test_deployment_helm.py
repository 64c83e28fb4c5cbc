"""docker/helm/values.yaml for Dagster's official Helm chart (no cluster, no helm binary here):
the keys against the chart's documented keys (fixtures/helm/dagster-chart-values.schema.json),
the instance the chart renders from them against Dagster's own schema and against the root
dagster.yaml's policy on PostgreSQL, the K8sRunLauncher config against the launcher's schema, and
the init Job against both."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from dagster import DagsterInstance
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config
from dagster_k8s import K8sRunLauncher
from sqlalchemy import make_url

from coinpilot_pipelines_tests.conftest import PostgresServer
from coinpilot_pipelines_tests.deployment_helpers import (
    DOCKER,
    HELM_VALUES,
    REPO,
    dagster_home_with,
    instance_env,
    load_yaml,
)

SCHEMA = json.loads((REPO / "coinpilot_pipelines_tests" / "fixtures" / "helm" / "dagster-chart-values.schema.json")
                    .read_text())
VALUES = load_yaml(HELM_VALUES)
INIT_JOB = load_yaml(DOCKER / "helm" / "init-job.yaml")
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
RELEASE, NAMESPACE = "dagster", "coinpilot"  # the names the values file and the README use
SENSITIVE = re.compile(r"PASSWORD|SECRET|_KEY$|TOKEN|DATABASE_URL|RSS_FEEDS|GUARD_PHRASE")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _snake_keys(mapping: dict[str, Any]) -> dict[str, Any]:
    return {_snake(key): value for key, value in mapping.items()}


def chart_instance(values: dict[str, Any], postgres_db: dict[str, Any] | None = None) -> dict[str, Any]:
    """The dagster.yaml the chart renders into its instance ConfigMap from these values, following the
    chart's templates (templates/configmap-instance.yaml and helpers/instance/*.tpl), policy keys camelCase
    to snake_case. ``postgres_db`` replaces the storage coordinates (to point the instance at a test server)."""
    pg = values["postgresql"]
    postgres_db = postgres_db or {
        "username": pg["postgresqlUsername"], "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": pg["postgresqlHost"], "db_name": pg["postgresqlDatabase"], "port": pg["service"]["port"],
        "params": pg.get("postgresqlParams", {}),
    }
    storage = {"postgres_db": postgres_db}
    daemon = values["dagsterDaemon"]
    queue = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    return {
        "scheduler": {"module": "dagster._core.scheduler", "class": "DagsterDaemonScheduler", "config": {}},
        "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage", "config": storage},
        "event_log_storage": {"module": "dagster_postgres.event_log", "class": "PostgresEventLogStorage",
                              "config": storage},
        "schedule_storage": {"module": "dagster_postgres.schedule_storage", "class": "PostgresScheduleStorage",
                             "config": storage},
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator",
                            "config": _snake_keys(queue)},
        "run_monitoring": _snake_keys(daemon["runMonitoring"]),
        "run_retries": _snake_keys(daemon["runRetries"]),
        **{kind: _snake_keys(daemon[kind]) for kind in ("sensors", "schedules", "backfills")},
        "telemetry": values["telemetry"],
    }


def chart_k8s_launcher_config(values: dict[str, Any]) -> dict[str, Any]:
    """The K8sRunLauncher config the chart renders (helpers/instance/_run-launcher.tpl)."""
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    config = {
        "load_incluster_config": k8s["loadInclusterConfig"],
        "job_namespace": k8s.get("jobNamespace") or NAMESPACE,
        "image_pull_policy": k8s["imagePullPolicy"],
        "service_account_name": RELEASE,
        "dagster_home": {"env": "DAGSTER_HOME"},
        "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
        "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
        "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"}] + [m["name"] for m in k8s["envConfigMaps"]],
        "env_secrets": [s["name"] for s in k8s["envSecrets"]],
        "env_vars": k8s["envVars"], "volume_mounts": k8s["volumeMounts"], "volumes": k8s["volumes"],
    }
    for key in ("labels", "failPodOnRunFailure", "resources", "schedulerName", "securityContext"):
        if key in k8s:
            config[_snake(key)] = k8s[key]
    if "runK8sConfig" in k8s:
        config["run_k8s_config"] = _snake_keys(k8s["runK8sConfig"])
    return config


def test_values_use_only_the_charts_documented_keys() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(VALUES), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


@pytest.mark.parametrize("path, value", [
    (("dagsterDaemon", "runRetries", "retryOnOpFailure"), False),        # a misspelt key
    (("dagsterDaemon", "runCoordinator", "config", "queuedRunCoordinator", "maxConcurrentRuns"), "8"),
    (("runLauncher", "config", "k8sRunLauncher", "imagePullPolicy"), "Sometimes"),
    (("dagster-user-deployments", "deployments", 0, "name"), "coinpilot_pipelines"),  # not a DNS name
])
def test_the_key_check_rejects_what_the_chart_would_not_apply(path: tuple, value: object) -> None:
    broken = json.loads(json.dumps(VALUES))
    node = broken
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    assert list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(broken))


def test_chart_version_matches_the_dagster_pin() -> None:
    [dagster_pin] = [d for d in PYPROJECT["project"]["dependencies"] if d.startswith("dagster==")]
    version = dagster_pin.split("==")[1]
    assert f"--version {version}" in HELM_VALUES.read_text()
    assert f"--version {version}" in (REPO / "README.md").read_text()


def test_rendered_instance_is_valid_dagster_instance_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "placeholder")
    config, _ = dagster_instance_config(str(dagster_home_with(tmp_path, chart_instance(VALUES))))
    assert config["run_storage"]["config"]["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}


def test_k8s_run_launcher_config_is_valid() -> None:
    result = validate_config(K8sRunLauncher.config_type(), chart_k8s_launcher_config(VALUES))
    assert result.success, result.errors


def test_kubernetes_instance_has_the_root_policy(postgres: PostgresServer, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Dagster's own reading of both instances agrees: run queue, tag limits, monitoring, retries, threads."""
    root_url, chart_url = postgres.fresh_database(migrated=False), postgres.fresh_database(migrated=False)
    for name, value in instance_env(root_url).items():
        monkeypatch.setenv(name, value)
    chart_db = make_url(chart_url)
    chart_config = chart_instance(VALUES, postgres_db={
        "username": chart_db.username, "password": {"env": "DAGSTER_PG_PASSWORD"}, "hostname": chart_db.host,
        "db_name": chart_db.database, "port": chart_db.port})
    with (DagsterInstance.from_config(str(dagster_home_with(tmp_path / "root", REPO / "dagster.yaml"))) as root,
          DagsterInstance.from_config(str(dagster_home_with(tmp_path / "chart", chart_config))) as chart):
        assert chart.get_concurrency_config().run_queue_config == root.get_concurrency_config().run_queue_config
        for section in ("run_monitoring", "run_retries", "sensors", "schedules", "backfills", "telemetry"):
            assert chart.get_settings(section) == root.get_settings(section), section
        # the one difference, by design: pools cannot be configured next to the chart's run coordinator
        # settings, so the init Job sets every pool the code uses
        assert root.get_concurrency_config().pool_config.default_pool_limit == 1
        assert chart.get_concurrency_config().pool_config.default_pool_limit is None


def test_code_location_is_named_and_served_as_in_the_other_deployments() -> None:
    [deployment] = VALUES["dagster-user-deployments"]["deployments"]
    [server] = VALUES["dagsterWebserver"]["workspace"]["servers"]
    assert (server["host"], server["port"]) == (deployment["name"], deployment["port"])
    location = PYPROJECT["tool"]["dagster"]["code_location_name"]
    args = deployment["codeServerArgs"]
    assert server["name"] == location == args[args.index("--location-name") + 1]
    assert args[args.index("-m") + 1] == PYPROJECT["tool"]["dagster"]["module_name"]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}  # runs get the location's env
    assert VALUES["runLauncher"]["type"] == "K8sRunLauncher"


def test_no_secret_is_written_into_the_values() -> None:
    assert "postgresqlPassword" not in VALUES["postgresql"]
    assert VALUES["generatePostgresqlPasswordSecret"] is False  # the operator creates the secret
    [deployment] = VALUES["dagster-user-deployments"]["deployments"]
    assert not [name for name in deployment["env"] if SENSITIVE.search(name)]
    assert deployment["envSecrets"] == [{"name": "coinpilot-env"}]
    assert deployment["env"]["LIVE_TRADING_ENABLED"] == "false"
    assert deployment["env"]["UPBIT_TRADE_MODE"] == "shadow"


def test_init_job_runs_the_init_step_against_the_charts_instance() -> None:
    [deployment] = VALUES["dagster-user-deployments"]["deployments"]
    assert INIT_JOB["kind"] == "Job" and INIT_JOB["apiVersion"] == "batch/v1"
    pod = INIT_JOB["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    [container] = pod["containers"]
    assert container["image"] == f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    compose_init = load_yaml(DOCKER / "compose.yaml")["services"]["init"]
    assert container["command"] == compose_init["command"]
    env = {item["name"]: item for item in container["env"]}
    assert env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": VALUES["global"]["postgresqlSecretName"], "key": "postgresql-password"}
    assert env["EXCHANGE_API_POOL_LIMIT"]["value"] == "4"
    sources = [next(iter(source.values()))["name"] for source in container["envFrom"]]
    assert sources == [f"{RELEASE}-daemon-env", deployment["envSecrets"][0]["name"]]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
    assert volumes["dagster-instance"]["configMap"]["name"] == f"{RELEASE}-instance"
    home = VALUES["global"]["dagsterHome"]
    assert mounts["dagster-home"]["mountPath"] == home
    assert (mounts["dagster-instance"]["mountPath"], mounts["dagster-instance"]["subPath"]) == (
        f"{home}/dagster.yaml", "dagster.yaml")
