"""A live period on simulated time, on the embedded defaults, and the invariants it must keep.

`simulate` backfills the history before ``start``, trains a first model, then moves one clock (the
project's and the emulator's) bar by bar: at each bar the simulated daemon evaluates every sensor
and schedule that is due and runs what they request. Everything the project writes carries the
simulated time. At the end, `invariants` reads the figures back from the database.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, select

from coinpilot_pipelines.cli.runs import execute
from coinpilot_pipelines.clients.binance import BinanceSpotClient
from coinpilot_pipelines.clock import TICK_AFTER_CLOSE, SimulatedClock
from coinpilot_pipelines.defs import build_definitions, resource_values
from coinpilot_pipelines.defs.partitions import partition_range_tags
from coinpilot_pipelines.emulator.scenarios import Scenario
from coinpilot_pipelines.emulator.server import Emulator
from coinpilot_pipelines.emulator.symbols import ServedSymbols
from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.settings import Settings
from coinpilot_pipelines.simulation.daemon import DaemonFigures, SimulatedDaemon
from coinpilot_pipelines.storage.database import get_engine
from coinpilot_pipelines.storage.frames import query_frame
from coinpilot_pipelines.storage.schema import (
    candle_features,
    gap_segments,
    model_inference_log,
    ohlcv_candles,
    paper_trades,
    signal_scans,
    trade_signals,
    upbit_order_attempts,
)

# News polls replay recorded feeds unrelated to the simulated market; they are left out.
EXCLUDED = frozenset({"news_poll_sensor"})


@dataclass(frozen=True)
class Period:
    start: datetime
    hours: int
    history_days: int
    symbols: tuple[str, ...]

    @property
    def end(self) -> datetime:
        return self.start + timedelta(hours=self.hours)

    @property
    def history_start(self) -> datetime:
        return (self.start - timedelta(days=self.history_days)).replace(hour=0, minute=0, second=0, microsecond=0)


def simulation_home(home: Path) -> Path:
    """The simulation's own home under COINPILOT_HOME, started afresh each run (it never mixes with the demo)."""
    path = home / "simulation"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@contextmanager
def overridden_environment(overrides: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def simulate(period: Period, scenario: Scenario, home: Path,
             progress: Callable[[int, int], None] = lambda done, total: None) -> dict:
    """Run the period; the invariant figures."""
    sim_home = simulation_home(home)
    clock = SimulatedClock(period.start + TICK_AFTER_CLOSE)
    with Emulator(scenario=scenario, symbols=ServedSymbols.of(period.symbols)) as emulator:
        emulator.clock.freeze(_ms(clock.now()))
        overrides = {
            "COINPILOT_HOME": str(sim_home),
            "COINPILOT_SYMBOLS": ",".join(period.symbols),
            "COINPILOT_START_DATE": period.history_start.date().isoformat(),
            "COINPILOT_BINANCE_BASE_URL": emulator.url, "COINPILOT_UPBIT_BASE_URL": emulator.url,
            "COINPILOT_NEWS_BASE_URL": emulator.url,
            "TRAIN_WINDOW_DAYS": os.environ.get("TRAIN_WINDOW_DAYS") or str(period.history_days),
        }
        for name in ("COINPILOT_DATABASE_URL", "MLFLOW_TRACKING_URI"):  # the simulation's own stores
            overrides[name] = ""
        with overridden_environment(overrides):
            settings = Settings.from_env()
            definitions = build_definitions(settings, clock)
            # Run and event records live in memory: each bar's sensor events and runs are written
            # there at a fraction of the cost of SQLite files; the application data is on disk.
            with dg.DagsterInstance.ephemeral() as instance:
                started = time.perf_counter()
                backfill_and_train(definitions, instance, period)
                trained = time.perf_counter()
                daemon = SimulatedDaemon(definitions, instance, clock, resource_values(settings, clock=clock),
                                         excluded=EXCLUDED)
                steps = period.hours * 60
                for step in range(steps):
                    clock.set(period.start + timedelta(minutes=step + 1) + TICK_AFTER_CLOSE)
                    emulator.clock.freeze(_ms(clock.now()))
                    daemon.step()
                    progress(step + 1, steps)
                daemon.figures.seconds["history backfill and first training"] = trained - started
                daemon.figures.seconds["bar steps (the sensors, schedules and runs above)"] = time.perf_counter() - trained
            engine = get_engine(settings.database_url)
            served = _served_bars(emulator.url, settings, period)
            return invariants(engine, settings, period, served, daemon.figures)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def backfill(definitions: dg.Definitions, instance: dg.DagsterInstance, symbols: tuple[str, ...], first_day: date,
             last_day: date) -> None:
    """The candles and features of ``[first_day, last_day]``, one run per symbol."""
    job = definitions.resolve_implicit_global_asset_job_def()
    for symbol in symbols:
        execute(job, instance, asset_selection=[dg.AssetKey("candles"), dg.AssetKey("features")],
                tags=partition_range_tags(first_day, last_day, symbol))


def backfill_and_train(definitions: dg.Definitions, instance: dg.DagsterInstance, period: Period) -> None:
    backfill(definitions, instance, period.symbols, period.history_start.date(), (period.start - timedelta(days=1)).date())
    execute(definitions.resolve_job_def("retrain_job"), instance)


def _served_bars(emulator_url: str, settings: Settings, period: Period) -> dict[str, int]:
    """The bars the exchange had to give for the whole period, asked at its end (what a perfect store holds)."""
    served = {}
    with BinanceSpotClient(emulator_url, now=lambda: period.end) as client:
        for symbol in period.symbols:
            served[symbol] = sum(len(b) for b in client.fetch_candles(symbol, settings.interval, period.history_start,
                                                                      period.end))
    return served


def invariants(engine: Engine, settings: Settings, period: Period, served: dict[str, int],
               daemon: DaemonFigures) -> dict:
    interval = settings.interval.delta
    figures: dict = {"start": period.start.isoformat(), "hours": period.hours, "symbols": list(period.symbols),
                     "per_symbol": {}}
    with engine.connect() as connection:
        for symbol in period.symbols:
            series = SeriesKey(settings.market_exchange, symbol, settings.interval)
            stored, distinct = connection.execute(
                select(func.count(), func.count(ohlcv_candles.c.open_time.distinct()))
                .where(ohlcv_candles.c.symbol == symbol, ohlcv_candles.c.open_time >= period.history_start,
                       ohlcv_candles.c.open_time < period.end)).one()
            figures["per_symbol"][symbol] = {"bars_served": served[symbol], "bars_stored": stored,
                                             "bars_stored_distinct": distinct, "series": series.interval.code}
        segments = query_frame(connection, select(gap_segments))
        signals = query_frame(connection, select(trade_signals))
        trades = query_frame(connection, select(paper_trades))
        scores = query_frame(connection, select(
            model_inference_log.c.symbol, model_inference_log.c.open_time, model_inference_log.c.scored_at)
            .where(model_inference_log.c.open_time >= period.start))
        features = query_frame(connection, select(candle_features.c.open_time, candle_features.c.computed_at)
                               .where(candle_features.c.open_time >= period.start))
        scans = query_frame(connection, select(signal_scans.c.bar_open_time, signal_scans.c.scanned_at)
                            .where(signal_scans.c.bar_open_time >= period.start))
        orders = connection.execute(select(func.count(), func.count(upbit_order_attempts.c.identifier.distinct()))
                                    ).one()
    figures["gap_segments"] = segments.groupby("state").size().to_dict() if len(segments) else {}
    figures["signals_by_status"] = signals.groupby("status").size().to_dict() if len(signals) else {}
    figures["trades"] = {"opened": len(trades), "closed": int((trades["status"] == "closed").sum()) if len(trades) else 0,
                         "open": int((trades["status"] == "open").sum()) if len(trades) else 0}
    figures["orders"] = {"attempts": orders[0], "distinct_identifiers": orders[1]}
    figures["bars_scored"] = len(scores)
    figures["bars_scored_distinct"] = int(scores.drop_duplicates(["symbol", "open_time"]).shape[0])
    figures["lag_bars"] = {
        "features": _lag(features["open_time"], features["computed_at"], interval),
        "score": _lag(scores["open_time"], scores["scored_at"], interval),
        "decision": _lag(pd.concat([scans["bar_open_time"], signals["bar_open_time"]]),
                         pd.concat([scans["scanned_at"], signals["decided_at"]]), interval),
    }
    figures["runs"] = dict(daemon.runs)
    figures["failed_runs"] = daemon.failed_runs
    figures["duplicate_run_keys_refused"] = daemon.duplicate_run_keys
    figures["sensor_and_schedule_evaluations"] = dict(daemon.evaluations)
    figures["wall_seconds"] = {name: round(seconds, 1) for name, seconds in daemon.seconds.most_common()}
    return figures


def _lag(open_times: pd.Series, stamped: pd.Series, interval: timedelta) -> dict:
    """Bars between a bar's close and when it was processed (0: within the bar after it)."""
    frame = pd.DataFrame({"open": pd.to_datetime(open_times, utc=True), "at": pd.to_datetime(stamped, utc=True)}).dropna()
    if frame.empty:
        return {"p50": None, "p95": None, "max": None, "count": 0}
    lag = ((frame["at"] - (frame["open"] + interval)) / interval).to_numpy()
    bars = np.floor(lag).astype(int)
    return {"p50": int(np.percentile(bars, 50)), "p95": int(np.percentile(bars, 95)), "max": int(bars.max()),
            "count": int(len(bars))}
