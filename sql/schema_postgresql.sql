-- PostgreSQL DDL of the application schema, rendered from coinpilot_pipelines/storage/schema.py.
-- Reviewed snapshot: a test fails when it drifts from the schema or the Alembic migrations.
-- Regenerate with: python -m coinpilot_pipelines.storage.ddl

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
	eval_window_start TIMESTAMP WITH TIME ZONE NOT NULL,
	eval_window_end TIMESTAMP WITH TIME ZONE NOT NULL,
	dagster_run_id VARCHAR(64),
	CONSTRAINT pk_promotion_events PRIMARY KEY (id),
	CONSTRAINT uq_promotion_events_model_name_challenger_version UNIQUE (model_name, challenger_version)
);
