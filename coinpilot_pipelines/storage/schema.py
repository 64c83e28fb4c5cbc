"""The one schema source of truth: SQLAlchemy Core tables.

Alembic migrations are written against these definitions, a test checks that the migrated
database equals them, and ``sql/schema_postgresql.sql`` is the reviewed DDL snapshot.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from coinpilot_pipelines.storage.types import ExactDecimal, UtcTimestamp

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
Identity64 = BigInteger().with_variant(Integer(), "sqlite")


def _series_columns() -> list[Column]:
    return [
        Column("exchange", String(16), nullable=False),
        Column("symbol", String(32), nullable=False),
        Column("interval", String(8), nullable=False),
    ]


ohlcv_candles = Table(
    "ohlcv_candles",
    metadata,
    *_series_columns(),
    Column("open_time", UtcTimestamp(), nullable=False),
    Column("close_time", UtcTimestamp(), nullable=False),
    Column("open", ExactDecimal(), nullable=False),
    Column("high", ExactDecimal(), nullable=False),
    Column("low", ExactDecimal(), nullable=False),
    Column("close", ExactDecimal(), nullable=False),
    Column("volume", ExactDecimal(), nullable=False),
    Column("quote_volume", ExactDecimal(), nullable=True),
    Column("trade_count", BigInteger(), nullable=True),
    Column("is_closed", Boolean(), nullable=False, server_default=text("true")),
    Column("source", String(32), nullable=False),
    Column("ingested_at", UtcTimestamp(), nullable=False),
    PrimaryKeyConstraint("exchange", "symbol", "interval", "open_time"),
)

candle_rejects = Table(
    "candle_rejects",
    metadata,
    Column("id", Identity64, primary_key=True, autoincrement=True),
    *_series_columns(),
    Column("open_time", UtcTimestamp(), nullable=True),
    Column("reason", Text(), nullable=False),
    Column("raw_payload", Text(), nullable=False),
    Column("payload_sha256", String(64), nullable=False),
    Column("source", String(32), nullable=False),
    Column("run_id", String(64), nullable=True),
    Column("rejected_at", UtcTimestamp(), nullable=False),
    UniqueConstraint("exchange", "symbol", "interval", "payload_sha256"),
    Index(None, "exchange", "symbol", "interval", "open_time"),
)

GAP_STATES = ("open", "repairing", "recovered", "unrecoverable", "merged")
GAP_SOURCES = ("ingest", "scan", "stream")

# A run of missing bars, half-open [from_open_time, to_open_time), and its repair history.
gap_segments = Table(
    "gap_segments",
    metadata,
    Column("id", Identity64, primary_key=True, autoincrement=True),
    *_series_columns(),
    Column("from_open_time", UtcTimestamp(), nullable=False),
    Column("to_open_time", UtcTimestamp(), nullable=False),
    Column("missing_bars", Integer(), nullable=False),  # grid slots in the range when last (re)shaped
    Column("remaining_bars", Integer(), nullable=False),  # recounted from ohlcv_candles, never estimated
    Column("state", String(16), nullable=False),
    Column("source", String(16), nullable=False),
    Column("detected_at", UtcTimestamp(), nullable=False),
    Column("last_attempt_at", UtcTimestamp(), nullable=True),
    Column("next_attempt_at", UtcTimestamp(), nullable=True),
    Column("retry_count", Integer(), nullable=False, server_default=text("0")),
    Column("empty_fetches", Integer(), nullable=False, server_default=text("0")),
    Column("recovered_at", UtcTimestamp(), nullable=True),
    Column("merged_into", Identity64, ForeignKey("gap_segments.id"), nullable=True),
    Column("reason", Text(), nullable=True),
    CheckConstraint(f"state IN ({', '.join(repr(s) for s in GAP_STATES)})", name="state"),
    CheckConstraint(f"source IN ({', '.join(repr(s) for s in GAP_SOURCES)})", name="source"),
    CheckConstraint("to_open_time > from_open_time", name="half_open_range"),
    Index(None, "exchange", "symbol", "interval", "state", "from_open_time"),
    Index(None, "state", "next_attempt_at"),
)
