"""The `candles` asset through Dagster, against the emulator over HTTP and a real database."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone

import dagster as dg
import pytest
from sqlalchemy import func, select

from coinpilot_pipelines.defs.candles import CONTINUITY_CHECK, SCHEMA_CHECK, build_candles_asset
from coinpilot_pipelines.defs.partitions import market_partitions
from coinpilot_pipelines.storage.database import get_engine
from coinpilot_pipelines.storage.gap_segments import list_segments
from coinpilot_pipelines.storage.schema import candle_rejects, ohlcv_candles

from .dagster_helpers import QUIET, failure_text, market_resources, range_tags, settings_for
from .picture_helpers import decoded, inline_png

UTC = timezone.utc


def candles_asset(db: str, emulator_url: str) -> dg.AssetsDefinition:
    return build_candles_asset(market_partitions(settings_for(db, emulator_url)))


def materialize(db: str, emulator_url: str, *, partition_key: str | None = None, tags: dict | None = None,
                instance: dg.DagsterInstance | None = None, **client: object) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [candles_asset(db, emulator_url)],
        partition_key=partition_key,
        tags=tags,
        resources=market_resources(db, emulator_url, **client),
        instance=instance or dg.DagsterInstance.ephemeral(),
        run_config=QUIET,
        raise_on_error=False,
    )


def stored_rows(db: str) -> list[tuple]:
    with get_engine(db).connect() as connection:
        return [tuple(r) for r in connection.execute(select(ohlcv_candles).order_by(*ohlcv_candles.primary_key.columns))]


def materialization_metadata(result: dg.ExecuteInProcessResult) -> dict:
    event = result.get_asset_materialization_events()[0]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def check(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == name)


def test_a_partition_materializes_with_metadata_and_passing_checks(db_url: str, emulator) -> None:  # noqa: ANN001
    result = materialize(db_url, emulator.url, partition_key="2023-03-10|BTCUSDT")
    assert result.success
    metadata = materialization_metadata(result)
    assert metadata["rows_fetched"] == metadata["rows_inserted"] == metadata["present_bars"] == 1440
    assert (metadata["rows_rejected"], metadata["missing_bars"], metadata["completeness_pct"]) == (0, 0, 100.0)
    assert metadata["first_open_time"] == datetime(2023, 3, 10, tzinfo=UTC).timestamp()
    assert "| symbol" in metadata["run_per_symbol"] and "2023-03-10 00:00" in metadata["preview"]
    assert check(result, SCHEMA_CHECK).passed and check(result, CONTINUITY_CHECK).passed
    decoded(inline_png(metadata["chart"]))


def test_materializing_the_same_partition_twice_leaves_identical_rows(db_url: str, emulator) -> None:  # noqa: ANN001
    assert materialize(db_url, emulator.url, partition_key="2023-03-11|XRPUSDT").success
    first = stored_rows(db_url)
    again = materialize(db_url, emulator.url, partition_key="2023-03-11|XRPUSDT")
    assert again.success
    assert stored_rows(db_url) == first and len(first) == 1440
    metadata = materialization_metadata(again)
    assert (metadata["run_rows_inserted"], metadata["run_rows_updated"], metadata["run_rows_unchanged"]) == (0, 0, 1440)


def test_a_single_run_backfill_pages_through_a_range_of_days(pg_url: str, emulator) -> None:  # noqa: ANN001
    result = materialize(pg_url, emulator.url, tags=range_tags("2023-03-01|BTCUSDT", "2023-03-07|BTCUSDT"))
    assert result.success
    events = result.get_asset_materialization_events()
    assert len(events) == 7  # one per partition, from one run
    for day, event in enumerate(sorted(events, key=lambda e: e.partition), start=1):
        # Each partition describes its own day; the run's totals stand beside, on each of them.
        metadata = {k: v.value for k, v in event.materialization.metadata.items()}
        assert event.partition == f"2023-03-0{day}|BTCUSDT"
        assert metadata["rows_fetched"] == metadata["rows_inserted"] == metadata["present_bars"] == 1440
        assert metadata["first_open_time"] == datetime(2023, 3, day, tzinfo=UTC).timestamp()
        assert metadata["last_open_time"] == datetime(2023, 3, day, 23, 59, tzinfo=UTC).timestamp()
        assert metadata["run_rows_inserted"] == 7 * 1440 and metadata["exchange_requests"] == 11
        assert "2023-03-01 00:00 .. 2023-03-08 00:00" in metadata["run_per_symbol"]


def _materialize_in_own_process(db: str, emulator_url: str, partition_key: str) -> tuple[bool, int]:
    result = materialize(db, emulator_url, partition_key=partition_key)
    return result.success, materialization_metadata(result)["rows_inserted"] if result.success else -1


def test_concurrent_materializations_of_one_partition_neither_duplicate_nor_deadlock(pg_url: str, emulator) -> None:  # noqa: ANN001
    # Two runs at once, each in its own process, as the Dagster daemon launches them.
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = [pool.submit(_materialize_in_own_process, pg_url, emulator.url, "2023-03-12|BTCUSDT") for _ in range(2)]
        results = [run.result(timeout=180) for run in runs]
    assert all(success for success, _ in results)
    with get_engine(pg_url).connect() as connection:
        total, distinct = connection.execute(
            select(func.count(), func.count(func.distinct(ohlcv_candles.c.open_time)))
        ).one()
    assert total == distinct == 1440
    assert sorted(inserted for _, inserted in results) == [0, 1440]  # one wrote, the other found the bars there


def test_an_outage_yields_fewer_bars_and_a_warning_not_an_error(db_url: str, emulator) -> None:  # noqa: ANN001
    emulator.set_scenario({"outages": [{"symbol": "BTCUSDT", "start": "2023-03-13T10:00:00Z", "end": "2023-03-13T10:45:00Z"}]})
    result = materialize(db_url, emulator.url, partition_key="2023-03-13|BTCUSDT")
    assert result.success
    assert materialization_metadata(result)["missing_bars"] == 45
    assert materialization_metadata(result)["gap_segments_registered"] == 1
    decoded(inline_png(materialization_metadata(result)["chart"]))
    (segment,) = list_segments(get_engine(db_url))
    assert (segment.source, segment.remaining_bars, segment.state) == ("ingest", 45, "open")
    continuity = check(result, CONTINUITY_CHECK)
    assert not continuity.passed and continuity.severity == dg.AssetCheckSeverity.WARN
    assert continuity.metadata["missing_bars"].value == 45
    assert check(result, SCHEMA_CHECK).passed


def test_malformed_rows_are_quarantined_while_the_page_is_stored(db_url: str, emulator) -> None:  # noqa: ANN001
    kinds = ["short_row", "non_numeric", "high_below_low", "negative_volume", "off_grid"]
    emulator.set_scenario({"malformed": [
        {"symbol": "XRPUSDT", "open_time": f"2023-03-14T00:0{i}:00Z", "kind": kind} for i, kind in enumerate(kinds)
    ]})
    result = materialize(db_url, emulator.url, partition_key="2023-03-14|XRPUSDT")
    assert result.success
    metadata = materialization_metadata(result)
    assert (metadata["rows_rejected"], metadata["present_bars"], metadata["missing_bars"]) == (5, 1435, 5)
    with get_engine(db_url).connect() as connection:
        reasons = connection.execute(select(candle_rejects.c.reason).order_by(candle_rejects.c.id)).scalars().all()
    assert reasons[:3] == [
        "malformed kline: expected a 12-element array, got 7 elements",
        "open 'not-a-price' is not a decimal string",
        "high is below max(open, close); low is above min(open, close); high is below low",
    ]
    assert reasons[3].startswith("volume '-") and reasons[3].endswith("' fails greater_than_or_equal_to(0)")
    assert reasons[4] == "open_time is not on the 1m grid"
    assert check(result, SCHEMA_CHECK).passed  # only valid bars were stored


@pytest.mark.parametrize("fault", [{"truncated_bodies": {"count": -1}}, {"server_errors": {"count": -1, "status": 500}}])
def test_persistent_faults_fail_the_run_with_a_clear_message(sqlite_url: str, emulator, fault: dict) -> None:  # noqa: ANN001
    emulator.set_scenario(fault)
    result = materialize(sqlite_url, emulator.url, partition_key="2023-03-15|BTCUSDT")
    assert not result.success
    message = failure_text(result)
    assert "binance klines BTCUSDT 1m" in message and "gave up after 3 attempts" in message
    assert stored_rows(sqlite_url) == []


def test_upbit_as_the_market_exchange(sqlite_url: str, emulator) -> None:  # noqa: ANN001
    settings = settings_for(sqlite_url, emulator.url, COINPILOT_MARKET_EXCHANGE="upbit", COINPILOT_SYMBOLS="KRW-BTC",
                            COINPILOT_START_DATE="2020-01-01")
    result = dg.materialize(
        [build_candles_asset(market_partitions(settings))], partition_key="2020-02-20|KRW-BTC",
        resources=market_resources(sqlite_url, emulator.url, exchange="upbit"),
        instance=dg.DagsterInstance.ephemeral(), run_config=QUIET)
    assert result.success
    metadata = materialization_metadata(result)
    # The recorded KRW-BTC pages cover 08:00-12:00 UTC: every minute of them traded.
    with get_engine(sqlite_url).connect() as connection:
        recorded = connection.execute(select(func.count()).select_from(ohlcv_candles).where(
            ohlcv_candles.c.exchange == "upbit",
            ohlcv_candles.c.open_time >= datetime(2020, 2, 20, 8, tzinfo=UTC),
            ohlcv_candles.c.open_time < datetime(2020, 2, 20, 12, tzinfo=UTC))).scalar_one()
    assert recorded == 240
    # Elsewhere Upbit leaves out minutes without trades: holes, tracked as segments, not errors.
    assert metadata["rows_rejected"] == 0 and metadata["present_bars"] < 1440
    assert metadata["gap_segments_registered"] > 0
