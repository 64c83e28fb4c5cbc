"""The production topology on one machine, as real processes: PostgreSQL, the deploy step, the MLflow
server, the user-code gRPC server, the Dagster daemon and webserver, and the exchange emulator.

Each service runs the command docker/compose.yaml gives it, with the container's ports and paths
replaced by the rehearsal's; the instance is the repository's root dagster.yaml with only the timing
keys in `TIMING_OVERLAY` shortened, so the rehearsal fits a test's budget. Everything is driven the
way an operator drives it: through the webserver's GraphQL API and by killing processes.
"""

from __future__ import annotations

import copy
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml

from coinpilot_pipelines.storage.throwaway_postgres import ThrowawayPostgres, free_port

from .deployment_helpers import DOCKER, REPO, load_yaml

BIN = Path(sys.executable).parent
COMPOSE = load_yaml(DOCKER / "compose.yaml")
LOCATION = "coinpilot_pipelines"
REPOSITORY = "__repository__"
CONTAINER_WORKSPACE = "/opt/dagster/home/workspace.yaml"
# The only keys the rehearsal changes in the root policy: how often and how long to wait.
TIMING_OVERLAY = {
    "run_monitoring": {"poll_interval_seconds": 5, "max_runtime_seconds": 75, "free_slots_after_run_end_seconds": 5},
    "run_queue": {"user_code_failure_retry_delay": 5},
}


def deep_merge(base: dict, overlay: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        merged[key] = deep_merge(merged.get(key, {}), value) if isinstance(value, dict) else value
    return merged


def wait_for(what: str, condition: Callable[[], Any], timeout_s: float, every_s: float = 0.5) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as exc:  # noqa: BLE001 - a service still starting answers with errors
            last_error, value = exc, None
        if value:
            return value
        time.sleep(every_s)
    raise TimeoutError(f"{what}: not within {timeout_s:.0f} s" + (f" (last error: {last_error})" if last_error else ""))


@dataclass
class Service:
    """One long-running process in its own session, so it (and what it starts) can be killed as a unit."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None
    starts: int = 0

    def start(self) -> Service:
        self.starts += 1
        with open(self.log_path, "a") as log:
            log.write(f"\n===== start {self.starts}: {' '.join(self.argv)}\n")
            self.process = subprocess.Popen(self.argv, env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill_group(self) -> None:
        """SIGKILL the service and every process it started, as when its container is killed."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def kill(self) -> None:
        """SIGKILL the service's own process only."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            self.kill_group()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def step_processes(run_worker: int) -> list[int]:
    """The multiprocess executor's step workers under a run worker (not multiprocessing's resource tracker)."""
    return [pid for pid in children(run_worker)
            if "resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")]


class GraphQL:
    """The webserver's GraphQL API, as the UI uses it, for the code location named ``location``."""

    def __init__(self, url: str, location: str = LOCATION) -> None:
        self._http = httpx.Client(base_url=url, timeout=60)
        self.location = location

    def __call__(self, query: str, **variables: Any) -> dict:
        response = self._http.post("/graphql", json={"query": query, "variables": variables})
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def launch_run(self, job: str, tags: dict[str, str] | None = None) -> str:
        data = self("""mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
            __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
            ... on RunConfigValidationInvalid { errors { message } } } }""",
                    params={"selector": {"repositoryLocationName": self.location, "repositoryName": REPOSITORY,
                                         "jobName": job},
                            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}})
        result = data["launchRun"]
        assert result["__typename"] == "LaunchRunSuccess", result
        return result["run"]["runId"]

    def runs(self, **run_filter: Any) -> list[dict]:
        data = self("""query($filter: RunsFilter) { runsOrError(filter: $filter) { ... on Runs { results {
            runId status jobName startTime endTime parentRunId tags { key value } } } } }""", filter=run_filter)
        return data["runsOrError"]["results"]

    def run(self, run_id: str) -> dict:
        (found,) = self.runs(runIds=[run_id])
        return found

    def run_finished(self, run_id: str) -> dict | None:
        found = self.run(run_id)
        return found if found["status"] in ("SUCCESS", "FAILURE", "CANCELED") else None

    def location_loaded(self) -> bool:
        data = self("""{ workspaceOrError { ... on Workspace { locationEntries {
            name loadStatus locationOrLoadError { __typename } } } } }""")
        entries = data["workspaceOrError"]["locationEntries"]
        return any(e["name"] == self.location and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
                   for e in entries)

    def daemons(self) -> dict[str, bool]:
        data = self("""{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }""")
        return {d["daemonType"]: d["healthy"] for d in data["instance"]["daemonHealth"]["allDaemonStatuses"]
                if d["required"]}

    def launch_backfill(self, partitions: list[str]) -> str:
        data = self("""mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
            __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
                            params={"assetSelection": [{"path": ["candles"]}], "partitionNames": partitions})
        result = data["launchPartitionBackfill"]
        assert result["__typename"] == "LaunchBackfillSuccess", result
        return result["backfillId"]

    def backfill(self, backfill_id: str) -> dict:
        return self("""query($id: String!) { partitionBackfillOrError(backfillId: $id) {
            ... on PartitionBackfill { status } } }""", id=backfill_id)["partitionBackfillOrError"]

    def run_events(self, run_id: str) -> list[dict]:
        data = self("""query($runId: ID!) { logsForRun(runId: $runId) { ... on EventConnection {
            events { __typename ... on MessageEvent { message stepKey } } } } }""", runId=run_id)
        return data["logsForRun"]["events"]

    def running_step(self, run_ids: list[str]) -> tuple[str, int, int] | None:
        """A run whose step has started executing: its id, its run worker's and its step worker's pids."""
        for run_id in run_ids:
            events = self.run_events(run_id)
            if not any(e["__typename"] == "ExecutionStepStartEvent" for e in events):
                continue
            pids = [int(m.group(1)) for e in events
                    if (m := re.search(r"Started process for run \(pid: (\d+)\)", e.get("message") or ""))]
            if pids and alive(pids[0]) and step_processes(pids[0]):
                return run_id, pids[0], step_processes(pids[0])[0]
        return None

    def close(self) -> None:
        self._http.close()


@dataclass
class Topology:
    root: Path
    pg: ThrowawayPostgres = field(default_factory=ThrowawayPostgres)
    ports: dict[str, int] = field(default_factory=lambda: {name: free_port() for name in
                                                           ("webserver", "user_code", "mlflow", "emulator")})
    services: dict[str, Service] = field(default_factory=dict)

    # -- setup ---------------------------------------------------------------------------------
    def prepare(self, **settings: str) -> None:
        self.pg.start()
        with psycopg.connect(host="127.0.0.1", port=self.pg.port, user="postgres", dbname="postgres",
                             autocommit=True) as connection:
            for database in ("dagster", "coinpilot", "mlflow"):
                connection.execute(f'CREATE DATABASE "{database}"')
        self.home = self.root / "dagster-home"
        self.home.mkdir(parents=True)
        policy = deep_merge(load_yaml(REPO / "dagster.yaml"), TIMING_OVERLAY)
        (self.home / "dagster.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
        self.workspace = self.home / "workspace.yaml"
        grpc = load_yaml(DOCKER / "workspace.yaml")["load_from"][0]["grpc_server"]
        assert grpc["location_name"] == LOCATION
        grpc.update(host="127.0.0.1", port=self.ports["user_code"])
        self.workspace.write_text(yaml.safe_dump({"load_from": [{"grpc_server": grpc}]}))
        (self.root / "mlflow-artifacts").mkdir()
        pg = f"postgres@127.0.0.1:{self.pg.port}"
        emulator = f"http://127.0.0.1:{self.ports['emulator']}"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("COINPILOT_", "DAGSTER_", "MLFLOW_"))}
        self.env = {
            **inherited,
            "PATH": f"{BIN}:{self.pg.bindir}:{inherited.get('PATH', '/usr/bin:/bin')}",
            "DAGSTER_HOME": str(self.home),
            "DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(self.pg.port), "DAGSTER_PG_USER": "postgres",
            "DAGSTER_PG_PASSWORD": "rehearsal", "DAGSTER_PG_DB": "dagster",
            "COINPILOT_HOME": str(self.root / "coinpilot-home"),
            "COINPILOT_DATABASE_URL": f"postgresql+psycopg://{pg}/coinpilot",
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{self.ports['mlflow']}",
            "COINPILOT_BINANCE_BASE_URL": emulator, "COINPILOT_UPBIT_BASE_URL": emulator,
            "COINPILOT_NEWS_BASE_URL": emulator,
            **settings,
        }
        self.emulator_url = emulator
        self.database_url = self.env["COINPILOT_DATABASE_URL"]
        self.graphql = GraphQL(f"http://127.0.0.1:{self.ports['webserver']}")

    def deploy(self) -> str:
        """docker/init.sh, the deploy step: instance and application migrations, pool limits."""
        result = subprocess.run(["sh", str(DOCKER / "init.sh")], env={**self.env, "EXCHANGE_API_POOL_LIMIT": "4"},
                                cwd=REPO, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return result.stdout + result.stderr

    def compose_command(self, service: str) -> list[str]:
        """The service's command in docker/compose.yaml, with the rehearsal's ports and paths."""
        ports = {"user_code": ("4000", "user_code"), "webserver": ("3000", "webserver"), "mlflow": ("5000", "mlflow")}
        argv = []
        for token in COMPOSE["services"][service]["command"]:
            token = {"0.0.0.0": "127.0.0.1", CONTAINER_WORKSPACE: str(self.workspace)}.get(token, token)
            if service in ports and token == ports[service][0]:
                token = str(self.ports[ports[service][1]])
            argv.append(token)
        return argv

    def service(self, name: str, argv: list[str], **env: str) -> Service:
        if name not in self.services:
            self.services[name] = Service(name, argv, {**self.env, **env}, self.root / f"{name}.log")
        return self.services[name]

    def start_all(self) -> None:
        self.service("emulator", [str(BIN / "coinpilot"), "emulator", "--port", str(self.ports["emulator"])]).start()
        mlflow_env = COMPOSE["services"]["mlflow"]["environment"]
        self.service("mlflow", self.compose_command("mlflow"),
                     MLFLOW_BACKEND_STORE_URI=f"postgresql+psycopg://postgres@127.0.0.1:{self.pg.port}/mlflow",
                     MLFLOW_ARTIFACTS_DESTINATION=str(self.root / "mlflow-artifacts"),
                     MLFLOW_SERVER_ALLOWED_HOSTS=f"127.0.0.1:{self.ports['mlflow']},localhost:{self.ports['mlflow']}"
                     ).start()
        assert set(mlflow_env) == {"MLFLOW_BACKEND_STORE_URI", "MLFLOW_ARTIFACTS_DESTINATION",
                                   "MLFLOW_SERVER_ALLOWED_HOSTS"}, "the MLflow service's settings changed"
        for name in ("user_code", "daemon", "webserver"):
            self.service(name, self.compose_command(name)).start()

    def stop_all(self) -> None:
        for service in self.services.values():
            service.stop()
        self.graphql.close()
        self.pg.destroy()

    # -- the operator's view ---------------------------------------------------------------------
    def wait_for_code_server(self) -> None:
        """After a code-server (re)start: its health check passes and the webserver has reloaded it."""
        wait_for("the code server's health check", lambda: self.compose_healthcheck("user_code").returncode == 0, 120, 2)
        self.graphql("""mutation($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) {
            __typename } }""", name=LOCATION)
        wait_for("the code location to load in the webserver", self.graphql.location_loaded, 120, every_s=2)

    def start_sensor(self, name: str) -> None:
        data = self.graphql("""mutation($selector: SensorSelector!) { startSensor(sensorSelector: $selector) {
            __typename } }""", selector=self._selector(sensorName=name))
        assert data["startSensor"]["__typename"] == "Sensor", data

    def sensor_ticks(self, name: str) -> list[dict]:
        data = self.graphql("""query($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
            ... on Sensor { sensorState { ticks(limit: 20) { status timestamp cursor skipReason } } } } }""",
                            selector=self._selector(sensorName=name))
        return data["sensorOrError"]["sensorState"]["ticks"]

    def pool(self, key: str) -> dict:
        data = self.graphql("""query($key: String!) { instance { concurrencyLimit(concurrencyKey: $key) {
            concurrencyKey slotCount activeSlotCount claimedSlots { runId stepKey } } } }""", key=key)
        return data["instance"]["concurrencyLimit"]

    def exchange_scenario(self, scenario: dict) -> None:
        """Switch the emulator's fault scenario (its admin endpoint), e.g. a slow exchange."""
        httpx.put(f"{self.emulator_url}/_emulator/scenario", json=scenario, timeout=10).raise_for_status()

    def _selector(self, **name: str) -> dict:
        return {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, **name}

    # -- health checks as compose runs them ---------------------------------------------------------
    def compose_healthcheck(self, service: str, **env: str) -> subprocess.CompletedProcess:
        """Run the service's compose health check against the rehearsal's process."""
        test = COMPOSE["services"][service]["healthcheck"]["test"]
        ports = {"user_code": "4000", "webserver": "3000", "mlflow": "5000"}
        argv = []
        for token in test[1:]:
            if service in ports:
                token = token.replace(ports[service], str(self.ports[service]))
            argv.append(token)
        if test[0] == "CMD-SHELL":
            argv = ["sh", "-c", argv[0].replace("$$", "$")]
        environment = {**self.env, "POSTGRES_USER": "postgres", "PGHOST": "127.0.0.1", "PGPORT": str(self.pg.port),
                       **env}
        return subprocess.run(argv, env=environment, capture_output=True, text=True, timeout=120)


@contextmanager
def topology(root: Path, **settings: str) -> Iterator[Topology]:
    rehearsal = Topology(root)
    try:
        rehearsal.prepare(**settings)
        yield rehearsal
    except BaseException:
        for service in rehearsal.services.values():  # what each process said, for the failure report
            tail = "\n".join(service.log().splitlines()[-40:])
            print(f"\n----- {service.name} (last lines of {service.log_path}) -----\n{tail}", file=sys.stderr)
        raise
    finally:
        rehearsal.stop_all()
