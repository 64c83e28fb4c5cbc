"""`coinpilot simulate` as an operator runs it: hours of live trading on simulated time, checked from the database.

Marker `simulation`; budget about 2 minutes: two simulations of the same window run side by side
(one process each, about 10 s of start-up, 30 s of backfill and training, then the hours bar by bar),
and the second must leave the same tables as the first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from coinpilot_pipelines.storage.database import get_engine
from coinpilot_pipelines.storage.frames import query_frame
from coinpilot_pipelines.storage.schema import metadata

pytestmark = [pytest.mark.simulation, pytest.mark.timeout(900)]

UTC = timezone.utc
BAR = timedelta(minutes=1)
START = datetime(2023, 3, 21, tzinfo=UTC)  # the recording's last day; the 14 days before it are the history
HOURS = 3
# Late bars early on; the outage late, since features need 200 bars without a hole after it.
LATE = (datetime(2023, 3, 21, 0, 30, tzinfo=UTC), datetime(2023, 3, 21, 0, 50, tzinfo=UTC))
LATE_DELAY = timedelta(seconds=90)
OUTAGE = (datetime(2023, 3, 21, 2, 30, tzinfo=UTC), datetime(2023, 3, 21, 2, 45, tzinfo=UTC))
SCENARIO = {
    "outages": [{"symbol": "BTCUSDT", "start": OUTAGE[0].isoformat(), "end": OUTAGE[1].isoformat()}],
    "late": [{"symbol": "BTCUSDT", "start": LATE[0].isoformat(), "end": LATE[1].isoformat(),
              "delay_s": LATE_DELAY.total_seconds()}],
}
# Exits tight enough to be met on the newest bar many times an hour, and no losing-streak pause, so
# the hours hold many round trips. The label dead band and the 14 days of history give a model
# that earns promotion honestly (Brier skill over climatology with a bootstrap interval above zero).
SETTINGS = {
    "LABEL_DEAD_BAND": "0.001", "PAPER_TAKE_PROFIT": "0.002", "PAPER_STOP_LOSS": "0.002",
    "PAPER_MAX_HOLDING_HOURS": "1", "RISK_LOSING_STREAK": "1000", "RISK_COOLDOWN_HOURS": "1",
}
FEW_BARS = 3
# Identifiers by nature, which differ between two runs of the same window; every other column of
# every table must be equal. Latencies are wall-clock durations.
IDENTIFIERS = {
    "ohlcv_candles": {"ingested_at"},
    "candle_rejects": {"run_id"},
    "promotion_events": {"dagster_run_id"},
    "calibration_reports": {"mlflow_run_id", "dagster_run_id"},
    "upbit_order_attempts": {"uuid", "response_json", "latency_ms"},
    "agent_decisions": {"latency_ms"},
    "runtime_state": {"dagster_run_id"},
}


def simulate(home: Path) -> subprocess.Popen:
    env = {**os.environ, **SETTINGS, "COINPILOT_HOME": str(home)}
    for name in ("COINPILOT_DATABASE_URL", "MLFLOW_TRACKING_URI", "DAGSTER_HOME"):
        env.pop(name, None)
    (home / "scenario.json").write_text(json.dumps(SCENARIO))
    return subprocess.Popen(
        [sys.executable, "-m", "coinpilot_pipelines.cli", "simulate", "--start", START.isoformat(), "--hours", str(HOURS),
         "--history-days", "14", "--scenario", str(home / "scenario.json"), "--json", str(home / "figures.json")],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    homes = [tmp_path_factory.mktemp(f"simulation-{n}") for n in (1, 2)]
    processes = [simulate(home) for home in homes]  # side by side: one core each
    for process in processes:
        _, err = process.communicate(timeout=840)
        assert process.returncode == 0, f"coinpilot simulate failed:\n{err[-4000:]}"
    return homes


def figures(home: Path) -> dict:
    return json.loads((home / "figures.json").read_text())


def table(home: Path, name: str) -> pd.DataFrame:
    engine = get_engine(f"sqlite:///{home / 'simulation' / 'coinpilot.db'}")
    target = metadata.tables[name]
    with engine.connect() as connection:
        return query_frame(connection, select(target).order_by(*target.primary_key.columns))


def test_every_served_bar_is_stored_once_and_the_outage_is_classified(runs: list[Path]) -> None:
    shown = figures(runs[0])
    (symbol,) = shown["per_symbol"].values()
    assert symbol["bars_served"] == symbol["bars_stored"] == symbol["bars_stored_distinct"]
    candles = table(runs[0], "ohlcv_candles")
    period = candles[candles["open_time"] >= START]
    assert len(period) == HOURS * 60 - (OUTAGE[1] - OUTAGE[0]) // BAR  # all but the outage, late bars included
    segments = table(runs[0], "gap_segments")
    # Segments are half-open: [from_open_time, to_open_time).
    outage = segments[(segments["from_open_time"] == OUTAGE[0]) & (segments["to_open_time"] == OUTAGE[1])]
    assert outage["state"].tolist() == ["unrecoverable"], segments.to_string()
    # Everything else the stream saw missing was a late bar, found and recovered once it arrived.
    others = segments.drop(outage.index)
    assert (others["state"] == "recovered").all() and (others["from_open_time"] >= LATE[0]).all(), segments.to_string()
    assert shown["failed_runs"] == []


def test_every_signal_ends_and_no_trade_outlives_its_holding_time(runs: list[Path]) -> None:
    shown, end = figures(runs[0]), START + timedelta(hours=HOURS)
    signals, trades = table(runs[0], "trade_signals"), table(runs[0], "paper_trades")
    closes = signals["bar_open_time"] + BAR
    final = signals["decided_at"].notna()
    assert set(signals.loc[final, "status"]) <= {"executed", "rejected", "expired"}
    # Entries may wait their time-to-live (5 bars) for a fill; exits only for the bar after theirs.
    waited = (signals.loc[final, "decided_at"] - closes[final]) / BAR
    assert waited.max() <= 5 + FEW_BARS, signals[final].assign(waited=waited).sort_values("waited").tail().to_string()
    still_pending = (end - closes[~final]) / BAR
    assert still_pending.empty or still_pending.max() <= FEW_BARS, signals[~final].to_string()
    holding = (trades["exit_time"].fillna(end) - trades["entry_time"]) / BAR
    assert holding.max() <= 60 + FEW_BARS
    # The exits are met on the newest bar, on the tick that stores it; the simulated daemon looks once
    # a bar, so it sees a late bar at the first look after its delay.
    exits = signals[signals["action"] == "exit"]
    late = (exits["bar_open_time"] >= LATE[0]) & (exits["bar_open_time"] <= LATE[1])
    after_close = exits["created_at"] - (exits["bar_open_time"] + BAR)
    assert len(exits) >= 3 and (after_close[~late] < BAR).all() and (after_close[late] < LATE_DELAY + BAR).all()
    assert (exits["status"] == "executed").sum() >= len(exits) - 1
    assert shown["trades"]["closed"] >= 3, shown["trades"]
    orders = table(runs[0], "upbit_order_attempts")
    assert len(orders) > 0 and orders["identifier"].is_unique


def test_every_bar_is_scored_once_as_it_arrives(runs: list[Path]) -> None:
    features, scores = table(runs[0], "candle_features"), table(runs[0], "model_inference_log")
    scorable = features[(features["open_time"] >= START) & features["is_valid"]]["open_time"]
    scored = scores[scores["open_time"] >= START]
    assert scored["open_time"].is_unique and set(scored["open_time"]) == set(scorable)
    lag = figures(runs[0])["lag_bars"]
    for stage in ("features", "score", "decision"):
        assert lag[stage]["p50"] == 0 and lag[stage]["count"] > 0, (stage, lag[stage])
    # The late bars are processed on the tick that sees them, as is the bar after them (its features
    # need the late bar before it); nothing else lags.
    late = (scored["open_time"] >= LATE[0]) & (scored["open_time"] <= LATE[1])
    after_close = scored["scored_at"] - (scored["open_time"] + BAR)
    assert (after_close[~late] < BAR).all() and (after_close[late] < LATE_DELAY + BAR).all()


def test_the_same_window_run_twice_leaves_the_same_tables(runs: list[Path]) -> None:
    compared = []
    for name in metadata.tables:
        first, second = table(runs[0], name), table(runs[1], name)
        ignored = sorted(IDENTIFIERS.get(name, set()))
        pd.testing.assert_frame_equal(first.drop(columns=ignored), second.drop(columns=ignored), obj=name)
        compared.append((name, len(first)))
    assert dict(compared)["ohlcv_candles"] > 14 * 1440 and dict(compared)["model_inference_log"] > 100
