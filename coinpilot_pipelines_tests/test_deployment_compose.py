"""docker/compose.yaml, checked the way `docker compose config` and a first `up` would find it (no
Docker engine runs here): services, images and builds, commands, environment, secrets only as
${VAR} references, volumes, start order with health checks, ports, the network, and the
DockerRunLauncher settings of docker/dagster.yaml that must match all of that."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from coinpilot_pipelines.defs.pools import pool_limits
from coinpilot_pipelines.storage.throwaway_postgres import free_port
from coinpilot_pipelines_tests.deployment_helpers import DOCKER, REPO, load_yaml, settings_variables
from coinpilot_pipelines_tests.rehearsal import wait_for

COMPOSE = load_yaml(DOCKER / "compose.yaml")
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
LAUNCHER = load_yaml(DOCKER / "dagster.yaml")["run_launcher"]["config"]
WORKSPACE = load_yaml(DOCKER / "workspace.yaml")["load_from"][0]["grpc_server"]
IMAGE = "coinpilot-pipelines:${COINPILOT_IMAGE_TAG:-latest}"
OWN_IMAGE_SERVICES = {"init", "mlflow", "user_code", "webserver", "daemon", "metrics"}
DAGSTER_HOME = "/opt/dagster/home"
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
SENSITIVE = re.compile(r"PASSWORD|SECRET|_KEY$|TOKEN|DATABASE_URL|BACKEND_STORE_URI|RSS_FEEDS|GUARD_PHRASE|WEBHOOK")


def _env_example() -> dict[str, str]:
    lines = (DOCKER / ".env.example").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.lstrip().startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def _references(node: Any) -> list[tuple[str, str | None, str]]:
    if isinstance(node, dict):
        return [ref for key, value in node.items() for ref in _references(key) + _references(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _references(item)]
    if isinstance(node, str):
        return [(name, operator, argument) for name, operator, argument in REFERENCE.findall(node)]
    return []


def _environment(service: str) -> dict[str, str]:
    return {name: str(value) for name, value in SERVICES[service].get("environment", {}).items()}


def test_services_and_what_they_run() -> None:
    assert set(SERVICES) == {"postgres", "init", "mlflow", "user_code", "webserver", "daemon", "metrics"}
    assert SERVICES["postgres"]["image"].startswith("postgres:15")
    for name in OWN_IMAGE_SERVICES:
        service = SERVICES[name]
        assert service["image"] == IMAGE, name
        assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}, name
    assert (DOCKER / SERVICES["init"]["build"]["context"] / SERVICES["init"]["build"]["dockerfile"]).is_file()
    assert SERVICES["init"]["command"] == ["sh", "docker/init.sh"]
    assert SERVICES["mlflow"]["command"][:2] == ["mlflow", "server"]
    assert SERVICES["user_code"]["command"][:3] == ["dagster", "code-server", "start"]
    workspace = f"{DAGSTER_HOME}/workspace.yaml"
    assert SERVICES["webserver"]["command"][0] == "dagster-webserver" and workspace in SERVICES["webserver"]["command"]
    assert SERVICES["daemon"]["command"][:2] == ["dagster-daemon", "run"] and workspace in SERVICES["daemon"]["command"]
    assert SERVICES["metrics"]["command"] == ["coinpilot", "metrics", "--host", "0.0.0.0", "--port", "9108"]


def test_the_image_holds_the_instance_and_workspace_the_services_name() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert f"DAGSTER_HOME={DAGSTER_HOME}" in dockerfile
    assert 'cp docker/dagster.yaml docker/workspace.yaml "$DAGSTER_HOME/"' in dockerfile
    # the image's default process is the compose code server
    cmd = re.search(r"^CMD (\[.*?\])$", dockerfile.replace("\\\n", ""), re.S | re.M).group(1)
    assert json.loads(cmd) == SERVICES["user_code"]["command"]


def test_every_reference_has_a_value_or_a_default() -> None:
    example = _env_example()
    for name, operator, argument in _references(COMPOSE):
        if operator in (":-", "-"):
            continue
        assert name in example, f"${{{name}}} is used without a default and is missing from docker/.env.example"
        if operator in (":?", "?"):
            assert argument, f"${{{name}}} should say what to set"


def test_no_secret_is_written_into_the_compose_file_or_the_env_example() -> None:
    for service_name, service in SERVICES.items():
        for name, value in _environment(service_name).items():
            if SENSITIVE.search(name):
                assert REFERENCE.search(value), f"{service_name}: {name} must come from docker/.env, not the file"
                # a URL may carry the password only as a reference
                assert not re.search(r"://[^:/@]+:(?!\$\{)[^@]+@", value), f"{service_name}: {name}"
    for name, value in _env_example().items():
        if SENSITIVE.search(name):
            assert value == "", f"docker/.env.example must leave {name} blank"
    ignored = (REPO / ".gitignore").read_text().splitlines() + (REPO / ".dockerignore").read_text().splitlines()
    assert ignored.count("docker/.env") == 2  # never committed, never copied into the image


def test_start_order_waits_for_health_and_for_the_init_step() -> None:
    for name, service in SERVICES.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], f"{name} waits for {dependency}, which has no health check"
            elif condition["condition"] == "service_completed_successfully":
                assert SERVICES[dependency].get("restart") == "no", dependency
            else:
                pytest.fail(f"{name} starts {dependency} without waiting for it")
    assert SERVICES["init"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert SERVICES["mlflow"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("user_code", "webserver", "daemon", "metrics"):
        assert SERVICES[name]["depends_on"]["init"] == {"condition": "service_completed_successfully"}, name
    for name in ("webserver", "daemon"):
        assert SERVICES[name]["depends_on"]["user_code"] == {"condition": "service_healthy"}, name
    for name in ("postgres", "mlflow", "user_code", "webserver", "daemon", "metrics"):
        assert SERVICES[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        assert SERVICES[name]["restart"] == "unless-stopped", name


def test_only_the_two_user_interfaces_and_the_metrics_are_published_and_only_on_loopback() -> None:
    published = {name: service["ports"] for name, service in SERVICES.items() if "ports" in service}
    assert published == {"mlflow": ["127.0.0.1:${MLFLOW_PORT:-5000}:5000"],
                         "webserver": ["127.0.0.1:${DAGSTER_WEBSERVER_PORT:-3000}:3000"],
                         "metrics": ["127.0.0.1:${METRICS_PORT:-9108}:9108"]}


def test_databases_credentials_and_the_mlflow_store_fit_together() -> None:
    postgres = _environment("postgres")
    created = re.findall(r"CREATE DATABASE (\w+);", (DOCKER / "postgres" / "create-databases.sql").read_text())
    databases = {postgres["POSTGRES_DB"], *created}
    assert "./postgres/create-databases.sql:/docker-entrypoint-initdb.d/10-create-databases.sql:ro" in \
        SERVICES["postgres"]["volumes"]
    assert _environment("metrics")["COINPILOT_DATABASE_URL"] == _environment("user_code")["COINPILOT_DATABASE_URL"]
    for service in ("init", "user_code", "daemon", "webserver"):
        env = _environment(service)
        assert env["DAGSTER_PG_HOST"] == "postgres" and env["DAGSTER_PG_PORT"] == "5432", service
        assert env["DAGSTER_PG_USER"] == postgres["POSTGRES_USER"], service
        assert env["DAGSTER_PG_PASSWORD"] == postgres["POSTGRES_PASSWORD"], service
        assert env["DAGSTER_PG_DB"] in databases, service
    urls = [_environment("user_code")["COINPILOT_DATABASE_URL"], _environment("mlflow")["MLFLOW_BACKEND_STORE_URI"]]
    for url in urls:
        match = re.fullmatch(r"postgresql\+psycopg://\$\{POSTGRES_USER\}:\$\{POSTGRES_PASSWORD\}@postgres:5432/(\w+)", url)
        assert match and match.group(1) in databases, url
    mlflow = _environment("mlflow")
    assert f"mlflow-artifacts:{mlflow['MLFLOW_ARTIFACTS_DESTINATION']}" in SERVICES["mlflow"]["volumes"]
    assert "mlflow:5000" in mlflow["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert _environment("user_code")["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_the_docker_run_launcher_matches_the_compose_deployment() -> None:
    # runs join the compose network by its fixed name
    assert COMPOSE["networks"]["coinpilot"]["name"] == LAUNCHER["network"]
    assert all(service["networks"] == ["coinpilot"] for service in SERVICES.values())
    # runs start from the image the code server reports
    user_code = SERVICES["user_code"]
    assert _environment("user_code")["DAGSTER_CURRENT_IMAGE"] == user_code["image"]
    assert WORKSPACE["host"] == "user_code"
    # runs share the storage volume (compute logs) with the services that read or write it
    [mount] = LAUNCHER["container_kwargs"]["volumes"]
    volume_name, target = mount.split(":")
    [key] = [key for key, volume in COMPOSE["volumes"].items() if (volume or {}).get("name") == volume_name]
    for name in ("user_code", "webserver", "daemon"):
        assert f"{key}:{target}" in SERVICES[name]["volumes"], name
    assert target == f"{DAGSTER_HOME}/storage"
    # the daemon talks to the Docker engine, as a member of the socket's group rather than as root
    for name in ("webserver", "daemon"):
        assert "/var/run/docker.sock:/var/run/docker.sock" in SERVICES[name]["volumes"], name
        assert SERVICES[name]["group_add"] == [
            "${DOCKER_GID:?set DOCKER_GID in docker/.env to the group of /var/run/docker.sock}"], name
        assert "user" not in SERVICES[name], name


def test_runs_get_exactly_the_environment_the_code_server_was_loaded_with() -> None:
    forwarded = set(LAUNCHER["env_vars"])
    assert len(forwarded) == len(LAUNCHER["env_vars"]) and all("=" not in name for name in forwarded)
    code_server = set(_environment("user_code")) - {"DAGSTER_CURRENT_IMAGE"}
    assert forwarded == code_server
    # DockerRunLauncher reads each value from the daemon's environment, and fails a run whose
    # variable is unset: the daemon must define every one of them
    assert forwarded <= set(_environment("daemon"))
    # EXCHANGE_API_POOL_LIMIT is the deploy step's (the init service has it), not a run's.
    assert settings_variables() - {"EXCHANGE_API_POOL_LIMIT"} <= forwarded, \
        "a setting the code reads does not reach the containers"
    assert {"DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"} <= forwarded
    # the webserver gets the instance, not the application's secrets
    assert set(_environment("webserver")) == {name for name in forwarded if name.startswith("DAGSTER_PG_")}


def test_trading_stays_off_unless_the_operator_turns_it_on() -> None:
    env = _environment("user_code")
    assert env["LIVE_TRADING_ENABLED"] == "${LIVE_TRADING_ENABLED:-false}"
    assert env["UPBIT_TRADE_MODE"] == "${UPBIT_TRADE_MODE:-shadow}"
    example = _env_example()
    assert example["LIVE_TRADING_ENABLED"] == "false" and example["UPBIT_TRADE_MODE"] == "shadow"


def test_init_step_pool_limit_is_configurable_and_the_orders_pool_is_not() -> None:
    assert _environment("init")["EXCHANGE_API_POOL_LIMIT"] == "${EXCHANGE_API_POOL_LIMIT:-4}"
    script = (DOCKER / "init.sh").read_text()
    assert "coinpilot instance pools\n" in script  # reads EXCHANGE_API_POOL_LIMIT; orders stays 1
    assert pool_limits(7) == {"exchange_api": 7, "orders": 1}
    assert Path(DOCKER / "init.sh").stat().st_mode & 0o111


def test_the_metrics_service_reads_only_what_it_needs() -> None:
    exporter = _environment("metrics")
    # settings of the code (the database, the symbols and the risk limit), nothing of Dagster, no key or webhook
    assert set(exporter) <= settings_variables() and "COINPILOT_DATABASE_URL" in exporter
    assert not {name for name in exporter if SENSITIVE.search(name)} - {"COINPILOT_DATABASE_URL"}
    # every setting it reads is the one the code server has
    assert all(_environment("user_code")[name] == value for name, value in exporter.items())


def test_the_metrics_service_command_and_health_check_work_against_the_database(pg_url: str, tmp_path: Path) -> None:
    """The compose command (its port replaced) as a process on the test PostgreSQL, then the compose health
    check against it: it passes while the exporter answers, and fails once it is gone (about 5 s)."""
    port = free_port()
    command = [token.replace("0.0.0.0", "127.0.0.1").replace("9108", str(port))
               for token in SERVICES["metrics"]["command"]]
    health = SERVICES["metrics"]["healthcheck"]["test"]
    assert health[0] == "CMD" and "9108/metrics" in health[-1]
    check = [sys.executable if token == "python" else token.replace("9108", str(port)) for token in health[1:]]
    env = {**os.environ, "COINPILOT_HOME": str(tmp_path), "COINPILOT_DATABASE_URL": pg_url}
    exporter = subprocess.Popen([str(Path(sys.executable).with_name(command[0])), *command[1:]], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for("the exporter", lambda: subprocess.run(check, capture_output=True).returncode == 0, 60, 0.5)
    finally:
        exporter.terminate()
        _, stderr = exporter.communicate(timeout=30)
    assert exporter.returncode == 0, stderr  # SIGTERM is a clean stop
    assert subprocess.run(check, capture_output=True).returncode != 0
