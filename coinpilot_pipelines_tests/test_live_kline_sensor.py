"""`live_kline_sensor` ticks against the emulator, both on one simulated clock: cursor, gaps, late bars,
budget, the bounded catch-up."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from coinpilot_pipelines.clients.binance import BinanceSpotClient
from coinpilot_pipelines.clock import SimulatedClock
from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.market.ingest import ingest_candles
from coinpilot_pipelines.market.intervals import Interval
from coinpilot_pipelines.storage.database import get_engine
from coinpilot_pipelines.storage.gap_segments import get_segment, list_segments

from .dagster_helpers import market_resources, project_definitions

UTC = timezone.utc
MINUTE = Interval.parse("1m")


@pytest.fixture
def ready_minute(emulator) -> datetime:  # noqa: ANN001
    """A minute on the simulated clock both the sensor and the emulator read: the tick sees it 5 s in."""
    minute = datetime(2024, 5, 2, 10, 0, tzinfo=UTC)
    emulator.clock.freeze(int((minute + timedelta(seconds=5)).timestamp() * 1000))
    return minute


def tick(defs: dg.Definitions, db: str, emulator, cursor: str | None) -> dg.SensorExecutionData:  # noqa: ANN001
    sensor = defs.resolve_sensor_def("live_kline_sensor")
    now = SimulatedClock(datetime.fromtimestamp(emulator.clock.now_ms() / 1000, UTC))
    context = dg.build_sensor_context(cursor=cursor, resources=market_resources(db, emulator.url, clock=now),
                                      instance=dg.DagsterInstance.ephemeral())
    return sensor.evaluate_tick(context)


def stored_until(db: str, emulator, symbol: str, end: datetime) -> None:  # noqa: ANN001
    with BinanceSpotClient(emulator.url, now=lambda: end) as client:
        ingest_candles(client, get_engine(db), SeriesKey("binance", symbol, MINUTE), end - timedelta(minutes=30), end,
                       source="rest")


def test_ticks_advance_the_cursor_register_gaps_once_and_report_bars(pg_url: str, emulator, ready_minute: datetime) -> None:  # noqa: ANN001
    start = ready_minute - timedelta(minutes=20)
    for symbol in ("BTCUSDT", "XRPUSDT"):
        stored_until(pg_url, emulator, symbol, start)
    emulator.set_scenario({"outages": [{"symbol": "BTCUSDT", "start": (start + timedelta(minutes=5)).isoformat(),
                                        "end": (start + timedelta(minutes=9)).isoformat()}]})
    defs = project_definitions(pg_url, emulator.url, LIVE_KLINE_LOOKBACK_BARS="3")

    first = tick(defs, pg_url, emulator, None)
    cursor = json.loads(first.cursor)
    last_closed = int((ready_minute - timedelta(minutes=1)).timestamp() * 1000)
    assert cursor["last_open_ms"] == {"BTCUSDT": last_closed, "XRPUSDT": last_closed}
    segments = list_segments(get_engine(pg_url))
    assert [(s.series.symbol, s.source, s.remaining_bars, s.from_open_time) for s in segments] == [
        ("BTCUSDT", "stream", 4, start + timedelta(minutes=5))]
    assert [r.run_key for r in first.run_requests] == [f"gap-segment-{segments[0].id}"]
    assert first.run_requests[0].run_config == {"ops": {"claim_gap_segments": {"config": {"segment_ids": [segments[0].id]}}}}
    # Each symbol's new bars are reported as candles, and as the features computed from them.
    reported = sorted((e.asset_key.to_user_string(), e.partition) for e in first.asset_events)
    assert reported == [(asset, f"{ready_minute.date()}|{symbol}") for asset in ("candles", "features")
                        for symbol in ("BTCUSDT", "XRPUSDT")]

    second = tick(defs, pg_url, emulator, first.cursor)
    assert second.run_requests == []  # the same hole is not requested again
    assert json.loads(second.cursor)["last_open_ms"]["BTCUSDT"] >= last_closed
    assert len(list_segments(get_engine(pg_url))) == 1


def test_late_bars_behind_the_cursor_recover_their_segment(pg_url: str, emulator, ready_minute: datetime) -> None:  # noqa: ANN001
    start = ready_minute - timedelta(minutes=12)
    stored_until(pg_url, emulator, "XRPUSDT", start)
    late = {"symbol": "XRPUSDT", "start": (start + timedelta(minutes=3)).isoformat(),
            "end": (start + timedelta(minutes=6)).isoformat(), "delay_s": 3600}
    emulator.set_scenario({"late": [late]})
    defs = project_definitions(pg_url, emulator.url, COINPILOT_SYMBOLS="XRPUSDT", LIVE_KLINE_LOOKBACK_BARS="15")
    first = tick(defs, pg_url, emulator, None)
    (segment,) = list_segments(get_engine(pg_url))
    assert segment.remaining_bars == 3 and len(first.run_requests) == 1

    emulator.set_scenario({})  # the late bars finally show up at the exchange
    second = tick(defs, pg_url, emulator, first.cursor)
    assert get_segment(get_engine(pg_url), segment.id).state == "recovered"
    assert second.run_requests == []


def test_a_tick_keeps_to_its_time_budget_and_resumes_where_it_stopped(pg_url: str, emulator, ready_minute: datetime) -> None:  # noqa: ANN001
    for symbol in ("BTCUSDT", "XRPUSDT", "ETHUSDT"):
        stored_until(pg_url, emulator, symbol, ready_minute - timedelta(minutes=3))
    emulator.set_scenario({"latency_s": 0.4})
    defs = project_definitions(pg_url, emulator.url, COINPILOT_SYMBOLS="BTCUSDT,XRPUSDT,ETHUSDT",
                               LIVE_KLINE_TICK_BUDGET_SEC="0.3")
    # Every request takes longer than the whole budget, so each tick stops after its first symbol.
    first = tick(defs, pg_url, emulator, None)
    cursor = json.loads(first.cursor)
    assert list(cursor["last_open_ms"]) == ["BTCUSDT"] and cursor["resume_at"] == "XRPUSDT"

    # A restarted daemon hands the stored cursor back; the next tick starts where this one stopped.
    second = tick(defs, pg_url, emulator, first.cursor)
    cursor = json.loads(second.cursor)
    assert set(cursor["last_open_ms"]) == {"BTCUSDT", "XRPUSDT"} and cursor["resume_at"] == "ETHUSDT"


def test_a_corrupt_cursor_is_a_clear_error(pg_url: str, emulator) -> None:  # noqa: ANN001
    defs = project_definitions(pg_url, emulator.url)
    with pytest.raises(Exception, match="live kline cursor is not understood"):
        tick(defs, pg_url, emulator, '{"oops": 1}')


def test_a_store_far_behind_now_catches_up_a_day_and_leaves_the_rest_to_a_backfill(pg_url: str, emulator) -> None:  # noqa: ANN001
    now = datetime(2023, 3, 10, 12, 0, 30, tzinfo=UTC)
    emulator.clock.freeze(int(now.timestamp() * 1000))
    stored_until(pg_url, emulator, "BTCUSDT", datetime(2023, 3, 2, tzinfo=UTC))
    defs = project_definitions(pg_url, emulator.url, COINPILOT_SYMBOLS="BTCUSDT")
    first = tick(defs, pg_url, emulator, None)
    engine = get_engine(pg_url)
    assert list_segments(engine) == [] and first.run_requests == []  # no gap segment of days for repair
    (event,) = [e for e in first.asset_events if e.asset_key == dg.AssetKey("candles")]
    assert event.partition == "2023-03-10|BTCUSDT" and event.metadata["rows_inserted"].value == 1440
    # From after the newest stored bar (2023-03-01 23:59) to where the day caught up starts (2023-03-09 12:00).
    assert event.metadata["behind_bars_left_to_backfill"].value == 7 * 1440 + 720
    assert json.loads(first.cursor)["last_open_ms"]["BTCUSDT"] == int(datetime(2023, 3, 10, 11, 59, tzinfo=UTC)
                                                                      .timestamp() * 1000)
