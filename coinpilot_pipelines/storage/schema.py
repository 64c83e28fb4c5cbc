"""The one schema source of truth: SQLAlchemy Core tables.

Alembic migrations are written against these definitions, a test checks that the migrated
database equals them, and ``sql/schema_postgresql.sql`` is the reviewed DDL snapshot.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
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


# -- news ---------------------------------------------------------------------------------------
# A source's name is the stable key (feed URLs may change, the emulator's port does each run).

news_sources = Table(
    "news_sources",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("url", Text(), nullable=False),  # without query string: it may carry an access token
    Column("etag", Text(), nullable=True),
    Column("last_modified", Text(), nullable=True),
    Column("consecutive_errors", Integer(), nullable=False, server_default=text("0")),
    Column("backoff_until", UtcTimestamp(), nullable=True),
    Column("last_error", Text(), nullable=True),
    Column("first_polled_at", UtcTimestamp(), nullable=False),
    Column("last_polled_at", UtcTimestamp(), nullable=True),
    Column("last_success_at", UtcTimestamp(), nullable=True),
    Column("last_new_article_at", UtcTimestamp(), nullable=True),
)

news_articles = Table(
    "news_articles",
    metadata,
    Column("id", Identity64, primary_key=True, autoincrement=True),
    # sha256 of the canonical URL (or of the GUID when an item has no link)
    Column("identity_key", String(64), nullable=False, unique=True),
    Column("guid_key", String(64), nullable=True, index=True),
    Column("title_hash", String(64), nullable=True, index=True),
    Column("source", String(64), ForeignKey("news_sources.source"), nullable=False),
    Column("guid", Text(), nullable=True),
    Column("canonical_url", Text(), nullable=True),
    Column("title", Text(), nullable=False),
    Column("summary", Text(), nullable=False),
    Column("published_at", UtcTimestamp(), nullable=True, index=True),
    Column("first_seen_at", UtcTimestamp(), nullable=False),
    Column("fetched_at", UtcTimestamp(), nullable=False),
    Column("content_hash", String(64), nullable=False),
)

# Which items each source has delivered, so an item still listed in the next poll is not news again.
news_source_items = Table(
    "news_source_items",
    metadata,
    Column("source", String(64), ForeignKey("news_sources.source"), nullable=False),
    Column("item_key", String(64), nullable=False),
    Column("article_id", Identity64, ForeignKey("news_articles.id"), nullable=False, index=True),
    Column("first_seen_at", UtcTimestamp(), nullable=False),
    PrimaryKeyConstraint("source", "item_key"),
)

news_polls = Table(
    "news_polls",
    metadata,
    Column("id", Identity64, primary_key=True, autoincrement=True),
    Column("source", String(64), ForeignKey("news_sources.source"), nullable=False),
    Column("polled_at", UtcTimestamp(), nullable=False),
    Column("status", String(16), nullable=False),  # ok, not_modified, error, backoff
    Column("http_status", Integer(), nullable=True),
    Column("raw_count", Integer(), nullable=False),
    Column("unique_count", Integer(), nullable=False),
    Column("updated_count", Integer(), nullable=False),
    Column("duplicate_count", Integer(), nullable=False),
    Column("unchanged_count", Integer(), nullable=False),
    Column("rejected_count", Integer(), nullable=False),
    Column("dedup_ratio", Float(), nullable=True),
    Column("error", Text(), nullable=True),
    Column("elapsed_ms", Integer(), nullable=True),
    Index(None, "source", "polled_at"),
)

news_item_rejects = Table(
    "news_item_rejects",
    metadata,
    Column("id", Identity64, primary_key=True, autoincrement=True),
    Column("source", String(64), ForeignKey("news_sources.source"), nullable=False),
    Column("reason", Text(), nullable=False),
    Column("raw_item", Text(), nullable=False),
    Column("item_sha256", String(64), nullable=False),
    Column("rejected_at", UtcTimestamp(), nullable=False),
    UniqueConstraint("source", "item_sha256"),
)

news_dedup_stats = Table(
    "news_dedup_stats",
    metadata,
    Column("poll_id", Identity64, ForeignKey("news_polls.id"), primary_key=True, autoincrement=False),
    Column("rolling_ratio", Float(), nullable=True),
    Column("ratio_std", Float(), nullable=True),
    Column("low_ratio_streak", Integer(), nullable=False),
    Column("last_new_article_at", UtcTimestamp(), nullable=True),
    Column("seconds_since_new", Float(), nullable=False),
    Column("stalled", Boolean(), nullable=False),
    Column("low_ratio", Boolean(), nullable=False),
    Column("volatile", Boolean(), nullable=False),
    Column("error_share", Float(), nullable=False),
    Column("health_score", Float(), nullable=False),
    Column("computed_at", UtcTimestamp(), nullable=False),
)
