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
    Double,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
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

FEATURE_VALUE_COLUMNS = (
    "ret_1", "ret_5", "ret_10", "rsi_14", "rolling_vol_20", "ma_20", "ma_50", "ma_200",
    "bb_upper", "bb_lower", "bb_pct_b", "vol_ratio",
)

# Per-bar features (features/candle_features.py), invalid bars kept and flagged with the reason.
candle_features = Table(
    "candle_features",
    metadata,
    *_series_columns(),
    Column("open_time", UtcTimestamp(), nullable=False),
    Column("close", Double(), nullable=False),
    *(Column(name, Double(), nullable=True) for name in FEATURE_VALUE_COLUMNS),
    Column("is_valid", Boolean(), nullable=False),
    Column("invalid_reason", String(64), nullable=True),
    Column("feature_set_version", String(32), nullable=False),
    Column("computed_at", UtcTimestamp(), nullable=False),
    PrimaryKeyConstraint("exchange", "symbol", "interval", "open_time"),
)

# Outcomes, computed from future bars and kept apart from the features they must never feed.
candle_labels = Table(
    "candle_labels",
    metadata,
    *_series_columns(),
    Column("open_time", UtcTimestamp(), nullable=False),
    Column("label_version", String(48), nullable=False),
    Column("forward_return", Double(), nullable=False),
    Column("label", SmallInteger(), nullable=True),  # NULL inside the dead band
    Column("outcome_at", UtcTimestamp(), nullable=False),  # when the outcome became known
    PrimaryKeyConstraint("exchange", "symbol", "interval", "open_time", "label_version"),
)

promotion_events = Table(
    "promotion_events",
    metadata,
    Column("id", Identity64, primary_key=True, autoincrement=True),
    Column("decided_at", UtcTimestamp(), nullable=False),
    Column("model_name", String(64), nullable=False),
    Column("challenger_version", String(16), nullable=False),
    Column("champion_version", String(16), nullable=True),
    Column("promoted", Boolean(), nullable=False),
    Column("reason", Text(), nullable=False),
    Column("challenger_metrics", Text(), nullable=False),  # JSON
    Column("champion_metrics", Text(), nullable=True),  # JSON
    Column("auc_gain_ci_low", Double(), nullable=True),
    Column("auc_gain_ci_high", Double(), nullable=True),
    # The baseline gate: Brier skill against climatology and its block-bootstrap interval, and
    # the block length both intervals used (NULL on decisions made before the gate existed).
    Column("brier_skill", Double(), nullable=True),
    Column("brier_skill_ci_low", Double(), nullable=True),
    Column("brier_skill_ci_high", Double(), nullable=True),
    Column("bootstrap_block_bars", Integer(), nullable=True),
    Column("eval_window_start", UtcTimestamp(), nullable=False),
    Column("eval_window_end", UtcTimestamp(), nullable=False),
    Column("dagster_run_id", String(64), nullable=True),
    UniqueConstraint("model_name", "challenger_version"),
)

model_inference_log = Table(
    "model_inference_log",
    metadata,
    Column("id", Identity64, primary_key=True, autoincrement=True),
    *_series_columns(),
    Column("open_time", UtcTimestamp(), nullable=False),
    Column("model_name", String(64), nullable=False),
    Column("model_version", String(16), nullable=False),
    Column("feature_set_version", String(32), nullable=False),
    Column("probability", Double(), nullable=False),
    Column("threshold", Double(), nullable=False),
    Column("decision", String(8), nullable=False),
    Column("horizon_bars", Integer(), nullable=False),
    Column("scored_at", UtcTimestamp(), nullable=False),
    Column("realized_label", SmallInteger(), nullable=True),
    Column("realized_return", Double(), nullable=True),
    Column("realized_at", UtcTimestamp(), nullable=True),
    CheckConstraint("decision IN ('long', 'flat')", name="decision"),
    UniqueConstraint("exchange", "symbol", "interval", "open_time", "model_name", "model_version"),
    Index(None, "model_name", "model_version", "realized_at"),
)

calibration_reports = Table(
    "calibration_reports",
    metadata,
    Column("id", Identity64, primary_key=True, autoincrement=True),
    Column("created_at", UtcTimestamp(), nullable=False),
    Column("model_name", String(64), nullable=False),
    Column("model_version", String(16), nullable=False),
    Column("production_ece", Double(), nullable=False),
    Column("production_mce", Double(), nullable=False),
    Column("production_brier", Double(), nullable=False),
    Column("production_count", Integer(), nullable=False),
    Column("live_ece", Double(), nullable=True),
    Column("live_mce", Double(), nullable=True),
    Column("live_brier", Double(), nullable=True),
    Column("live_count", Integer(), nullable=False),
    Column("ece_gap", Double(), nullable=True),
    Column("ece_gap_exceeded", Boolean(), nullable=False),  # counts toward the retrain streak
    Column("drift", Text(), nullable=False),  # JSON per feature: z, PSI, their yardsticks, why one is missing
    Column("recommend_retrain", Boolean(), nullable=False),
    Column("reason", Text(), nullable=False),
    Column("mlflow_run_id", String(64), nullable=True),
    Column("dagster_run_id", String(64), nullable=True),
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

# -- trading -------------------------------------------------------------------------------------

# A signal is computed from stored data and keyed by what it is about, so computing it again
# (a re-run, two executors at once) finds the same row instead of adding one.
trade_signals = Table(
    "trade_signals",
    metadata,
    Column("id", Identity64, primary_key=True, autoincrement=True),
    Column("signal_key", String(128), nullable=False, unique=True),
    *_series_columns(),
    Column("strategy", String(32), nullable=False),
    Column("action", String(8), nullable=False),
    Column("bar_open_time", UtcTimestamp(), nullable=False),  # the bar the signal was computed on
    Column("reason", Text(), nullable=False),
    Column("probability", Double(), nullable=True),
    Column("close", ExactDecimal(), nullable=False),
    Column("context", Text(), nullable=False),  # JSON: the features and figures the signal saw
    Column("paper_trade_id", Identity64, nullable=True),  # the trade an exit closes
    Column("status", String(16), nullable=False),
    Column("status_reason", Text(), nullable=True),
    Column("created_at", UtcTimestamp(), nullable=False),
    Column("decided_at", UtcTimestamp(), nullable=True),  # when it became executed, rejected or expired
    CheckConstraint("action IN ('enter', 'exit')", name="action"),
    CheckConstraint("status IN ('new', 'approved', 'confirmed', 'rejected', 'executed', 'expired')", name="status"),
    Index(None, "status"),
)

# The bars the signal scan has looked at, and when: a bar's order decision when it gave no signal.
signal_scans = Table(
    "signal_scans",
    metadata,
    *_series_columns(),
    Column("bar_open_time", UtcTimestamp(), nullable=False),
    Column("scanned_at", UtcTimestamp(), nullable=False),
    Column("signals", Integer(), nullable=False),  # signals the scan that covered this bar created
    PrimaryKeyConstraint("exchange", "symbol", "interval", "bar_open_time"),
)

paper_trades = Table(
    "paper_trades",
    metadata,
    Column("id", Identity64, primary_key=True, autoincrement=True),
    *_series_columns(),
    Column("strategy", String(32), nullable=False),
    Column("side", String(8), nullable=False),
    Column("entry_signal_id", Identity64, ForeignKey("trade_signals.id"), nullable=False, unique=True),
    Column("entry_time", UtcTimestamp(), nullable=False),  # open of the bar after the signal
    Column("entry_price", ExactDecimal(), nullable=False),
    Column("quantity", ExactDecimal(), nullable=False),
    Column("entry_fee", ExactDecimal(), nullable=False),
    Column("exit_signal_id", Identity64, ForeignKey("trade_signals.id"), nullable=True, unique=True),
    Column("exit_time", UtcTimestamp(), nullable=True),
    Column("exit_price", ExactDecimal(), nullable=True),
    Column("exit_fee", ExactDecimal(), nullable=True),
    Column("exit_reason", String(32), nullable=True),
    Column("pnl", ExactDecimal(), nullable=True),
    Column("status", String(8), nullable=False),
    CheckConstraint("status IN ('open', 'closed')", name="status"),
)

risk_state = Table(
    "risk_state",
    metadata,
    Column("profile", String(32), primary_key=True),
    Column("trading_day", UtcTimestamp(), nullable=False),  # 00:00 UTC of the day the PnL belongs to
    Column("daily_realized_pnl", ExactDecimal(), nullable=False),
    Column("consecutive_losses", Integer(), nullable=False),
    Column("cooldown_until", UtcTimestamp(), nullable=True),
    Column("updated_at", UtcTimestamp(), nullable=False),
)

live_positions = Table(
    "live_positions",
    metadata,
    Column("exchange", String(16), nullable=False),
    Column("market", String(32), nullable=False),
    Column("quantity", ExactDecimal(), nullable=False),
    Column("avg_price", ExactDecimal(), nullable=False),
    Column("realized_pnl", ExactDecimal(), nullable=False),
    Column("updated_at", UtcTimestamp(), nullable=False),
    PrimaryKeyConstraint("exchange", "market"),
)

upbit_order_attempts = Table(
    "upbit_order_attempts",
    metadata,
    Column("id", Identity64, primary_key=True, autoincrement=True),
    Column("ts", UtcTimestamp(), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("action", String(8), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("side", String(4), nullable=False),
    Column("ord_type", String(8), nullable=False),
    Column("price", ExactDecimal(), nullable=True),
    Column("volume", ExactDecimal(), nullable=True),
    Column("paper_trade_id", Identity64, ForeignKey("paper_trades.id"), nullable=False),
    Column("identifier", String(64), nullable=False, unique=True),
    Column("request_json", Text(), nullable=False),  # the order body: never headers, never keys
    Column("response_json", Text(), nullable=True),
    Column("status", String(16), nullable=False),
    Column("error_msg", Text(), nullable=True),
    Column("uuid", String(64), nullable=True),
    Column("http_status", Integer(), nullable=True),
    Column("latency_ms", Integer(), nullable=True),
    Column("remaining_req", String(64), nullable=True),
    Column("retry_count", Integer(), nullable=False, server_default=text("0")),
    Column("final_state", String(16), nullable=True),
    Column("executed_volume", ExactDecimal(), nullable=True),
    Column("paid_fee", ExactDecimal(), nullable=True),
    Column("avg_price", ExactDecimal(), nullable=True),
    CheckConstraint("mode IN ('shadow', 'test', 'live')", name="mode"),
    CheckConstraint(
        "status IN ('sending', 'logged', 'test_ok', 'accepted', 'unknown', 'done', 'cancelled', 'error', 'refused')",
        name="status"),
    Index(None, "status"),
)

upbit_order_snapshots = Table(
    "upbit_order_snapshots",
    metadata,
    Column("id", Identity64, primary_key=True, autoincrement=True),
    Column("attempt_id", Identity64, ForeignKey("upbit_order_attempts.id"), nullable=False),
    Column("polled_at", UtcTimestamp(), nullable=False),
    Column("state", String(16), nullable=False),
    Column("executed_volume", ExactDecimal(), nullable=True),
    Column("remaining_volume", ExactDecimal(), nullable=True),
    Column("paid_fee", ExactDecimal(), nullable=True),
    Column("avg_price", ExactDecimal(), nullable=True),
    Column("trades_count", Integer(), nullable=True),
    Column("raw_json", Text(), nullable=False),
    Index(None, "attempt_id"),
)

upbit_account_snapshots = Table(
    "upbit_account_snapshots",
    metadata,
    Column("id", Identity64, primary_key=True, autoincrement=True),
    Column("taken_at", UtcTimestamp(), nullable=False),
    Column("currency", String(16), nullable=False),
    Column("balance", ExactDecimal(), nullable=False),
    Column("locked", ExactDecimal(), nullable=False),
    Column("avg_buy_price", ExactDecimal(), nullable=True),
    Column("unit_currency", String(16), nullable=True),
)

agent_decisions = Table(
    "agent_decisions",
    metadata,
    Column("id", Identity64, primary_key=True, autoincrement=True),
    Column("signal_id", Identity64, ForeignKey("trade_signals.id"), nullable=False),
    Column("created_at", UtcTimestamp(), nullable=False),
    Column("signal", Text(), nullable=False),  # JSON: what the analyst was shown
    Column("decision", String(8), nullable=False),
    Column("confidence", Integer(), nullable=True),
    Column("reasoning", Text(), nullable=True),
    Column("model", String(64), nullable=True),
    Column("latency_ms", Integer(), nullable=True),
    Column("error", Text(), nullable=True),
    CheckConstraint("decision IN ('CONFIRM', 'REJECT', 'SKIPPED')", name="decision"),
    Index(None, "signal_id"),
)

# An exchange limits the address, not the process: a Retry-After or ban seen by one run is
# recorded here so every run from the same address waits it out (clients/http.RequestGate).
exchange_backoff = Table(
    "exchange_backoff",
    metadata,
    Column("exchange", String(16), primary_key=True),
    Column("paused_until", UtcTimestamp(), nullable=False),
    Column("reason", Text(), nullable=True),
    Column("updated_at", UtcTimestamp(), nullable=False),
)

# -- operations ----------------------------------------------------------------------------------

# The state each alert was last sent for (alerts/): a check or key state per subject (a symbol, a
# news source, a risk profile, a job), so a flapping check alerts once per change, not per evaluation.
alert_states = Table(
    "alert_states",
    metadata,
    Column("kind", String(64), nullable=False),  # a check name or a key state, e.g. daily_loss_limit
    Column("subject", String(128), nullable=False),
    Column("state", String(64), nullable=False),
    Column("changed_at", UtcTimestamp(), nullable=False),
    PrimaryKeyConstraint("kind", "subject"),
)

# Values the metrics exporter reads that otherwise live outside this database: the effective trade
# mode (a Dagster run tag) and the champion version (an MLflow alias), written where they are decided.
runtime_state = Table(
    "runtime_state",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("value", Text(), nullable=False),
    Column("updated_at", UtcTimestamp(), nullable=False),
    Column("dagster_run_id", String(64), nullable=True),
)
