-- PostgreSQL DDL of the application schema, rendered from coinpilot_pipelines/storage/schema.py.
-- Reviewed snapshot: a test fails when it drifts from the schema or the Alembic migrations.
-- Regenerate with: python -m coinpilot_pipelines.storage.ddl

CREATE TABLE alert_states (
	kind VARCHAR(64) NOT NULL,
	subject VARCHAR(128) NOT NULL,
	state VARCHAR(64) NOT NULL,
	changed_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_alert_states PRIMARY KEY (kind, subject)
);

CREATE TABLE calibration_reports (
	id BIGSERIAL NOT NULL,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	model_name VARCHAR(64) NOT NULL,
	model_version VARCHAR(16) NOT NULL,
	production_ece DOUBLE PRECISION NOT NULL,
	production_mce DOUBLE PRECISION NOT NULL,
	production_brier DOUBLE PRECISION NOT NULL,
	production_count INTEGER NOT NULL,
	live_ece DOUBLE PRECISION,
	live_mce DOUBLE PRECISION,
	live_brier DOUBLE PRECISION,
	live_count INTEGER NOT NULL,
	ece_gap DOUBLE PRECISION,
	ece_gap_exceeded BOOLEAN NOT NULL,
	drift TEXT NOT NULL,
	recommend_retrain BOOLEAN NOT NULL,
	reason TEXT NOT NULL,
	mlflow_run_id VARCHAR(64),
	dagster_run_id VARCHAR(64),
	CONSTRAINT pk_calibration_reports PRIMARY KEY (id)
);

CREATE TABLE candle_features (
	exchange VARCHAR(16) NOT NULL,
	symbol VARCHAR(32) NOT NULL,
	interval VARCHAR(8) NOT NULL,
	open_time TIMESTAMP WITH TIME ZONE NOT NULL,
	close DOUBLE PRECISION NOT NULL,
	ret_1 DOUBLE PRECISION,
	ret_5 DOUBLE PRECISION,
	ret_10 DOUBLE PRECISION,
	rsi_14 DOUBLE PRECISION,
	rolling_vol_20 DOUBLE PRECISION,
	ma_20 DOUBLE PRECISION,
	ma_50 DOUBLE PRECISION,
	ma_200 DOUBLE PRECISION,
	bb_upper DOUBLE PRECISION,
	bb_lower DOUBLE PRECISION,
	bb_pct_b DOUBLE PRECISION,
	vol_ratio DOUBLE PRECISION,
	is_valid BOOLEAN NOT NULL,
	invalid_reason VARCHAR(64),
	feature_set_version VARCHAR(32) NOT NULL,
	computed_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_candle_features PRIMARY KEY (exchange, symbol, interval, open_time)
);

CREATE TABLE candle_labels (
	exchange VARCHAR(16) NOT NULL,
	symbol VARCHAR(32) NOT NULL,
	interval VARCHAR(8) NOT NULL,
	open_time TIMESTAMP WITH TIME ZONE NOT NULL,
	label_version VARCHAR(48) NOT NULL,
	forward_return DOUBLE PRECISION NOT NULL,
	label SMALLINT,
	outcome_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_candle_labels PRIMARY KEY (exchange, symbol, interval, open_time, label_version)
);

CREATE TABLE candle_rejects (
	id BIGSERIAL NOT NULL,
	exchange VARCHAR(16) NOT NULL,
	symbol VARCHAR(32) NOT NULL,
	interval VARCHAR(8) NOT NULL,
	open_time TIMESTAMP WITH TIME ZONE,
	reason TEXT NOT NULL,
	raw_payload TEXT NOT NULL,
	payload_sha256 VARCHAR(64) NOT NULL,
	source VARCHAR(32) NOT NULL,
	run_id VARCHAR(64),
	rejected_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_candle_rejects PRIMARY KEY (id),
	CONSTRAINT uq_candle_rejects_exchange_symbol_interval_payload_sha256 UNIQUE (exchange, symbol, interval, payload_sha256)
);

CREATE INDEX ix_candle_rejects_exchange_symbol_interval_open_time ON candle_rejects (exchange, symbol, interval, open_time);

CREATE TABLE exchange_backoff (
	exchange VARCHAR(16) NOT NULL,
	paused_until TIMESTAMP WITH TIME ZONE NOT NULL,
	reason TEXT,
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_exchange_backoff PRIMARY KEY (exchange)
);

CREATE TABLE gap_segments (
	id BIGSERIAL NOT NULL,
	exchange VARCHAR(16) NOT NULL,
	symbol VARCHAR(32) NOT NULL,
	interval VARCHAR(8) NOT NULL,
	from_open_time TIMESTAMP WITH TIME ZONE NOT NULL,
	to_open_time TIMESTAMP WITH TIME ZONE NOT NULL,
	missing_bars INTEGER NOT NULL,
	remaining_bars INTEGER NOT NULL,
	state VARCHAR(16) NOT NULL,
	source VARCHAR(16) NOT NULL,
	detected_at TIMESTAMP WITH TIME ZONE NOT NULL,
	last_attempt_at TIMESTAMP WITH TIME ZONE,
	next_attempt_at TIMESTAMP WITH TIME ZONE,
	retry_count INTEGER DEFAULT 0 NOT NULL,
	empty_fetches INTEGER DEFAULT 0 NOT NULL,
	recovered_at TIMESTAMP WITH TIME ZONE,
	merged_into BIGINT,
	reason TEXT,
	CONSTRAINT pk_gap_segments PRIMARY KEY (id),
	CONSTRAINT ck_gap_segments_state CHECK (state IN ('open', 'repairing', 'recovered', 'unrecoverable', 'merged')),
	CONSTRAINT ck_gap_segments_source CHECK (source IN ('ingest', 'scan', 'stream')),
	CONSTRAINT ck_gap_segments_half_open_range CHECK (to_open_time > from_open_time),
	CONSTRAINT fk_gap_segments_merged_into_gap_segments FOREIGN KEY(merged_into) REFERENCES gap_segments (id)
);

CREATE INDEX ix_gap_segments_exchange_symbol_interval_state_from_open_time ON gap_segments (exchange, symbol, interval, state, from_open_time);

CREATE INDEX ix_gap_segments_state_next_attempt_at ON gap_segments (state, next_attempt_at);

CREATE TABLE live_positions (
	exchange VARCHAR(16) NOT NULL,
	market VARCHAR(32) NOT NULL,
	quantity NUMERIC NOT NULL,
	avg_price NUMERIC NOT NULL,
	realized_pnl NUMERIC NOT NULL,
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_live_positions PRIMARY KEY (exchange, market)
);

CREATE TABLE model_inference_log (
	id BIGSERIAL NOT NULL,
	exchange VARCHAR(16) NOT NULL,
	symbol VARCHAR(32) NOT NULL,
	interval VARCHAR(8) NOT NULL,
	open_time TIMESTAMP WITH TIME ZONE NOT NULL,
	model_name VARCHAR(64) NOT NULL,
	model_version VARCHAR(16) NOT NULL,
	feature_set_version VARCHAR(32) NOT NULL,
	probability DOUBLE PRECISION NOT NULL,
	threshold DOUBLE PRECISION NOT NULL,
	decision VARCHAR(8) NOT NULL,
	horizon_bars INTEGER NOT NULL,
	scored_at TIMESTAMP WITH TIME ZONE NOT NULL,
	realized_label SMALLINT,
	realized_return DOUBLE PRECISION,
	realized_at TIMESTAMP WITH TIME ZONE,
	CONSTRAINT pk_model_inference_log PRIMARY KEY (id),
	CONSTRAINT ck_model_inference_log_decision CHECK (decision IN ('long', 'flat')),
	CONSTRAINT uq_model_inference_log_exchange_symbol_interval_open_ti_9fd5 UNIQUE (exchange, symbol, interval, open_time, model_name, model_version)
);

CREATE INDEX ix_model_inference_log_model_name_model_version_realized_at ON model_inference_log (model_name, model_version, realized_at);

CREATE TABLE news_sources (
	source VARCHAR(64) NOT NULL,
	url TEXT NOT NULL,
	etag TEXT,
	last_modified TEXT,
	consecutive_errors INTEGER DEFAULT 0 NOT NULL,
	backoff_until TIMESTAMP WITH TIME ZONE,
	last_error TEXT,
	first_polled_at TIMESTAMP WITH TIME ZONE NOT NULL,
	last_polled_at TIMESTAMP WITH TIME ZONE,
	last_success_at TIMESTAMP WITH TIME ZONE,
	last_new_article_at TIMESTAMP WITH TIME ZONE,
	CONSTRAINT pk_news_sources PRIMARY KEY (source)
);

CREATE TABLE ohlcv_candles (
	exchange VARCHAR(16) NOT NULL,
	symbol VARCHAR(32) NOT NULL,
	interval VARCHAR(8) NOT NULL,
	open_time TIMESTAMP WITH TIME ZONE NOT NULL,
	close_time TIMESTAMP WITH TIME ZONE NOT NULL,
	open NUMERIC NOT NULL,
	high NUMERIC NOT NULL,
	low NUMERIC NOT NULL,
	close NUMERIC NOT NULL,
	volume NUMERIC NOT NULL,
	quote_volume NUMERIC,
	trade_count BIGINT,
	is_closed BOOLEAN DEFAULT true NOT NULL,
	source VARCHAR(32) NOT NULL,
	ingested_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_ohlcv_candles PRIMARY KEY (exchange, symbol, interval, open_time)
);

CREATE TABLE promotion_events (
	id BIGSERIAL NOT NULL,
	decided_at TIMESTAMP WITH TIME ZONE NOT NULL,
	model_name VARCHAR(64) NOT NULL,
	challenger_version VARCHAR(16) NOT NULL,
	champion_version VARCHAR(16),
	promoted BOOLEAN NOT NULL,
	reason TEXT NOT NULL,
	challenger_metrics TEXT NOT NULL,
	champion_metrics TEXT,
	auc_gain_ci_low DOUBLE PRECISION,
	auc_gain_ci_high DOUBLE PRECISION,
	brier_skill DOUBLE PRECISION,
	brier_skill_ci_low DOUBLE PRECISION,
	brier_skill_ci_high DOUBLE PRECISION,
	bootstrap_block_bars INTEGER,
	eval_window_start TIMESTAMP WITH TIME ZONE NOT NULL,
	eval_window_end TIMESTAMP WITH TIME ZONE NOT NULL,
	dagster_run_id VARCHAR(64),
	CONSTRAINT pk_promotion_events PRIMARY KEY (id),
	CONSTRAINT uq_promotion_events_model_name_challenger_version UNIQUE (model_name, challenger_version)
);

CREATE TABLE risk_state (
	profile VARCHAR(32) NOT NULL,
	trading_day TIMESTAMP WITH TIME ZONE NOT NULL,
	daily_realized_pnl NUMERIC NOT NULL,
	consecutive_losses INTEGER NOT NULL,
	cooldown_until TIMESTAMP WITH TIME ZONE,
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_risk_state PRIMARY KEY (profile)
);

CREATE TABLE runtime_state (
	key VARCHAR(128) NOT NULL,
	value TEXT NOT NULL,
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
	dagster_run_id VARCHAR(64),
	CONSTRAINT pk_runtime_state PRIMARY KEY (key)
);

CREATE TABLE signal_scans (
	exchange VARCHAR(16) NOT NULL,
	symbol VARCHAR(32) NOT NULL,
	interval VARCHAR(8) NOT NULL,
	bar_open_time TIMESTAMP WITH TIME ZONE NOT NULL,
	scanned_at TIMESTAMP WITH TIME ZONE NOT NULL,
	signals INTEGER NOT NULL,
	CONSTRAINT pk_signal_scans PRIMARY KEY (exchange, symbol, interval, bar_open_time)
);

CREATE TABLE trade_signals (
	id BIGSERIAL NOT NULL,
	signal_key VARCHAR(128) NOT NULL,
	exchange VARCHAR(16) NOT NULL,
	symbol VARCHAR(32) NOT NULL,
	interval VARCHAR(8) NOT NULL,
	strategy VARCHAR(32) NOT NULL,
	action VARCHAR(8) NOT NULL,
	bar_open_time TIMESTAMP WITH TIME ZONE NOT NULL,
	reason TEXT NOT NULL,
	probability DOUBLE PRECISION,
	close NUMERIC NOT NULL,
	context TEXT NOT NULL,
	paper_trade_id BIGINT,
	status VARCHAR(16) NOT NULL,
	status_reason TEXT,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	decided_at TIMESTAMP WITH TIME ZONE,
	CONSTRAINT pk_trade_signals PRIMARY KEY (id),
	CONSTRAINT ck_trade_signals_action CHECK (action IN ('enter', 'exit')),
	CONSTRAINT ck_trade_signals_status CHECK (status IN ('new', 'approved', 'confirmed', 'rejected', 'executed', 'expired')),
	CONSTRAINT uq_trade_signals_signal_key UNIQUE (signal_key)
);

CREATE INDEX ix_trade_signals_status ON trade_signals (status);

CREATE TABLE upbit_account_snapshots (
	id BIGSERIAL NOT NULL,
	taken_at TIMESTAMP WITH TIME ZONE NOT NULL,
	currency VARCHAR(16) NOT NULL,
	balance NUMERIC NOT NULL,
	locked NUMERIC NOT NULL,
	avg_buy_price NUMERIC,
	unit_currency VARCHAR(16),
	CONSTRAINT pk_upbit_account_snapshots PRIMARY KEY (id)
);

CREATE TABLE agent_decisions (
	id BIGSERIAL NOT NULL,
	signal_id BIGINT NOT NULL,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	signal TEXT NOT NULL,
	decision VARCHAR(8) NOT NULL,
	confidence INTEGER,
	reasoning TEXT,
	model VARCHAR(64),
	latency_ms INTEGER,
	error TEXT,
	CONSTRAINT pk_agent_decisions PRIMARY KEY (id),
	CONSTRAINT ck_agent_decisions_decision CHECK (decision IN ('CONFIRM', 'REJECT', 'SKIPPED')),
	CONSTRAINT fk_agent_decisions_signal_id_trade_signals FOREIGN KEY(signal_id) REFERENCES trade_signals (id)
);

CREATE INDEX ix_agent_decisions_signal_id ON agent_decisions (signal_id);

CREATE TABLE news_articles (
	id BIGSERIAL NOT NULL,
	identity_key VARCHAR(64) NOT NULL,
	guid_key VARCHAR(64),
	title_hash VARCHAR(64),
	source VARCHAR(64) NOT NULL,
	guid TEXT,
	canonical_url TEXT,
	title TEXT NOT NULL,
	summary TEXT NOT NULL,
	published_at TIMESTAMP WITH TIME ZONE,
	first_seen_at TIMESTAMP WITH TIME ZONE NOT NULL,
	fetched_at TIMESTAMP WITH TIME ZONE NOT NULL,
	content_hash VARCHAR(64) NOT NULL,
	CONSTRAINT pk_news_articles PRIMARY KEY (id),
	CONSTRAINT uq_news_articles_identity_key UNIQUE (identity_key),
	CONSTRAINT fk_news_articles_source_news_sources FOREIGN KEY(source) REFERENCES news_sources (source)
);

CREATE INDEX ix_news_articles_guid_key ON news_articles (guid_key);

CREATE INDEX ix_news_articles_published_at ON news_articles (published_at);

CREATE INDEX ix_news_articles_title_hash ON news_articles (title_hash);

CREATE TABLE news_item_rejects (
	id BIGSERIAL NOT NULL,
	source VARCHAR(64) NOT NULL,
	reason TEXT NOT NULL,
	raw_item TEXT NOT NULL,
	item_sha256 VARCHAR(64) NOT NULL,
	rejected_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_news_item_rejects PRIMARY KEY (id),
	CONSTRAINT uq_news_item_rejects_source_item_sha256 UNIQUE (source, item_sha256),
	CONSTRAINT fk_news_item_rejects_source_news_sources FOREIGN KEY(source) REFERENCES news_sources (source)
);

CREATE TABLE news_polls (
	id BIGSERIAL NOT NULL,
	source VARCHAR(64) NOT NULL,
	polled_at TIMESTAMP WITH TIME ZONE NOT NULL,
	status VARCHAR(16) NOT NULL,
	http_status INTEGER,
	raw_count INTEGER NOT NULL,
	unique_count INTEGER NOT NULL,
	updated_count INTEGER NOT NULL,
	duplicate_count INTEGER NOT NULL,
	unchanged_count INTEGER NOT NULL,
	rejected_count INTEGER NOT NULL,
	dedup_ratio FLOAT,
	error TEXT,
	elapsed_ms INTEGER,
	CONSTRAINT pk_news_polls PRIMARY KEY (id),
	CONSTRAINT fk_news_polls_source_news_sources FOREIGN KEY(source) REFERENCES news_sources (source)
);

CREATE INDEX ix_news_polls_source_polled_at ON news_polls (source, polled_at);

CREATE TABLE paper_trades (
	id BIGSERIAL NOT NULL,
	exchange VARCHAR(16) NOT NULL,
	symbol VARCHAR(32) NOT NULL,
	interval VARCHAR(8) NOT NULL,
	strategy VARCHAR(32) NOT NULL,
	side VARCHAR(8) NOT NULL,
	entry_signal_id BIGINT NOT NULL,
	entry_time TIMESTAMP WITH TIME ZONE NOT NULL,
	entry_price NUMERIC NOT NULL,
	quantity NUMERIC NOT NULL,
	entry_fee NUMERIC NOT NULL,
	exit_signal_id BIGINT,
	exit_time TIMESTAMP WITH TIME ZONE,
	exit_price NUMERIC,
	exit_fee NUMERIC,
	exit_reason VARCHAR(32),
	pnl NUMERIC,
	status VARCHAR(8) NOT NULL,
	CONSTRAINT pk_paper_trades PRIMARY KEY (id),
	CONSTRAINT ck_paper_trades_status CHECK (status IN ('open', 'closed')),
	CONSTRAINT uq_paper_trades_entry_signal_id UNIQUE (entry_signal_id),
	CONSTRAINT fk_paper_trades_entry_signal_id_trade_signals FOREIGN KEY(entry_signal_id) REFERENCES trade_signals (id),
	CONSTRAINT uq_paper_trades_exit_signal_id UNIQUE (exit_signal_id),
	CONSTRAINT fk_paper_trades_exit_signal_id_trade_signals FOREIGN KEY(exit_signal_id) REFERENCES trade_signals (id)
);

CREATE TABLE news_dedup_stats (
	poll_id BIGINT NOT NULL,
	rolling_ratio FLOAT,
	ratio_std FLOAT,
	low_ratio_streak INTEGER NOT NULL,
	last_new_article_at TIMESTAMP WITH TIME ZONE,
	seconds_since_new FLOAT NOT NULL,
	stalled BOOLEAN NOT NULL,
	low_ratio BOOLEAN NOT NULL,
	volatile BOOLEAN NOT NULL,
	error_share FLOAT NOT NULL,
	health_score FLOAT NOT NULL,
	computed_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_news_dedup_stats PRIMARY KEY (poll_id),
	CONSTRAINT fk_news_dedup_stats_poll_id_news_polls FOREIGN KEY(poll_id) REFERENCES news_polls (id)
);

CREATE TABLE news_source_items (
	source VARCHAR(64) NOT NULL,
	item_key VARCHAR(64) NOT NULL,
	article_id BIGINT NOT NULL,
	first_seen_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_news_source_items PRIMARY KEY (source, item_key),
	CONSTRAINT fk_news_source_items_source_news_sources FOREIGN KEY(source) REFERENCES news_sources (source),
	CONSTRAINT fk_news_source_items_article_id_news_articles FOREIGN KEY(article_id) REFERENCES news_articles (id)
);

CREATE INDEX ix_news_source_items_article_id ON news_source_items (article_id);

CREATE TABLE upbit_order_attempts (
	id BIGSERIAL NOT NULL,
	ts TIMESTAMP WITH TIME ZONE NOT NULL,
	symbol VARCHAR(32) NOT NULL,
	action VARCHAR(8) NOT NULL,
	mode VARCHAR(8) NOT NULL,
	side VARCHAR(4) NOT NULL,
	ord_type VARCHAR(8) NOT NULL,
	price NUMERIC,
	volume NUMERIC,
	paper_trade_id BIGINT NOT NULL,
	identifier VARCHAR(64) NOT NULL,
	request_json TEXT NOT NULL,
	response_json TEXT,
	status VARCHAR(16) NOT NULL,
	error_msg TEXT,
	uuid VARCHAR(64),
	http_status INTEGER,
	latency_ms INTEGER,
	remaining_req VARCHAR(64),
	retry_count INTEGER DEFAULT 0 NOT NULL,
	final_state VARCHAR(16),
	executed_volume NUMERIC,
	paid_fee NUMERIC,
	avg_price NUMERIC,
	CONSTRAINT pk_upbit_order_attempts PRIMARY KEY (id),
	CONSTRAINT ck_upbit_order_attempts_mode CHECK (mode IN ('shadow', 'test', 'live')),
	CONSTRAINT ck_upbit_order_attempts_status CHECK (status IN ('sending', 'logged', 'test_ok', 'accepted', 'unknown', 'done', 'cancelled', 'error', 'refused')),
	CONSTRAINT fk_upbit_order_attempts_paper_trade_id_paper_trades FOREIGN KEY(paper_trade_id) REFERENCES paper_trades (id),
	CONSTRAINT uq_upbit_order_attempts_identifier UNIQUE (identifier)
);

CREATE INDEX ix_upbit_order_attempts_status ON upbit_order_attempts (status);

CREATE TABLE upbit_order_snapshots (
	id BIGSERIAL NOT NULL,
	attempt_id BIGINT NOT NULL,
	polled_at TIMESTAMP WITH TIME ZONE NOT NULL,
	state VARCHAR(16) NOT NULL,
	executed_volume NUMERIC,
	remaining_volume NUMERIC,
	paid_fee NUMERIC,
	avg_price NUMERIC,
	trades_count INTEGER,
	raw_json TEXT NOT NULL,
	CONSTRAINT pk_upbit_order_snapshots PRIMARY KEY (id),
	CONSTRAINT fk_upbit_order_snapshots_attempt_id_upbit_order_attempts FOREIGN KEY(attempt_id) REFERENCES upbit_order_attempts (id)
);

CREATE INDEX ix_upbit_order_snapshots_attempt_id ON upbit_order_snapshots (attempt_id);
