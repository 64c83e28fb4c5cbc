"""Continuity: the SQL scan on real data, gap segments, repair to recovered or unrecoverable."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg

from coinpilot_pipelines.clients.binance import BinanceSpotClient
from coinpilot_pipelines.clients.http import RetryPolicy
from coinpilot_pipelines.emulator.recordings import binance_recordings
from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.market.ingest import ingest_candles
from coinpilot_pipelines.market.intervals import Interval, from_ms
from coinpilot_pipelines.market.repair import RepairPolicy, repair_segment
from coinpilot_pipelines.storage.continuity import scan_continuity
from coinpilot_pipelines.storage.database import get_engine
from coinpilot_pipelines.storage.gap_segments import (
    claim_due_segments,
    get_segment,
    list_segments,
    refresh_after_write,
    register_gap,
)

from .dagster_helpers import QUIET, project_definitions
from .picture_helpers import decoded, inline_png

UTC = timezone.utc
MINUTE = Interval.parse("1m")
BTC = SeriesKey("binance", "BTCUSDT", MINUTE)
T0 = datetime(2023, 3, 5, 10, 0, tzinfo=UTC)
NO_WAIT = RepairPolicy(empty_attempts=3, empty_spacing=timedelta(0), transient_backoff=timedelta(0))


def ingest(db: str, emulator, series: SeriesKey, start: datetime, end: datetime) -> None:  # noqa: ANN001
    with BinanceSpotClient(emulator.url, policy=RetryPolicy(max_attempts=2, base_delay_s=0.01)) as client:
        ingest_candles(client, get_engine(db), series, start, end, source="rest")


def minutes(n: int) -> timedelta:
    return timedelta(minutes=n)


# -- the scan on the real recordings ------------------------------------------------------------

def test_scan_reports_exactly_the_holes_of_the_sparse_recording(db_url: str, emulator) -> None:  # noqa: ANN001
    recording = binance_recordings()["XRPETH"]
    series = SeriesKey("binance", "XRPETH", MINUTE)
    start, end = from_ms(recording.start_ms), from_ms(recording.end_ms)
    ingest(db_url, emulator, series, start, end)
    scan = scan_continuity(get_engine(db_url), series, start, end)
    assert (scan.expected_bars, scan.present_bars) == (3560, 2469)
    assert (len(scan.gaps), scan.missing_bars) == (676, 1091)
    present = set(recording.rows)
    for gap in scan.gaps:
        inside = range(int(gap.from_open_time.timestamp() * 1000), int(gap.to_open_time.timestamp() * 1000), 60_000)
        assert not present.intersection(inside)  # every reported minute is really missing ...
        assert int(gap.to_open_time.timestamp() * 1000) in present | {recording.end_ms}  # ... up to a real bar


def test_scan_finds_no_gap_where_quiet_minutes_are_zero_volume_bars(db_url: str, emulator) -> None:  # noqa: ANN001
    start, end = datetime(2023, 3, 1, tzinfo=UTC), datetime(2023, 3, 22, tzinfo=UTC)
    ingest(db_url, emulator, BTC, start, end)
    scan = scan_continuity(get_engine(db_url), BTC, start, end)
    assert (scan.expected_bars, scan.present_bars, scan.gaps) == (30_240, 30_240, [])
    quiet = sum(1 for row in binance_recordings()["BTCUSDT"].rows.values() if row[5] == "0.00000000")
    assert quiet == 658


def test_continuity_scan_command_prints_the_report(pg_url: str, emulator, tmp_path: Path) -> None:  # noqa: ANN001
    series = SeriesKey("binance", "XRPETH", MINUTE)
    ingest(pg_url, emulator, series, datetime(2019, 10, 11, tzinfo=UTC), datetime(2019, 10, 14, tzinfo=UTC))
    env = {"PATH": "/usr/bin:/bin", "COINPILOT_HOME": str(tmp_path)}
    command = [sys.executable, "-m", "coinpilot_pipelines.cli", "continuity-scan", "--symbol", "XRPETH", "--interval",
               "1m", "--days", "3", "--end", "2019-10-14", "--dsn", pg_url, "--json", str(tmp_path / "scan.json"),
               "--auto-insert-missing"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "scan.json").read_text())
    assert json.loads(result.stdout) == report
    assert list(report)[:10] == ["symbol", "interval", "scanned_days", "window_start", "window_end", "expected_bars",
                                 "present_bars", "completeness", "gap_count", "gaps"]
    assert report["window_start"] == 1570752000000 and report["window_end"] == 1571011200000
    assert (report["expected_bars"], report["gap_count"], report["segments_inserted"]) == (4320, 676, 676)
    assert sum(g["missing_bars"] for g in report["gaps"]) == 1091
    first = report["gaps"][0]
    assert first["to_open_time"] - first["from_open_time"] == first["missing_bars"] * 60_000
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert json.loads(again.stdout)["segments_inserted"] == 0  # re-running registers nothing twice
    bad = subprocess.run([*command[:5], "BTC/USDT", *command[6:]], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 1 and bad.stderr.startswith("coinpilot: error: --symbol: 'BTC/USDT' is not a valid symbol")


# -- segments ----------------------------------------------------------------------------------------

def test_overlapping_and_adjacent_gaps_merge_with_an_exact_recount(db_url: str, emulator) -> None:  # noqa: ANN001
    ingest(db_url, emulator, BTC, T0, T0 + minutes(60))
    engine = get_engine(db_url)
    with engine.begin() as connection:  # make real holes: 10:10-10:20 and 10:25-10:40
        from coinpilot_pipelines.storage.schema import ohlcv_candles

        for start, end in ((10, 20), (25, 40)):
            connection.execute(ohlcv_candles.delete().where(ohlcv_candles.c.open_time >= T0 + minutes(start),
                                                            ohlcv_candles.c.open_time < T0 + minutes(end)))
    first = register_gap(engine, BTC, T0 + minutes(10), T0 + minutes(20), source="stream", now=T0)
    second = register_gap(engine, BTC, T0 + minutes(25), T0 + minutes(40), source="scan", now=T0 + minutes(1))
    assert first[0].created and second[0].created
    # One range spanning both (and the 5 stored bars between them) merges them into the oldest.
    merged = register_gap(engine, BTC, T0 + minutes(15), T0 + minutes(30), source="scan", now=T0 + minutes(2))
    assert merged[0].segment_id == first[0].segment_id and not merged[0].created
    survivor = get_segment(engine, first[0].segment_id)
    assert (survivor.from_open_time, survivor.to_open_time) == (T0 + minutes(10), T0 + minutes(40))
    assert (survivor.missing_bars, survivor.remaining_bars) == (30, 25)  # recounted: 5 bars exist inside
    absorbed = get_segment(engine, second[0].segment_id)
    assert (absorbed.state, absorbed.merged_into) == ("merged", survivor.id)
    adjacent = register_gap(engine, BTC, T0 + minutes(40), T0 + minutes(41), source="stream", now=T0)
    assert adjacent == [] or adjacent[0].segment_id == survivor.id  # 10:40 is stored: nothing to add


def test_late_bars_shrink_and_split_a_segment(db_url: str, emulator) -> None:  # noqa: ANN001
    engine = get_engine(db_url)
    ingest(db_url, emulator, BTC, T0, T0 + minutes(5))
    ingest(db_url, emulator, BTC, T0 + minutes(35), T0 + minutes(40))
    segment_id = register_gap(engine, BTC, T0 + minutes(5), T0 + minutes(35), source="stream", now=T0)[0].segment_id
    assert get_segment(engine, segment_id).remaining_bars == 30
    ingest(db_url, emulator, BTC, T0 + minutes(5), T0 + minutes(8))  # late bars at the front: shrink
    ingest(db_url, emulator, BTC, T0 + minutes(20), T0 + minutes(22))  # and in the middle: split
    changes = refresh_after_write(engine, BTC, T0 + minutes(5), T0 + minutes(22), now=T0 + minutes(45))
    assert len(changes) == 1 and len(changes[0].split_into) == 1
    kept, split = get_segment(engine, segment_id), get_segment(engine, changes[0].split_into[0])
    assert (kept.from_open_time, kept.to_open_time, kept.remaining_bars) == (T0 + minutes(8), T0 + minutes(20), 12)
    assert (split.from_open_time, split.to_open_time, split.remaining_bars) == (T0 + minutes(22), T0 + minutes(35), 13)
    assert split.detected_at == kept.detected_at and split.state == "open"
    ingest(db_url, emulator, BTC, T0 + minutes(8), T0 + minutes(20))
    refresh_after_write(engine, BTC, T0 + minutes(8), T0 + minutes(20), now=T0 + minutes(50))
    recovered = get_segment(engine, segment_id)
    assert (recovered.state, recovered.remaining_bars, recovered.recovered_at) == ("recovered", 0, T0 + minutes(50))


def test_an_outage_ends_unrecoverable_after_empty_answers(pg_url: str, emulator) -> None:  # noqa: ANN001
    emulator.set_scenario({"outages": [{"symbol": "BTCUSDT", "start": "2023-03-06T03:00:00Z", "end": "2023-03-06T03:17:00Z"}]})
    day = datetime(2023, 3, 6, tzinfo=UTC)
    ingest(pg_url, emulator, BTC, day, day + timedelta(days=1))
    engine = get_engine(pg_url)
    scan = scan_continuity(engine, BTC, day, day + timedelta(days=1))
    assert [(g.from_open_time, g.missing_bars) for g in scan.gaps] == [(day + timedelta(hours=3), 17)]
    segment_id = register_gap(engine, BTC, scan.gaps[0].from_open_time, scan.gaps[0].to_open_time,
                              source="scan", now=day)[0].segment_id
    states = []
    with BinanceSpotClient(emulator.url) as client:
        for attempt in range(4):
            claimed = claim_due_segments(engine, day + minutes(attempt), limit=5, claim_timeout=minutes(15))
            if not claimed:
                break
            states.append(repair_segment(client, engine, claimed[0], NO_WAIT, day + minutes(attempt)).state)
    assert states == ["open", "open", "unrecoverable"]
    segment = get_segment(engine, segment_id)
    assert segment.state == "unrecoverable" and segment.remaining_bars == 17 and segment.empty_fetches == 3
    assert "no bars for these 17 minutes" in segment.reason
    # The daily scan finds the hole again, but it is explained: nothing new is registered.
    assert register_gap(engine, BTC, scan.gaps[0].from_open_time, scan.gaps[0].to_open_time, source="scan", now=day) == []


def test_a_transient_loss_is_repaired_with_its_time_to_recovery(db_url: str, emulator) -> None:  # noqa: ANN001
    emulator.set_scenario({"withheld": [{"symbol": "BTCUSDT", "start": "2023-03-07T12:00:00Z",
                                         "end": "2023-03-07T12:09:00Z", "times": 1}]})
    day = datetime(2023, 3, 7, tzinfo=UTC)
    ingest(db_url, emulator, BTC, day, day + timedelta(days=1))
    engine = get_engine(db_url)
    gap = scan_continuity(engine, BTC, day, day + timedelta(days=1)).gaps
    assert [(g.from_open_time, g.missing_bars) for g in gap] == [(day + timedelta(hours=12), 9)]
    detected = datetime(2023, 3, 8, 0, 0, tzinfo=UTC)
    register_gap(engine, BTC, gap[0].from_open_time, gap[0].to_open_time, source="scan", now=detected)
    claimed = claim_due_segments(engine, detected + minutes(2), limit=5, claim_timeout=minutes(15))
    with BinanceSpotClient(emulator.url) as client:
        outcome = repair_segment(client, engine, claimed[0], NO_WAIT, detected + minutes(2))
    assert (outcome.state, outcome.bars_inserted, outcome.time_to_recovery_s) == ("recovered", 9, 120.0)
    assert get_segment(engine, claimed[0].id).recovered_at == detected + minutes(2)
    assert scan_continuity(engine, BTC, day, day + timedelta(days=1)).gaps == []


# -- Dagster: the scan asset, its schedule, the repair job ------------------------------------------

def test_scan_job_registers_gaps_once_and_reports_completeness(pg_url: str, emulator) -> None:  # noqa: ANN001
    emulator.set_scenario({"outages": [{"symbol": "XRPUSDT", "start": "2023-03-09T05:00:00Z", "end": "2023-03-09T05:30:00Z"}]})
    for symbol in ("BTCUSDT", "XRPUSDT"):
        ingest(pg_url, emulator, SeriesKey("binance", symbol, MINUTE), datetime(2023, 3, 8, tzinfo=UTC),
               datetime(2023, 3, 10, tzinfo=UTC))
    defs = project_definitions(pg_url, emulator.url)
    job = defs.resolve_job_def("continuity_scan_job")
    config = {**QUIET, "ops": {"gap_segments": {"config": {"days": 2, "end": "2023-03-10"}}}}
    instance = dg.DagsterInstance.ephemeral()
    first = job.execute_in_process(run_config=config, instance=instance)
    again = job.execute_in_process(run_config=config, instance=instance)
    metadata = [{k: v.value for k, v in r.get_asset_materialization_events()[0].materialization.metadata.items()}
                for r in (first, again)]
    assert (metadata[0]["segments_inserted"], metadata[1]["segments_inserted"]) == (1, 0)
    assert metadata[0]["open_segments"] == 1 and metadata[0]["min_completeness_pct"] == round(100 * (2880 - 30) / 2880, 4)
    assert "| XRPUSDT  |" in metadata[0]["per_symbol"]
    decoded(inline_png(metadata[0]["completeness_strip"]))
    segments = list_segments(get_engine(pg_url))
    assert [(s.series.symbol, s.remaining_bars, s.source, s.state) for s in segments] == [("XRPUSDT", 30, "scan", "open")]


def test_scan_expects_no_bar_before_the_first_collected_day(sqlite_url: str, emulator) -> None:  # noqa: ANN001
    ingest(sqlite_url, emulator, SeriesKey("binance", "BTCUSDT", MINUTE), datetime(2023, 3, 8, tzinfo=UTC),
           datetime(2023, 3, 10, tzinfo=UTC))
    defs = project_definitions(sqlite_url, emulator.url, COINPILOT_SYMBOLS="BTCUSDT", COINPILOT_START_DATE="2023-03-08")
    config = {**QUIET, "ops": {"gap_segments": {"config": {"days": 365, "end": "2023-03-10"}}}}
    result = defs.resolve_job_def("continuity_scan_job").execute_in_process(run_config=config,
                                                                             instance=dg.DagsterInstance.ephemeral())
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["window_start"].value == datetime(2023, 3, 8, tzinfo=UTC).timestamp()
    assert metadata["segments_inserted"].value == 0 and list_segments(get_engine(sqlite_url)) == []


def test_scan_schedule_runs_daily_at_0210_utc(pg_url: str, emulator) -> None:  # noqa: ANN001
    defs = project_definitions(pg_url, emulator.url)
    schedule = defs.resolve_schedule_def("continuity_scan_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("10 2 * * *", "UTC")
    assert schedule.job_name == "continuity_scan_job"
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2024, 5, 1, 2, 10, tzinfo=UTC))
    requests = schedule.evaluate_tick(context).run_requests
    assert len(requests) == 1 and requests[0].asset_selection in (None, [dg.AssetKey("gap_segments")])


def test_repair_job_repairs_claimed_segments_within_the_pool(sqlite_url: str, emulator) -> None:  # noqa: ANN001
    day = datetime(2023, 3, 14, tzinfo=UTC)
    emulator.set_scenario({"withheld": [{"symbol": "BTCUSDT", "start": "2023-03-14T01:00:00Z", "end": "2023-03-14T01:05:00Z"},
                                        {"symbol": "BTCUSDT", "start": "2023-03-14T02:00:00Z", "end": "2023-03-14T02:30:00Z"}]})
    ingest(sqlite_url, emulator, BTC, day, day + timedelta(hours=3))
    engine = get_engine(sqlite_url)
    for gap in scan_continuity(engine, BTC, day, day + timedelta(hours=3)).gaps:
        register_gap(engine, BTC, gap.from_open_time, gap.to_open_time, source="scan", now=day)
    defs = project_definitions(sqlite_url, emulator.url)
    result = defs.resolve_job_def("gap_repair_job").execute_in_process(run_config=QUIET, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    summary = next(e for e in result.all_events
                   if e.event_type_value == "STEP_OUTPUT" and e.step_key == "summarize_gap_repairs")
    counts = {k: v.value for k, v in summary.event_specific_data.metadata.items()}
    assert (counts["segments"], counts["recovered"], counts["bars_inserted"]) == (2, 2, 35)
    repaired = [e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    assert {e.event_specific_data.materialization.partition for e in repaired} == {"2023-03-14|BTCUSDT"}
    claims = [e for e in result.all_events if e.step_key and e.step_key.startswith("repair_gap_segment")]
    keys = [e.step_key for e in claims if e.event_type_value == "STEP_SUCCESS"]
    assert len(keys) == 2  # one op per segment
    assert {s.state for s in list_segments(engine)} == {"recovered"}
    assert defs.resolve_job_def("gap_repair_job").graph.node_named("repair_gap_segment").definition.pool == "exchange_api"

