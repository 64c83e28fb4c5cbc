"""Fault injection against real PostgreSQL and the emulator: each fault ends in the clean table.

The final ``ohlcv_candles`` of every scenario is compared with a clean run's, column for column
(all but ``source`` and ``ingested_at``, which say which run wrote a bar and when).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select

from coinpilot_pipelines.defs.candles import build_candles_asset
from coinpilot_pipelines.defs.partitions import market_partitions
from coinpilot_pipelines.storage.database import dispose_engines, get_engine
from coinpilot_pipelines.storage.schema import candle_rejects, ohlcv_candles
from coinpilot_pipelines.storage.throwaway_postgres import ThrowawayPostgres

from .conftest import PostgresServer
from .dagster_helpers import QUIET, market_resources, project_definitions, range_tags, settings_for

COMPARED = [c for c in ohlcv_candles.columns if c.name not in ("source", "ingested_at")]
TEN_DAYS = ("2024-03-01", "2024-03-10")  # 14,400 bars a symbol


@pytest.fixture(scope="module")
def durable_postgres() -> Iterator[PostgresServer]:
    """A cluster of its own (fsync on), so restarting it cannot disturb other tests."""
    server = PostgresServer.__new__(PostgresServer)
    server.cluster = ThrowawayPostgres(durable=True).start()
    server.admin_url = server.cluster.url
    server._template = None
    yield server
    dispose_engines()
    server.close()


def candles(db: str, symbol: str | None = None) -> list[tuple]:
    query = select(*COMPARED).order_by(*ohlcv_candles.primary_key.columns)
    if symbol is not None:
        query = query.where(ohlcv_candles.c.symbol == symbol)
    with get_engine(db).connect() as connection:
        return [tuple(row) for row in connection.execute(query)]


def materialize(db: str, emulator_url: str, symbol: str, days: tuple[str, str] = TEN_DAYS,
                **client: object) -> dg.ExecuteInProcessResult:
    asset = build_candles_asset(market_partitions(settings_for(db, emulator_url, COINPILOT_SYMBOLS=symbol)))
    return dg.materialize([asset], resources=market_resources(db, emulator_url, **client),
                          tags=range_tags(f"{days[0]}|{symbol}", f"{days[1]}|{symbol}"),
                          instance=dg.DagsterInstance.ephemeral(), run_config=QUIET, raise_on_error=False)


def metadata(result: dg.ExecuteInProcessResult) -> dict:
    return {k: v.value for k, v in result.get_asset_materialization_events()[0].materialization.metadata.items()}


_clean: dict[str, list[tuple]] = {}


def clean_table(postgres: PostgresServer, emulator, symbol: str) -> list[tuple]:  # noqa: ANN001
    if symbol not in _clean:
        db = postgres.fresh_database()
        assert materialize(db, emulator.url, symbol).success
        _clean[symbol] = candles(db)
    return _clean[symbol]


def _materialize_in_own_process(db: str, emulator_url: str, symbol: str) -> bool:
    return materialize(db, emulator_url, symbol, max_attempts=4).success


def test_database_restart_in_the_middle_of_a_backfill(durable_postgres: PostgresServer, emulator, fault_report) -> None:  # noqa: ANN001
    expected = clean_table(durable_postgres, emulator, "BTCUSDT")
    db = durable_postgres.fresh_database()
    emulator.set_scenario({"slow_responses": {"count": -1, "delay_s": 0.25}})
    before_restart = []

    def restart_when_writing() -> None:
        while not before_restart:
            with get_engine(db).connect() as connection:
                written = len(connection.execute(select(ohlcv_candles.c.open_time)).all())
            if written:
                before_restart.append(written)
                durable_postgres.cluster.restart(downtime_s=1.5)
            time.sleep(0.05)

    restarter = threading.Thread(target=restart_when_writing)
    restarter.start()
    result = materialize(db, emulator.url, "BTCUSDT", max_in_flight=1, max_attempts=4, chunk_rows=1440)
    restarter.join()
    assert result.success
    figures = metadata(result)
    assert figures["database_retries"] >= 1  # the writes waited for the database and went on
    assert 0 < before_restart[0] < len(expected)
    assert candles(db) == expected
    fault_report(written_before_restart=before_restart[0], database_retries=figures["database_retries"],
                 final_rows=len(expected), rows_inserted=figures["run_rows_inserted"], quarantined=figures["run_rows_rejected"])


def test_a_run_killed_mid_write_is_rerun_to_the_same_data(durable_postgres: PostgresServer, emulator, tmp_path: Path,
                                                          fault_report) -> None:  # noqa: ANN001
    expected = clean_table(durable_postgres, emulator, "XRPUSDT")
    db = durable_postgres.fresh_database()
    emulator.set_scenario({"slow_responses": {"count": -1, "delay_s": 0.3}})
    script = (
        "import sys; sys.path.insert(0, sys.argv[3]);"
        "from coinpilot_pipelines_tests.test_faults import materialize;"
        "materialize(sys.argv[1], sys.argv[2], 'XRPUSDT', max_in_flight=1, chunk_rows=1440)"
    )
    worker = subprocess.Popen([sys.executable, "-c", script, db, emulator.url,
                               str(Path(__file__).resolve().parents[1])], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    written = 0
    deadline = time.monotonic() + 60
    while written == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
        written = len(candles(db))
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    assert 0 < len(candles(db)) < len(expected), "the kill should land mid-backfill"
    killed_at = len(candles(db))

    emulator.set_scenario({})
    rerun = materialize(db, emulator.url, "XRPUSDT")
    assert rerun.success and candles(db) == expected
    figures = metadata(rerun)
    assert figures["run_rows_inserted"] == len(expected) - killed_at and figures["run_rows_unchanged"] == killed_at
    fault_report(rows_before_kill=killed_at, rerun_inserted=figures["run_rows_inserted"],
                 rerun_unchanged=figures["run_rows_unchanged"], final_rows=len(expected), quarantined=0)


def test_a_rate_limit_storm_across_concurrent_runs(durable_postgres: PostgresServer, emulator, fault_report) -> None:  # noqa: ANN001
    symbols = ("BTCUSDT", "XRPUSDT", "ETHUSDT")
    expected = {s: clean_table(durable_postgres, emulator, s) for s in symbols}
    db = durable_postgres.fresh_database()
    emulator.set_scenario({"rate_limit_storm": {"after_requests": 4, "count": 6, "retry_after_s": 2}})
    with ProcessPoolExecutor(len(symbols), mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = [pool.submit(_materialize_in_own_process, db, emulator.url, s) for s in symbols]
        assert all(run.result(timeout=300) for run in runs)
    statuses = emulator.stats()["by_status"]
    assert statuses.get("429", 0) >= 6 and "418" not in statuses  # every run waited as asked: no ban
    for symbol in symbols:
        assert candles(db, symbol) == expected[symbol]
    fault_report(runs=len(symbols), answered_429=statuses.get("429", 0), banned_418=statuses.get("418", 0),
                 final_rows=sum(len(v) for v in expected.values()), quarantined=0)


def test_a_slow_exchange_is_waited_out_within_bounds(durable_postgres: PostgresServer, emulator, fault_report) -> None:  # noqa: ANN001
    expected = clean_table(durable_postgres, emulator, "BTCUSDT")
    db = durable_postgres.fresh_database()
    emulator.set_scenario({"slow_responses": {"after_requests": 1, "count": 3, "delay_s": 1.5}})
    result = materialize(db, emulator.url, "BTCUSDT", max_in_flight=1, max_attempts=5, timeout_s=1.0)
    assert result.success and candles(db) == expected
    figures = metadata(result)
    assert figures["exchange_retries"] == 3  # each slow answer timed out once and was asked again
    fault_report(timeouts_retried=figures["exchange_retries"], requests=figures["exchange_requests"],
                 final_rows=len(expected), quarantined=figures["run_rows_rejected"])


def test_malformed_data_is_quarantined_and_repaired_to_the_clean_table(durable_postgres: PostgresServer, emulator,
                                                                       fault_report) -> None:  # noqa: ANN001
    expected = clean_table(durable_postgres, emulator, "BTCUSDT")
    db = durable_postgres.fresh_database()
    kinds = ["short_row", "non_numeric", "null_price", "high_below_low", "negative_volume", "off_grid"]
    emulator.set_scenario({"malformed": [
        {"symbol": "BTCUSDT", "open_time": f"2024-03-0{i + 2}T0{i}:00:00Z", "kind": kind} for i, kind in enumerate(kinds)]})
    first = materialize(db, emulator.url, "BTCUSDT")
    assert first.success
    figures = metadata(first)
    assert figures["run_rows_rejected"] == len(kinds) and figures["gap_segments_registered"] == len(kinds)
    assert len(candles(db)) == len(expected) - len(kinds)

    emulator.set_scenario({})  # the exchange serves those bars correctly again
    repair = project_definitions(db, emulator.url).resolve_job_def("gap_repair_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), run_config=QUIET)
    assert repair.success and candles(db) == expected
    with get_engine(db).connect() as connection:
        quarantined = connection.execute(select(candle_rejects.c.reason)).scalars().all()
    assert len(quarantined) == len(kinds)  # the bad rows stay on record with their reasons
    fault_report(written=figures["run_rows_inserted"], quarantined=len(quarantined), repaired=len(kinds),
                 final_rows=len(expected))
