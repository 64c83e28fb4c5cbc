"""`coinpilot ui` operated as a laptop user does: runs launched from the UI, a run worker killed, the
whole thing stopped with Ctrl-C or SIGTERM. Real processes: the webserver, daemon and code server of
`dagster dev`, the MLflow UI and the emulator (about 3 minutes for the module on a 2-core machine).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from coinpilot_pipelines.storage.throwaway_postgres import free_port

from .rehearsal import GraphQL, alive, wait_for
from .test_definitions_and_cli import clean_env

pytestmark = [pytest.mark.laptop, pytest.mark.timeout(600)]
LOCATION = "coinpilot_pipelines.definitions"  # what `dagster dev -m` names the code location
MARK = "COINPILOT_LAPTOP_TEST_MARK"
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


@dataclass
class LaptopUI:
    process: subprocess.Popen
    graphql: GraphQL
    emulator_url: str
    mark: str

    def processes(self) -> list[int]:
        """Every live process started by this `coinpilot ui`, by the mark in its environment."""
        needle = f"{MARK}={self.mark}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and entry.name != str(os.getpid()):
                try:
                    environ = (entry / "environ").read_bytes()
                except OSError:
                    continue
                if needle in environ.split(b"\0") and alive(int(entry.name)):
                    found.append(int(entry.name))
        return found

    def stopped_within(self, signum: signal.Signals, timeout_s: float) -> list[str]:
        """Send ``signum`` to `coinpilot ui` alone, as a terminal's Ctrl-C or a service manager does;
        the command lines of the processes still alive after ``timeout_s``."""
        self.process.send_signal(signum)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.processes():
            self.process.poll()
            time.sleep(0.5)
        return [_command_line(pid) for pid in self.processes()]


def _command_line(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return f"{pid} (gone)"
    return f"{pid} (parent {stat[1]}, group {stat[2]}, session {stat[3]}): {argv[:300]}"


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture
def laptop_ui(tmp_path: Path) -> Iterator[LaptopUI]:
    """`coinpilot ui` on a fresh home, started as a shell starts a background job: SIGINT ignored."""
    mark = uuid.uuid4().hex
    port, mlflow_port = free_port(), free_port()
    log = tmp_path / "ui.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "coinpilot_pipelines.cli", "ui", "--port", str(port), "--mlflow-port", str(mlflow_port)],
            env={**clean_env(tmp_path / "home"), MARK: mark}, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=_ignore_sigint)
    graphql = GraphQL(f"http://127.0.0.1:{port}", location=LOCATION)
    ui = None
    try:
        emulator_url = wait_for("coinpilot ui to start its emulator", lambda: (
            m := re.search(r"emulator on (http://\S+);", log.read_text())) and m.group(1), 60)
        ui = LaptopUI(process, graphql, emulator_url, mark)
        wait_for("the code location to load", graphql.location_loaded, 240, every_s=2)
        wait_for("the daemons to report healthy", lambda: all(graphql.daemons().values()), 180, every_s=2)
        yield ui
    finally:
        graphql.close()
        if process.poll() is None:
            process.kill()
        if ui is not None:  # whatever a failed test left: never leak a daemon into the next test
            for pid in ui.processes():
                os.kill(pid, signal.SIGKILL)
        print(log.read_text()[-4000:])


def executor_runs(graphql: GraphQL) -> list[dict]:
    return graphql.runs(pipelineName="order_executor_job")


def test_order_executors_never_overlap_a_killed_run_fails_and_ctrl_c_stops_everything(laptop_ui: LaptopUI) -> None:
    graphql = laptop_ui.graphql
    # Two launches from the UI at once: the instance's tag limit runs them one after the other.
    launched = [graphql.launch_run("order_executor_job") for _ in range(2)]
    wait_for("both executor runs to finish", lambda: all(graphql.run_finished(r) for r in launched), 240, every_s=2)
    runs = sorted((r for r in executor_runs(graphql) if r["status"] in FINISHED), key=lambda r: r["startTime"])
    assert {graphql.run(r)["status"] for r in launched} == {"SUCCESS"}
    for earlier, later in zip(runs, runs[1:]):  # the sensor's runs count too
        assert earlier["endTime"] <= later["startTime"], runs

    # A run worker killed mid-step: run monitoring marks its run failed (the laptop backstop is 5 minutes).
    httpx.put(f"{laptop_ui.emulator_url}/_emulator/scenario", json={"latency_s": 2.0}, timeout=10).raise_for_status()
    backfill = graphql.launch_backfill(["2023-03-02|BTCUSDT"])
    run_id, worker, step = wait_for("the backfill's candles step to be fetching", lambda: graphql.running_step(
        [r["runId"] for r in graphql.runs(tags=[{"key": "dagster/backfill", "value": backfill}])]), 180)
    killed_at = time.monotonic()
    os.kill(worker, signal.SIGKILL)
    httpx.put(f"{laptop_ui.emulator_url}/_emulator/scenario", json={}, timeout=10).raise_for_status()
    wait_for("the step worker to end with its run worker", lambda: not alive(step), 15)
    assert wait_for("the killed run to be marked failed", lambda: graphql.run_finished(run_id), 300, every_s=2)[
        "status"] == "FAILURE"
    print(f"killed run marked FAILURE after {time.monotonic() - killed_at:.0f} s")

    # Ctrl-C, though the shell that started coinpilot ui ignores SIGINT: nothing is left within 15 s.
    assert laptop_ui.processes()
    assert laptop_ui.stopped_within(signal.SIGINT, 15) == []
    assert laptop_ui.process.wait(timeout=5) == 0


def test_sigterm_stops_everything_with_a_run_in_progress(laptop_ui: LaptopUI) -> None:
    graphql = laptop_ui.graphql
    httpx.put(f"{laptop_ui.emulator_url}/_emulator/scenario", json={"latency_s": 2.0}, timeout=10).raise_for_status()
    backfill = graphql.launch_backfill(["2023-03-03|BTCUSDT"])
    wait_for("the backfill's candles step to be fetching", lambda: graphql.running_step(
        [r["runId"] for r in graphql.runs(tags=[{"key": "dagster/backfill", "value": backfill}])]), 180)
    assert laptop_ui.stopped_within(signal.SIGTERM, 15) == []
