"""The storage layer on real PostgreSQL and on SQLite: migrations, exact values, idempotent upserts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select

from coinpilot_pipelines.clients.http import RequestGate
from coinpilot_pipelines.market.candles import CandleReject, SeriesKey, build_candle_frame
from coinpilot_pipelines.market.intervals import Interval
from coinpilot_pipelines.storage.backoff import DatabasePause
from coinpilot_pipelines.storage.candles import (
    consistency_violations,
    read_candles,
    record_rejects,
    upsert_candles,
    window_summary,
)
from coinpilot_pipelines.storage.database import create_database_engine, current_revision, get_engine, upgrade
from coinpilot_pipelines.storage.ddl import SNAPSHOT, render_postgresql_ddl
from coinpilot_pipelines.storage.features import read_features
from coinpilot_pipelines.storage.schema import candle_rejects, metadata, ohlcv_candles

UTC = timezone.utc
SERIES = SeriesKey("binance", "BTCUSDT", Interval.parse("1m"))
T0 = datetime(2024, 3, 5, tzinfo=UTC)


def frame_of(minutes: range, *, price: str = "60685.22000000", quote: str = "123456789.123456789012") -> object:
    open_ms = np.array([int((T0 + timedelta(minutes=m)).timestamp() * 1000) for m in minutes], dtype=np.int64)
    n = len(open_ms)
    return build_candle_frame(
        open_time_ms=open_ms,
        close_time_ms=open_ms + 59_999,
        decimals={"open": [price] * n, "high": ["60729.84000000"] * n, "low": ["60670.90000000"] * n,
                  "close": ["60719.27000000"] * n, "volume": ["21.63272000"] * n, "quote_volume": [quote] * n},
        trade_count=[617] * n,
        raw_index=np.arange(n),
    )


def test_migrations_are_idempotent_and_match_the_schema(postgres) -> None:  # noqa: ANN001
    for url in (postgres.fresh_database(migrated=False), "sqlite://"):
        engine = create_database_engine(url)
        head = upgrade(engine)
        assert upgrade(engine) == head == current_revision(engine)
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
        assert differences == [], f"{engine.dialect.name}: migrations and schema.py differ: {differences}"
        engine.dispose()


def test_ddl_snapshot_is_in_sync_with_the_schema() -> None:
    assert SNAPSHOT.read_text() == render_postgresql_ddl(), (
        "sql/schema_postgresql.sql is stale: run python -m coinpilot_pipelines.storage.ddl and review the diff"
    )


def test_upsert_inserts_then_leaves_identical_rows_unchanged(db_url: str) -> None:
    engine = get_engine(db_url)
    first = upsert_candles(engine, SERIES, frame_of(range(0, 100)), source="rest", ingested_at=T0)
    assert (first.inserted, first.updated, first.unchanged) == (100, 0, 0)
    again = upsert_candles(engine, SERIES, frame_of(range(0, 100)), source="rest", ingested_at=T0 + timedelta(hours=1))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 100)
    with engine.connect() as connection:
        stamps = connection.execute(select(func.min(ohlcv_candles.c.ingested_at), func.max(ohlcv_candles.c.ingested_at))).one()
    assert stamps == (T0, T0), "an unchanged bar must not be rewritten"


def test_upsert_overlapping_batch_counts_inserts_updates_and_unchanged(db_url: str) -> None:
    engine = get_engine(db_url)
    upsert_candles(engine, SERIES, frame_of(range(0, 10)), source="rest", ingested_at=T0)
    changed = frame_of(range(5, 15))
    changed.loc[changed.index < 2, "open"] = "60686.00000000"  # minutes 5 and 6 were revised
    counts = upsert_candles(engine, SERIES, changed, source="repair", ingested_at=T0 + timedelta(hours=1))
    assert (counts.inserted, counts.updated, counts.unchanged) == (5, 2, 3)
    stored = read_candles(engine, SERIES, T0, T0 + timedelta(minutes=15))
    assert len(stored) == 15
    assert list(stored["open"].map(Decimal)[4:8]) == [Decimal("60685.22"), Decimal("60686"), Decimal("60686"), Decimal("60685.22")]


def test_exact_decimals_and_utc_times_round_trip(db_url: str) -> None:
    engine = get_engine(db_url)
    upsert_candles(engine, SERIES, frame_of(range(3)), source="rest", ingested_at=T0)
    with engine.connect() as connection:
        row = connection.execute(select(ohlcv_candles).order_by(ohlcv_candles.c.open_time)).first()
    assert row.quote_volume == Decimal("123456789.123456789012")  # 21 significant digits, not a float
    assert row.open == Decimal("60685.22")
    assert row.open_time == T0 and row.open_time.utcoffset() == timedelta(0)
    assert row.close_time == T0 + timedelta(milliseconds=59_999)


def test_rejects_are_stored_once_with_their_reason(db_url: str) -> None:
    engine = get_engine(db_url)
    rejects = [CandleReject(raw_payload=[1, "x"], reason="malformed kline: 2 elements"),
               CandleReject(raw_payload=[2, "y"], reason="high is below low", open_time=T0)]
    assert record_rejects(engine, SERIES, rejects, source="rest", run_id="r1", rejected_at=T0) == 2
    assert record_rejects(engine, SERIES, rejects, source="rest", run_id="r2", rejected_at=T0) == 0
    with engine.connect() as connection:
        stored = connection.execute(select(candle_rejects.c.reason, candle_rejects.c.raw_payload,
                                           candle_rejects.c.run_id).order_by(candle_rejects.c.id)).all()
    assert stored == [("malformed kline: 2 elements", '[1,"x"]', "r1"), ("high is below low", '[2,"y"]', "r1")]


def test_window_summary_and_consistency_report_on_stored_bars(db_url: str) -> None:
    engine = get_engine(db_url)
    upsert_candles(engine, SERIES, frame_of([*range(0, 5), *range(8, 10)]), source="rest", ingested_at=T0)
    summary = window_summary(engine, SERIES, T0, T0 + timedelta(minutes=10))
    assert summary.present_bars == 7
    assert (summary.first_open_time, summary.last_open_time) == (T0, T0 + timedelta(minutes=9))
    violations = consistency_violations(engine, SERIES, T0, T0 + timedelta(minutes=10))
    assert violations.pop("checked_bars") == 7
    assert set(violations.values()) == {0}


@pytest.mark.parametrize("bad", ["high_below_low", "off_grid"])
def test_consistency_report_finds_bars_that_break_the_contract(db_url: str, bad: str) -> None:
    engine = get_engine(db_url)
    upsert_candles(engine, SERIES, frame_of(range(3)), source="rest", ingested_at=T0)
    # Written behind the pipeline's back, as a bad migration or manual edit might.
    with engine.begin() as connection:
        if bad == "high_below_low":
            connection.execute(ohlcv_candles.update().where(ohlcv_candles.c.open_time == T0).values(high=Decimal("1")))
        else:
            connection.execute(ohlcv_candles.insert().values(
                exchange="binance", symbol="BTCUSDT", interval="1m", open_time=T0 + timedelta(seconds=90),
                close_time=T0 + timedelta(seconds=149), open=Decimal(1), high=Decimal(1), low=Decimal(1),
                close=Decimal(1), volume=Decimal(0), source="manual", ingested_at=T0))
    violations = consistency_violations(engine, SERIES, T0, T0 + timedelta(minutes=3))
    expected = {"high_below_low": {"high_below_body", "high_below_low"}, "off_grid": {"off_grid"}}[bad]
    assert {rule for rule, count in violations.items() if count and rule != "checked_bars"} == expected


def test_a_pause_one_run_publishes_holds_back_the_next_request_of_another(db_url: str) -> None:
    engine = get_engine(db_url)
    now = [1_700_000_000.0]
    slept: list[float] = []
    clock, sleep = (lambda: now[0]), slept.append
    this_run = RequestGate(clock=clock, sleep=sleep, shared=DatabasePause(engine, "binance"))
    other_run = RequestGate(clock=clock, sleep=lambda s: (slept.append(s), now.__setitem__(0, now[0] + s)),
                            shared=DatabasePause(engine, "binance"))
    other_run.wait()
    this_run.pause_for(2.0, "HTTP 429 on klines")
    other_run.wait()  # at the same instant as its last look: it must read the pause, not a cached view
    assert slept == [2.0]
    this_run.pause_for(5.0, "HTTP 418 on klines")
    this_run.pause_for(1.0, "HTTP 429 on klines")  # a shorter pause never cuts a longer one short
    assert DatabasePause(engine, "binance").until() == pytest.approx(now[0] + 5.0, abs=0.01)


def test_read_features_returns_only_the_columns_asked_for_and_refuses_unknown_ones(tmp_path) -> None:  # noqa: ANN001
    engine = get_engine(f"sqlite:///{tmp_path / 'features.db'}")
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    chosen = read_features(engine, [SERIES], start, start + timedelta(hours=1), columns=["rsi_14", "close"])
    assert list(chosen.columns) == ["symbol", "open_time", "close", "rsi_14"]
    assert chosen["close"].dtype == "float64" and chosen["rsi_14"].dtype == "float64"
    with pytest.raises(ValueError, match="no column rsi_15"):
        read_features(engine, [SERIES], start, start + timedelta(hours=1), columns=["rsi_15"])
