"""The one schema source of truth: SQLAlchemy Core tables.

Alembic migrations are written against these definitions, a test checks that the migrated
database equals them, and ``sql/schema_postgresql.sql`` is the reviewed DDL snapshot.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
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
