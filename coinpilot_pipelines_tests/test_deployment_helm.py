"""docker/helm/values.yaml for Dagster's official Helm chart (no cluster, no helm binary here): the
values against the chart's own values.schema.json (vendored in fixtures/helm/, see
fixtures/PROVENANCE.md) and every key they set against the keys that schema names; the instance the
chart renders from them, following its templates, against Dagster's own schema and against the root
dagster.yaml's policy on PostgreSQL; the K8sRunLauncher config against the launcher's schema; and the
init Job against both.

The rendering follows dagster-io/dagster's helm/dagster/templates/configmap-instance.yaml as of
commit 99dc34fc9b04 (a 2026 version, which has the chart's `concurrency` section) and the versions of
the helpers it includes from the same period (helpers/instance/_scheduler.tpl, _postgresql.tpl,
_run-coordinator.tpl)."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from dagster import DagsterInstance
from dagster._config import validate_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config
from dagster._serdes.config_class import ConfigurableClassData
from dagster_k8s import K8sRunLauncher
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy import make_url

from coinpilot_pipelines_tests.conftest import FIXTURES, PostgresServer
from coinpilot_pipelines_tests.deployment_helpers import (
    DOCKER,
    HELM_VALUES,
    REPO,
    dagster_home_with,
    instance_env,
    load_yaml,
)

SCHEMA_PATH = FIXTURES / "helm" / "values.schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text())
VALUES = load_yaml(HELM_VALUES)
INIT_JOB = load_yaml(DOCKER / "helm" / "init-job.yaml")
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
RELEASE, NAMESPACE = "dagster", "coinpilot"  # the names the values file and the README use
SENSITIVE = re.compile(r"PASSWORD|SECRET|_KEY$|TOKEN|DATABASE_URL|RSS_FEEDS|GUARD_PHRASE")

# Keys of the 1.13 chart that the vendored schema (an older one, see PROVENANCE.md) does not know,
# with where they come from. Only these are taken out before the schema check; the templates' logic
# below still renders them, and a test fails once the schema knows a key, so none outlives its reason.
NEWER_THAN_SCHEMA = {
    ("dagsterDaemon", "backfills"): "dagster-io/dagster PR #30189 (Dagster 1.10, 2025)",
}


def _permissive_kubernetes_schemas(schema: dict[str, Any]) -> Registry:
    """The chart's schema refers to kubernetesjsonschema.dev for every Kubernetes object (probes,
    resources, volumes, env sources). The tests run offline, so each of those references resolves here
    to an empty, permissive schema: the cluster checks Kubernetes objects when they are applied."""
    documents: dict[str, dict[str, Any]] = {}

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if not node.get("$ref", "#").startswith("#"):
                url, _, pointer = node["$ref"].partition("#")
                target = documents.setdefault(url, {})
                for part in pointer.strip("/").split("/"):
                    target = target.setdefault(part, {})
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(schema)
    return Registry().with_resources(
        (url, Resource.from_contents(document, default_specification=DRAFT202012))
        for url, document in documents.items())


# The schema names no draft; 2020-12 also applies the keywords written beside each `$ref`.
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, registry=_permissive_kubernetes_schemas(SCHEMA))


def _branches(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``node`` and every schema it also stands for, through local $refs and anyOf/allOf/oneOf."""
    ref = node.get("$ref", "")
    if ref.startswith("#/"):
        target = SCHEMA
        for part in ref[2:].split("/"):
            target = target[part]
        yield from _branches(target)
    yield node
    for keyword in ("anyOf", "allOf", "oneOf"):
        for branch in node.get(keyword, []):
            yield from _branches(branch)


def _unknown_keys(value: Any, node: dict[str, Any], path: tuple = ()) -> Iterator[tuple]:
    """Paths of keys in ``value`` that the schema ``node`` does not name. The chart's schema leaves most
    objects open, so a misspelt key passes it and Helm then ignores it. Objects the schema leaves
    free-form (no named properties, or a Kubernetes object by reference) are not looked into."""
    branches = list(_branches(node))
    if isinstance(value, dict):
        if any(not branch.get("$ref", "#").startswith("#") for branch in branches):
            return
        named = [branch["properties"] for branch in branches if branch.get("properties")]
        if not named:
            return
        for key, item in value.items():
            matches = [properties[key] for properties in named if key in properties]
            if not matches:
                yield (*path, key)
            for match in matches:
                yield from _unknown_keys(item, match, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            for branch in branches:
                if "items" in branch:
                    yield from _unknown_keys(item, branch["items"], (*path, index))


def _dotted(path: Any) -> str:
    return ".".join(map(str, path)) or "(top level)"


def _left_to_chart_defaults(error: jsonschema.ValidationError) -> bool:
    """Helm checks this file merged over the chart's own values.yaml, which holds every key the schema
    requires in its maps. Lists are replaced whole, so within a list item nothing is left to it."""
    return error.validator == "required" and not any(isinstance(part, int) for part in error.absolute_path)


def schema_problems(values: dict[str, Any]) -> list[str]:
    """What the chart's schema finds wrong with ``values``, and every key it does not name."""
    checked = copy.deepcopy(values)
    for *parents, key in NEWER_THAN_SCHEMA:
        node = checked
        for part in parents:
            node = node.get(part, {})
        node.pop(key, None)
    problems = sorted(f"{_dotted(error.absolute_path)}: {error.message}" for error in VALIDATOR.iter_errors(checked)
                      if not _left_to_chart_defaults(error))
    return problems + [f"{_dotted(path)}: not a key of the chart's values schema"
                       for path in dict.fromkeys(_unknown_keys(checked, SCHEMA))]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# How the templates write each key they read: always (an unset key becomes null, so this file sets
# it), unless null (`kindIs "invalid"`), only if truthy (Go's `if`, which drops 0 and false), or
# whenever the key is present (`hasKey`).
ALWAYS, UNLESS_NULL, IF_TRUTHY, IF_PRESENT = "always", "unless null", "if truthy", "if present"
RUN_MONITORING = {"enabled": ALWAYS, "startTimeoutSeconds": ALWAYS, "cancelTimeoutSeconds": UNLESS_NULL,
                  "maxRuntimeSeconds": UNLESS_NULL, "maxResumeRunAttempts": UNLESS_NULL,
                  "pollIntervalSeconds": ALWAYS, "freeSlotsAfterRunEndSeconds": ALWAYS}
RUN_RETRIES = {"enabled": ALWAYS, "maxRetries": IF_TRUTHY, "retryOnAssetOrOpFailure": IF_PRESENT}
DAEMON_THREADS = {"useThreads": ALWAYS, "numWorkers": IF_TRUTHY, "numSubmitWorkers": IF_TRUTHY}


def _section(values: dict[str, Any], path: str, rules: dict[str, str]) -> dict[str, Any]:
    unread = sorted(set(values) - set(rules))
    if unread:
        raise ValueError(f"{path}: the chart's templates do not read {unread}; the chart would drop them")
    written = {
        ALWAYS: lambda key: True, UNLESS_NULL: lambda key: values.get(key) is not None,
        IF_TRUTHY: lambda key: bool(values.get(key)), IF_PRESENT: lambda key: key in values,
    }
    return {_snake(key): values[key] for key, rule in rules.items() if written[rule](key)}


def chart_instance(values: dict[str, Any], coordinates: dict[str, Any] | None = None) -> dict[str, Any]:
    """The dagster.yaml the chart renders into its instance ConfigMap from these values, section by
    section as the templates named above do, without the run launcher (checked on its own below) and
    compute logs (the chart's no-op default). It reads this file only, not the chart's defaults, and
    refuses what the templates would silently drop: a key they do not read, a section they do not render
    here, an `additionalInstanceConfig` key that repeats a section they write. ``coordinates`` replaces
    the database's hostname, port, username and db_name (to point the instance at a test server)."""
    pg, daemon = values["postgresql"], values["dagsterDaemon"]
    coordinator = daemon["runCoordinator"]
    if pg["enabled"] or "scheduler" in values:
        raise ValueError("only an external PostgreSQL and the chart's default scheduler are rendered here")
    if not (daemon["enabled"] and coordinator["enabled"] and coordinator["type"] == "CustomRunCoordinator"):
        raise ValueError("only the daemon with a custom run coordinator is rendered here")
    if values.get("concurrency", {}).get("enabled") or values.get("retention", {}).get("enabled"):
        raise ValueError("the chart's own concurrency and retention sections are not rendered here")
    storage = {"postgres_db": {
        "username": pg["postgresqlUsername"], "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": pg["postgresqlHost"], "db_name": pg["postgresqlDatabase"], "port": pg["service"]["port"],
        **(coordinates or {}),
        "params": pg["postgresqlParams"],
        **({"scheme": pg["postgresqlScheme"]} if pg.get("postgresqlScheme") else {}),
    }}
    custom = coordinator["config"]["customRunCoordinator"]
    rendered = {
        "scheduler": {"module": "dagster._core.scheduler", "class": "DagsterDaemonScheduler"},
        "schedule_storage": {"module": "dagster_postgres.schedule_storage", "class": "PostgresScheduleStorage",
                             "config": storage},
        "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage", "config": storage},
        "event_log_storage": {"module": "dagster_postgres.event_log", "class": "PostgresEventLogStorage",
                              "config": storage},
        "run_coordinator": {"module": custom["module"], "class": custom["class"], "config": custom["config"]},
    }
    if daemon["runMonitoring"]["enabled"]:
        rendered["run_monitoring"] = _section(daemon["runMonitoring"], "dagsterDaemon.runMonitoring", RUN_MONITORING)
    if daemon["runRetries"]["enabled"]:
        rendered["run_retries"] = _section(daemon["runRetries"], "dagsterDaemon.runRetries", RUN_RETRIES)
    for kind in ("sensors", "schedules"):
        if daemon[kind]["useThreads"]:
            rendered[kind] = _section(daemon[kind], f"dagsterDaemon.{kind}", DAEMON_THREADS)
    if daemon.get("backfills"):
        rendered["backfills"] = _section(daemon["backfills"], "dagsterDaemon.backfills", DAEMON_THREADS)
    rendered["telemetry"] = {"enabled": values["telemetry"]["enabled"]}
    additional = values.get("additionalInstanceConfig", {})
    repeated = sorted(set(additional) & set(rendered))
    if repeated:
        raise ValueError(f"additionalInstanceConfig repeats sections the chart writes: {repeated}")
    return {**rendered, **additional}


def dagster_problems(instance: dict[str, Any], tmp_path: Path) -> list[str]:
    """What Dagster refuses in a rendered instance: its instance schema, and the run coordinator's own
    config, which Dagster checks only when it builds the coordinator (done here as it does)."""
    coordinator = instance["run_coordinator"]
    try:
        dagster_instance_config(str(dagster_home_with(tmp_path, instance)))
        ConfigurableClassData(coordinator["module"], coordinator["class"],
                              yaml.safe_dump(coordinator["config"])).rehydrate()
    except DagsterInvalidConfigError as error:
        return [str(error)]
    return []


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
        config["run_k8s_config"] = {_snake(key): value for key, value in k8s["runK8sConfig"].items()}
    return config


def test_vendored_schema_is_the_file_its_provenance_names() -> None:
    [digest] = re.findall(r"^\| `helm/values\.schema\.json` \|.*\| `([0-9a-f]{64})` \|$",
                          (FIXTURES / "PROVENANCE.md").read_text(), re.MULTILINE)
    assert hashlib.sha256(SCHEMA_PATH.read_bytes()).hexdigest() == digest
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_values_meet_the_charts_schema_and_use_only_its_keys() -> None:
    problems = schema_problems(VALUES)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", NEWER_THAN_SCHEMA)
def test_keys_taken_out_of_the_schema_check_are_still_unknown_to_the_schema(path: tuple) -> None:
    assert path in set(_unknown_keys(VALUES, SCHEMA)), f"the schema knows {_dotted(path)}: drop it from NEWER_THAN_SCHEMA"


@pytest.mark.parametrize("path, value", [
    (("dagsterDaemon", "sensors", "numWorker"), 4),  # a key the schema does not name but lets through
    (("dagsterDaemon", "runRetries", "retryOnOpFailure"), False),  # a key the templates do not read
    (("dagsterDaemon", "runMonitoring", "maxRuntimeSecond"), 3600),
    (("runLauncher", "config", "k8sRunLauncher", "imagePullPolicy"), "Sometimes"),
    (("postgresql", "postgresqlScheme"), 2),
    (("additionalInstanceConfig", "run_monitoring"), {"enabled": True}),  # written by the chart already
    (("additionalInstanceConfig", "concurrency", "runs", "max_concurrent_runs"), "8"),  # Dagster refuses it
    (("dagsterDaemon", "runCoordinator", "config", "customRunCoordinator", "config", "max_user_code_retries"), 5),
])
def test_the_checks_reject_what_the_chart_or_dagster_would_not_apply(path: tuple, value: object, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "placeholder")
    broken = copy.deepcopy(VALUES)
    node = broken
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    problems = schema_problems(broken)
    try:
        problems += dagster_problems(chart_instance(broken), tmp_path)
    except ValueError as error:
        problems.append(str(error))
    assert problems


def test_chart_version_matches_the_dagster_pin() -> None:
    [dagster_pin] = [d for d in PYPROJECT["project"]["dependencies"] if d.startswith("dagster==")]
    version = dagster_pin.split("==")[1]
    assert f"--version {version}" in HELM_VALUES.read_text()
    assert f"--version {version}" in (REPO / "README.md").read_text()


def test_rendered_instance_is_valid_dagster_instance_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "placeholder")
    problems = dagster_problems(chart_instance(VALUES), tmp_path)
    assert not problems, "\n".join(problems)


def test_k8s_run_launcher_config_is_valid() -> None:
    result = validate_config(K8sRunLauncher.config_type(), chart_k8s_launcher_config(VALUES))
    assert result.success, result.errors


def test_kubernetes_instance_has_the_root_policy(postgres: PostgresServer, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Dagster's own reading of both instances agrees: the storage driver, the run queue with its tag
    limits and user-code failure retries, the pool default, run monitoring, retries and the threads."""
    root_url, chart_url = postgres.fresh_database(migrated=False), postgres.fresh_database(migrated=False)
    for name, value in instance_env(root_url).items():
        monkeypatch.setenv(name, value)
    chart_db = make_url(chart_url)
    chart_config = chart_instance(VALUES, coordinates={
        "username": chart_db.username, "hostname": chart_db.host, "db_name": chart_db.database, "port": chart_db.port})
    with (DagsterInstance.from_config(str(dagster_home_with(tmp_path / "root", REPO / "dagster.yaml"))) as root,
          DagsterInstance.from_config(str(dagster_home_with(tmp_path / "chart", chart_config))) as chart):
        for storage in ("run_storage", "event_log_storage", "schedule_storage"):
            drivers = {make_url(getattr(instance, storage).postgres_url).drivername for instance in (root, chart)}
            assert drivers == {"postgresql+psycopg2"}, storage
        assert chart.get_concurrency_config() == root.get_concurrency_config()
        for section in ("run_monitoring", "run_retries", "sensors", "schedules", "backfills", "telemetry"):
            assert chart.get_settings(section) == root.get_settings(section), section


def test_code_location_is_named_and_served_as_in_the_other_deployments() -> None:
    [deployment] = VALUES["dagster-user-deployments"]["deployments"]
    [server] = VALUES["dagsterWebserver"]["workspace"]["servers"]
    assert (server["host"], server["port"]) == (deployment["name"], deployment["port"])
    # the chart names the deployment's Service after it, so it must be a DNS label
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", deployment["name"])
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


def test_the_metrics_exporter_runs_as_in_compose_and_reads_only_the_database() -> None:
    deployment, service = yaml.safe_load_all((DOCKER / "helm" / "metrics.yaml").read_text())
    [user_code] = VALUES["dagster-user-deployments"]["deployments"]
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    compose = load_yaml(DOCKER / "compose.yaml")
    assert container["image"] == f"{user_code['image']['repository']}:{user_code['image']['tag']}"
    assert container["command"] == compose["services"]["metrics"]["command"]
    # The exporter's environment is compose's exporter environment: the database URL from the
    # secret, settings by value, nothing else (no API key, no webhook).
    env = {item["name"]: item for item in container["env"]}
    assert set(env) <= set(compose["x-exporter-env"])
    assert env["COINPILOT_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": user_code["envSecrets"][0]["name"], "key": "COINPILOT_DATABASE_URL"}
    assert not [name for name, item in env.items() if name != "COINPILOT_DATABASE_URL" and "value" not in item]
    assert "envFrom" not in container
    # The Service reaches the pod's named port, where the probes scrape.
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    [port] = container["ports"]
    [exposed] = service["spec"]["ports"]
    assert exposed["targetPort"] == port["name"] and exposed["port"] == port["containerPort"] == 9108
    assert container["readinessProbe"]["httpGet"] == {"path": "/metrics", "port": port["name"]}
    assert service["metadata"]["annotations"]["prometheus.io/port"] == str(port["containerPort"])
