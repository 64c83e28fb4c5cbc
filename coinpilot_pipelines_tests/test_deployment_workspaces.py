"""Both workspace forms: the local one (workspace.yaml, `python_module`) loads the code location;
the compose one (docker/workspace.yaml, `grpc_server`) loads it from a code server started with the
compose file's own command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from dagster import DagsterInstance
from dagster._core.remote_origin import (
    GrpcServerCodeLocationOrigin,
    InProcessCodeLocationOrigin,
    ManagedGrpcPythonEnvCodeLocationOrigin,
)
from dagster._core.workspace.load import location_origins_from_yaml_paths

from coinpilot_pipelines.storage.throwaway_postgres import free_port
from coinpilot_pipelines_tests.deployment_helpers import DOCKER, REPO, load_yaml

JOBS = {"gap_repair_job", "continuity_scan_job", "retrain_job", "calibration_job", "news_poll"}
DAGSTER_TOOL = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dagster"]


# Raised by Dagster's own serialization of every schedule, not by this project.
@pytest.mark.filterwarnings("ignore:Property `ScheduleDefinition.environment_vars` is deprecated:DeprecationWarning")
def test_local_workspace_loads_the_code_location() -> None:
    [origin] = location_origins_from_yaml_paths([str(REPO / "workspace.yaml")])
    assert isinstance(origin, ManagedGrpcPythonEnvCodeLocationOrigin)
    assert origin.location_name == DAGSTER_TOOL["code_location_name"]
    assert origin.loadable_target_origin.module_name == DAGSTER_TOOL["module_name"]
    # `dagster dev` serves this target from a subprocess; loading the same target in this process is
    # what that subprocess does
    in_process = InProcessCodeLocationOrigin(origin.loadable_target_origin, location_name=origin.location_name)
    with DagsterInstance.ephemeral() as instance, in_process.create_location(instance) as location:
        [repository] = location.get_repositories().values()
        assert JOBS <= {job.name for job in repository.get_all_jobs()}


def test_grpc_workspace_names_the_compose_code_server() -> None:
    [origin] = location_origins_from_yaml_paths([str(DOCKER / "workspace.yaml")])
    assert isinstance(origin, GrpcServerCodeLocationOrigin)
    assert origin.location_name == DAGSTER_TOOL["code_location_name"]
    compose = load_yaml(DOCKER / "compose.yaml")
    command = compose["services"][origin.host]["command"]  # the host is the compose service
    assert command[command.index("-p") + 1] == str(origin.port)
    assert command[command.index("-m") + 1] == DAGSTER_TOOL["module_name"]
    assert command[command.index("--location-name") + 1] == origin.location_name
    assert command[command.index("-h") + 1] == "0.0.0.0"  # reachable from the other containers


def test_grpc_workspace_loads_from_the_compose_code_server_command(tmp_path: Path) -> None:
    [origin] = location_origins_from_yaml_paths([str(DOCKER / "workspace.yaml")])
    command = list(load_yaml(DOCKER / "compose.yaml")["services"][origin.host]["command"])
    port = free_port()
    command[command.index("-h") + 1], command[command.index("-p") + 1] = "127.0.0.1", str(port)
    command[0] = str(Path(sys.executable).parent / command[0])
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "COINPILOT_HOME": str(tmp_path / "home")}
    server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        local = GrpcServerCodeLocationOrigin(host="127.0.0.1", port=port, location_name=origin.location_name)
        _wait_until_serving(local, server)
        with DagsterInstance.ephemeral() as instance, local.create_location(instance) as location:
            [repository] = location.get_repositories().values()
            assert JOBS <= {job.name for job in repository.get_all_jobs()}
            assert location.container_image is None  # compose sets DAGSTER_CURRENT_IMAGE; not set here
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_until_serving(origin: GrpcServerCodeLocationOrigin, server: subprocess.Popen) -> None:
    client = origin.create_client()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the code server exited: {server.stderr.read().decode()[-3000:]}")
        try:
            if client.health_check_query() == "SERVING":
                return
        except Exception:  # noqa: BLE001 - not listening yet
            pass
        time.sleep(0.3)
    pytest.fail("the code server did not start serving within 120 s")
