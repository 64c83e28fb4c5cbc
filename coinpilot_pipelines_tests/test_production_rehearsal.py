"""The production topology rehearsed as an operator runs it: real processes on PostgreSQL, driven through
the webserver's GraphQL API, with a run worker, the code server and the daemon killed on the way.

Budget: about 6 minutes on a 2-core machine (8 at most); each Dagster process start costs about 10 s
here. Run alone with ``pytest -m rehearsal``. Its figures (backfill time, recovery after a killed
worker) are printed at the end of the pytest run and recorded in the README's Deployment section.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from coinpilot_pipelines.storage.schema import ohlcv_candles, promotion_events

from .rehearsal import TIMING_OVERLAY, Topology, alive, topology, wait_for

pytestmark = [pytest.mark.rehearsal, pytest.mark.timeout(600)]

SYMBOLS = ("BTCUSDT", "XRPUSDT")
FIRST_DAY = date(2023, 3, 1)  # the recorded BTCUSDT month; XRPUSDT is synthetic
DAYS = 7
# What the kills in this test are expected to make the daemon and the webserver log, and why.
EXPECTED_ERRORS = {
    "daemon": [
        r"UNAVAILABLE|DagsterUserCodeUnreachableError|Could not reach user code server|failed to connect",  # code server down
        r"StatusCode\.UNAVAILABLE|grpc",
    ],
    "webserver": [
        r"UNAVAILABLE|DagsterUserCodeUnreachableError|Could not reach user code server|failed to connect",
        r"StatusCode\.UNAVAILABLE|grpc",
    ],
}
figures: dict[str, object] = {}


def partitions(first: date, days: int, symbols: tuple[str, ...] = SYMBOLS) -> list[str]:
    return [f"{first + timedelta(days=d)}|{s}" for s in symbols for d in range(days)]


def backfill_runs(rehearsal: Topology, backfill_id: str) -> list[dict]:
    return rehearsal.graphql.runs(tags=[{"key": "dagster/backfill", "value": backfill_id}])


def stored_bars(database_url: str) -> dict[str, tuple[int, int]]:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(select(ohlcv_candles.c.symbol, func.count(), func.count(ohlcv_candles.c.open_time.distinct()))
                                  .group_by(ohlcv_candles.c.symbol)).all()
    engine.dispose()
    return {symbol: (count, distinct) for symbol, count, distinct in rows}


def unexpected_errors(service: str, log: str) -> list[str]:
    patterns = [re.compile(p) for p in EXPECTED_ERRORS[service]]
    lines = [line for line in log.splitlines() if re.search(r"\b(ERROR|CRITICAL)\b", line)]
    return [line for line in lines if not any(p.search(line) for p in patterns)]


def test_the_production_topology_survives_what_operators_see(tmp_path: Path) -> None:
    started = time.monotonic()
    with topology(tmp_path, COINPILOT_SYMBOLS=",".join(SYMBOLS), COINPILOT_START_DATE="2023-01-01",
                  LIVE_KLINE_POLL_INTERVAL_SEC="5", NEWS_POLL_INTERVAL="600", TRAIN_WINDOW_DAYS="7") as rehearsal:
        # -- deploy and start, as the compose file does ----------------------------------------
        deployed = rehearsal.deploy()
        assert "Set concurrency limit for exchange_api to 4." in deployed
        assert "Set concurrency limit for orders to 1." in deployed
        rehearsal.start_all()
        wait_for("the code location to load in the webserver", rehearsal.graphql.location_loaded, 180, every_s=2)
        wait_for("every required daemon to report healthy", lambda: all(rehearsal.graphql.daemons().values()), 120, every_s=2)
        for service in ("postgres", "mlflow", "user_code", "webserver", "daemon"):
            check = wait_for(f"the {service} health check of docker/compose.yaml",
                             lambda s=service: (r := rehearsal.compose_healthcheck(s)).returncode == 0 and r, 60, 2)
            assert check.returncode == 0
        figures["start_up_s"] = round(time.monotonic() - started)

        # -- a backfill whose run worker is killed mid-step -------------------------------------
        rehearsal.exchange_scenario({"latency_s": 2.0})  # slow enough to kill a worker mid-fetch
        launched = time.monotonic()
        backfill_id = rehearsal.graphql.launch_backfill(partitions(FIRST_DAY, DAYS))
        run_id, worker, step = wait_for("a backfill run's candles step to be fetching", lambda: rehearsal.graphql.running_step(
            [r["runId"] for r in backfill_runs(rehearsal, backfill_id)]), 120)
        killed_at = time.monotonic()
        os.kill(worker, signal.SIGKILL)
        rehearsal.exchange_scenario({})
        wait_for("the step worker to end with its run worker", lambda: not alive(step), 10)
        failed = wait_for("the killed run to be marked failed", lambda: rehearsal.graphql.run_finished(run_id), 60)
        assert failed["status"] == "FAILURE"
        retry = wait_for("a retry of the killed run", lambda: next(
            (r for r in rehearsal.graphql.runs(tags=[{"key": "dagster/parent_run_id", "value": run_id}])), None), 90)
        assert {t["key"]: t["value"] for t in retry["tags"]}["dagster/retry_number"] == "1"
        assert wait_for("the retry to finish", lambda: rehearsal.graphql.run_finished(retry["runId"]), 120)["status"] == "SUCCESS"
        figures["recovery_after_killed_worker_s"] = round(time.monotonic() - killed_at)
        wait_for("the backfill to complete", lambda: rehearsal.graphql.backfill(backfill_id)["status"].startswith("COMPLETED"),
                 120, every_s=2)
        figures["backfill_s"] = round(time.monotonic() - launched)
        assert stored_bars(rehearsal.database_url) == {s: (DAYS * 1440, DAYS * 1440) for s in SYMBOLS}
        pool = wait_for("every exchange_api slot to be free again",
                        lambda: (p := rehearsal.pool("exchange_api"))["activeSlotCount"] == 0 and p, 60)
        assert pool["slotCount"] == 4 and pool["claimedSlots"] == []
        assert not [r for r in backfill_runs(rehearsal, backfill_id) if r["status"] not in ("SUCCESS", "FAILURE")]

        # -- the code server killed under a running run -----------------------------------------
        rehearsal.exchange_scenario({"latency_s": 3.0})
        second_backfill = rehearsal.graphql.launch_backfill(partitions(FIRST_DAY + timedelta(days=DAYS), DAYS, ("BTCUSDT",)))
        orphan_run, _, _ = wait_for("the second backfill's step to be fetching", lambda: rehearsal.graphql.running_step(
            [r["runId"] for r in backfill_runs(rehearsal, second_backfill)]), 120)
        rehearsal.services["user_code"].kill_group()
        rehearsal.exchange_scenario({})
        rehearsal.services["user_code"].start()
        rehearsal.wait_for_code_server()

        # -- the ML chain on PostgreSQL, while the orphaned run waits for its backstop ----------
        retrain = rehearsal.graphql.launch_run("retrain_job")
        assert wait_for("retrain_job", lambda: rehearsal.graphql.run_finished(retrain), 240, every_s=2)["status"] == "SUCCESS"
        calibration = rehearsal.graphql.launch_run("calibration_job")
        calibrated = wait_for("calibration_job", lambda: rehearsal.graphql.run_finished(calibration), 240, every_s=2)
        engine = create_engine(rehearsal.database_url)
        with engine.connect() as connection:
            decisions = connection.execute(select(func.count()).select_from(promotion_events)).scalar()
        engine.dispose()
        assert decisions == 1
        figures["calibration_job"] = calibrated["status"]

        orphan = wait_for("the orphaned run to end by the run-monitoring backstop",
                          lambda: rehearsal.graphql.run_finished(orphan_run), 180, every_s=2)
        assert orphan["status"] == "FAILURE"
        wait_for("its exchange_api slot to be freed",
                 lambda: rehearsal.pool("exchange_api")["activeSlotCount"] == 0, 60)

        # -- the daemon killed with runs queued behind a restarting code server -----------------
        rehearsal.start_sensor("live_kline_sensor")
        before = wait_for("a live_kline_sensor tick with a cursor", lambda: next(
            (t for t in rehearsal.sensor_ticks("live_kline_sensor") if t["cursor"]), None), 60, every_s=2)
        rehearsal.services["daemon"].kill_group()
        killed_daemon_at = time.time()
        queued = [rehearsal.graphql.launch_run("order_executor_job") for _ in range(2)]
        assert {rehearsal.graphql.run(r)["status"] for r in queued} == {"QUEUED"}
        rehearsal.services["user_code"].kill_group()
        dead = wait_for("the compose health check to report the dead daemon",
                        lambda: (r := rehearsal.compose_healthcheck("daemon")).returncode != 0 and r, 120, every_s=5)
        assert "not running" in dead.stdout
        figures["dead_daemon_detected_after_s"] = round(time.time() - killed_daemon_at)
        rehearsal.services["daemon"].start()
        wait_for("the restarted daemon to report healthy", lambda: all(rehearsal.graphql.daemons().values()), 120, every_s=2)
        time.sleep(TIMING_OVERLAY["run_queue"]["user_code_failure_retry_delay"])  # a dequeue fails meanwhile
        rehearsal.services["user_code"].start()
        rehearsal.wait_for_code_server()
        executed = [wait_for(f"queued run {r}", lambda r=r: rehearsal.graphql.run_finished(r), 240, every_s=2) for r in queued]
        assert [r["status"] for r in executed] == ["SUCCESS", "SUCCESS"]
        first, second = sorted(executed, key=lambda r: r["startTime"])
        assert first["endTime"] <= second["startTime"], "two order executors overlapped"
        after = wait_for("a live_kline_sensor tick after the restart", lambda: next(
            (t for t in rehearsal.sensor_ticks("live_kline_sensor")
             if t["timestamp"] > killed_daemon_at and t["cursor"]), None), 120, every_s=2)
        before_ms, after_ms = (json.loads(t["cursor"])["last_open_ms"] for t in (before, after))
        assert all(after_ms[s] >= before_ms[s] for s in before_ms), (before_ms, after_ms)

        # -- no error in the logs but the ones the kills cause ------------------------------------
        for service in ("daemon", "webserver"):
            assert unexpected_errors(service, rehearsal.services[service].log()) == [], service
        figures["total_s"] = round(time.monotonic() - started)
    print(f"\nproduction rehearsal figures: {figures}")
