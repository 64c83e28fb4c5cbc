"""``coinpilot bench live``: the live chain in real time under the `coinpilot ui` daemon.

History is backfilled and a first model trained (as `coinpilot simulate` does, on real time), then
`coinpilot ui` runs its daemon against its emulator, which serves bars as they close, with
`live_kline_sensor` on. After a few minutes the latency from each bar's close to its stored bar,
its score and its order decision is read back from the tables (the stamps come from the
project's clock: real time here). Yardstick, in the same run: one bare klines request per
symbol, timed against the same emulator. The breakdown says where the seconds go: the wait for a
sensor tick, the tick's own work, and for the executor runs the queue, the run process start and
the work.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import httpx
import numpy as np
import pandas as pd
from sqlalchemy import select

from coinpilot_pipelines.bench import BenchRow, within
from coinpilot_pipelines.bench.sensor import watch_list
from coinpilot_pipelines.clients.mlflow_registry import CHAMPION
from coinpilot_pipelines.clock import SYSTEM_CLOCK, TICK_AFTER_CLOSE, SimulatedClock
from coinpilot_pipelines.defs import build_definitions, resource_values
from coinpilot_pipelines.emulator.server import Emulator
from coinpilot_pipelines.emulator.symbols import ServedSymbols
from coinpilot_pipelines.market.intervals import to_ms
from coinpilot_pipelines.processes import start_session, stop_sessions
from coinpilot_pipelines.settings import Settings
from coinpilot_pipelines.simulation.run import Period, backfill, backfill_and_train, overridden_environment
from coinpilot_pipelines.storage.database import dispose_engines, get_engine
from coinpilot_pipelines.storage.frames import query_frame
from coinpilot_pipelines.storage.schema import model_inference_log, ohlcv_candles, signal_scans
from coinpilot_pipelines.storage.throwaway_postgres import free_port

DECISION_TARGET_S = 15.0
WARM_UP = timedelta(minutes=1)  # the first tick catches up today's bars: not a live latency
START_TIMEOUT_S = 180
RECORDING_END = datetime(2023, 3, 21, tzinfo=timezone.utc)  # the bundled BTCUSDT recording ends that day


def bench_live(days: int, dsn: str | None, echo: Callable[[str], None], symbols: int = 10,
               minutes: int = 4) -> list[BenchRow]:
    watched = watch_list(symbols)
    home = Path(tempfile.mkdtemp(prefix="coinpilot-bench-live-"))
    yesterday = SYSTEM_CLOCK.now().date() - timedelta(days=1)
    overrides = {"COINPILOT_HOME": str(home), "COINPILOT_SYMBOLS": ",".join(watched),
                 "COINPILOT_START_DATE": yesterday.isoformat(), "COINPILOT_DATABASE_URL": dsn or "",
                 "MLFLOW_TRACKING_URI": "", "DAGSTER_HOME": ""}
    with overridden_environment(overrides):
        echo(f"  training a first model on {days} recorded days of BTCUSDT in {home} ...")
        settings = Settings.from_env()
        if not _train_on_the_recording(days):
            raise RuntimeError(f"no model beat the climatology baseline on {days} recorded days: there is no "
                               "champion to score with; give more --days")
        echo(f"  backfilling yesterday ({yesterday}) of {len(watched)} symbols, the features' history ...")
        _backfill_yesterday(watched, yesterday)
        echo(f"  starting coinpilot ui with live_kline_sensor on; measuring for {minutes} minutes ...")
        ui, emulator_url = _start_ui(home)
        try:
            _start_sensor(home / "dagster", "live_kline_sensor")
            measure_from = SYSTEM_CLOCK.now() + WARM_UP
            yardstick = _yardstick_while_running(emulator_url, watched, until=measure_from + timedelta(minutes=minutes))
        finally:
            stop_sessions([ui])
        stages = _stage_latencies(settings, measure_from)
        runs = _executor_runs(home / "dagster", measure_from)
        dispose_engines()
    imports = _import_seconds()
    return _rows(len(watched), yardstick, stages, runs, imports, settings.continuity.live_poll_interval_s)


def _train_on_the_recording(days: int) -> bool:
    """Train on the bundled BTCUSDT recording, on its own time (the synthetic market of today has no
    edge a model could learn); whether a champion came out. The champion scores any symbol."""
    period = Period(RECORDING_END, 0, days, ("BTCUSDT",))
    clock = SimulatedClock(period.start + TICK_AFTER_CLOSE)
    with Emulator(symbols=ServedSymbols.of(period.symbols)) as emulator:
        emulator.clock.freeze(to_ms(clock.now()))
        with overridden_environment({"COINPILOT_BINANCE_BASE_URL": emulator.url, "COINPILOT_SYMBOLS": "BTCUSDT",
                                     "COINPILOT_START_DATE": period.history_start.date().isoformat(),
                                     "TRAIN_WINDOW_DAYS": str(days)}):
            settings = Settings.from_env()
            with dg.DagsterInstance.ephemeral() as instance:
                backfill_and_train(build_definitions(settings, clock), instance, period)
            return resource_values(settings)["mlflow"].registry().alias_version(CHAMPION) is not None


def _backfill_yesterday(symbols: tuple[str, ...], yesterday: date) -> None:
    with Emulator() as emulator, overridden_environment({"COINPILOT_BINANCE_BASE_URL": emulator.url}):
        with dg.DagsterInstance.ephemeral() as instance:
            backfill(build_definitions(Settings.from_env()), instance, symbols, yesterday, yesterday)


def _start_ui(home: Path) -> tuple[subprocess.Popen, str]:
    """`coinpilot ui` on free ports; the process and its emulator's URL once the UI answers."""
    port = free_port()
    log = (home / "ui.log").open("w")
    ui = start_session([sys.executable, "-m", "coinpilot_pipelines.cli", "ui", "--port", str(port),
                        "--mlflow-port", str(free_port())], env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        found = re.search(r"emulator on (http://\S+);", (home / "ui.log").read_text())
        try:
            if found and httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                return ui, found.group(1)
        except httpx.TransportError:
            pass
        if ui.poll() is not None:
            break
        time.sleep(1)
    stop_sessions([ui])
    raise RuntimeError(f"coinpilot ui did not start: {(home / 'ui.log').read_text()[-2000:]}")


def _start_sensor(dagster_home: Path, name: str) -> None:
    subprocess.run([sys.executable, "-m", "dagster", "sensor", "start", "-m", "coinpilot_pipelines.definitions", name],
                   env={**os.environ, "DAGSTER_HOME": str(dagster_home)}, check=True, capture_output=True,
                   stdin=subprocess.DEVNULL, cwd=dagster_home)


def _yardstick_while_running(emulator_url: str, symbols: Sequence[str], until: datetime) -> list[float]:
    """Seconds of each bare klines request, one per symbol every 10 s, while the chain runs."""
    samples: list[float] = []
    with httpx.Client(base_url=emulator_url) as http:
        while SYSTEM_CLOCK.now() < until:
            for symbol in symbols:
                started = time.perf_counter()
                http.get("/api/v3/klines", params={"symbol": symbol, "interval": "1m", "limit": 10})
                samples.append(time.perf_counter() - started)
            time.sleep(10)
    return samples


def _stage_latencies(settings: Settings, measure_from: datetime) -> dict[str, pd.Series]:
    """Seconds from each bar's close (bars closed after ``measure_from``) to each stage's stamp."""
    bar = settings.interval.delta
    first_open = measure_from - bar
    with get_engine(settings.database_url).connect() as connection:
        stored = query_frame(connection, select(ohlcv_candles.c.symbol, ohlcv_candles.c.open_time,
                                                ohlcv_candles.c.ingested_at.label("at"))
                             .where(ohlcv_candles.c.open_time >= first_open))
        scored = query_frame(connection, select(model_inference_log.c.symbol, model_inference_log.c.open_time,
                                                model_inference_log.c.scored_at.label("at"))
                             .where(model_inference_log.c.open_time >= first_open))
        decided = query_frame(connection, select(signal_scans.c.symbol, signal_scans.c.bar_open_time.label("open_time"),
                                                 signal_scans.c.scanned_at.label("at"))
                              .where(signal_scans.c.bar_open_time >= first_open))

    def seconds(frame: pd.DataFrame) -> pd.Series:
        closes = pd.to_datetime(frame["open_time"], utc=True) + bar
        return (pd.to_datetime(frame["at"], utc=True) - closes).dt.total_seconds()

    return {"stored": seconds(stored), "scored": seconds(scored), "decided": seconds(decided),
            "tick work (stored -> scored)": _paired(stored, scored)}


def _paired(earlier: pd.DataFrame, later: pd.DataFrame) -> pd.Series:
    both = earlier.merge(later, on=["symbol", "open_time"], suffixes=("_from", "_to"))
    return (pd.to_datetime(both["at_to"], utc=True) - pd.to_datetime(both["at_from"], utc=True)).dt.total_seconds()


def _executor_runs(dagster_home: Path, measure_from: datetime) -> dict[str, list[float]]:
    """Seconds each order_executor_job run spent queued, starting its process and working."""
    phases: dict[str, list[float]] = {"queue": [], "process start": [], "work": []}
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        records = instance.get_run_records(dg.RunsFilter(job_name="order_executor_job",
                                                         created_after=measure_from - WARM_UP))
        for record in records:
            starting = instance.all_logs(record.dagster_run.run_id, of_type=dg.DagsterEventType.RUN_STARTING)
            if not starting or record.start_time is None or record.end_time is None:
                continue
            launched = starting[0].timestamp
            phases["queue"].append(launched - record.create_timestamp.timestamp())
            phases["process start"].append(record.start_time - launched)
            phases["work"].append(record.end_time - record.start_time)
    return phases


def _import_seconds() -> dict[str, float]:
    """A fresh interpreter's start, and its import of the definitions a run process loads."""
    def timed(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, stdin=subprocess.DEVNULL)
        return time.perf_counter() - started

    return {"interpreter": timed("pass"), "definitions": timed("import coinpilot_pipelines.definitions")}


def _spread(values: Sequence[float] | pd.Series) -> str:
    array = np.asarray(list(values), dtype=float)
    if not len(array):
        return "none"
    return (f"p50 {np.percentile(array, 50):.2f} / p95 {np.percentile(array, 95):.2f} / max {array.max():.2f} s "
            f"(n={len(array)})")


def _rows(symbols: int, yardstick: list[float], stages: dict[str, pd.Series], runs: dict[str, list[float]],
          imports: dict[str, float], poll_interval_s: int) -> list[BenchRow]:
    rows = [BenchRow("live", f"yardstick: one bare klines request ({symbols} symbols, every 10 s): "
                             f"{_spread(yardstick)}", statistics.median(yardstick) * 1000, "ms")]
    for stage, values in stages.items():
        label = {"stored": "bar close -> stored (the tick's clock when it stores)", "scored": "bar close -> scored",
                 "decided": "bar close -> order decision (signal scan)"}.get(stage, stage)
        p95 = float(np.percentile(values, 95)) if len(values) else float("nan")
        target, met = ("< 15 s", within(p95, at_most=DECISION_TARGET_S)) if stage == "decided" else ("", None)
        rows.append(BenchRow("live", f"{label}: {_spread(values)}; p95", p95, "s", target, met))
    rows.append(BenchRow("live", "sensor interval (minimum_interval_seconds) of both sensors", poll_interval_s, "s"))
    for phase, values in runs.items():
        median = statistics.median(values) if values else float("nan")
        rows.append(BenchRow("live", f"order_executor_job {phase}: {_spread(values)}; p50", median, "s"))
    rows.append(BenchRow("live", "a fresh interpreter, started and stopped", imports["interpreter"], "s"))
    rows.append(BenchRow("live", "a fresh interpreter importing coinpilot_pipelines.definitions",
                         imports["definitions"], "s"))
    return rows
