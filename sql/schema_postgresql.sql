-- PostgreSQL DDL of the application schema, rendered from coinpilot_pipelines/storage/schema.py.
-- Reviewed snapshot: a test fails when it drifts from the schema or the Alembic migrations.
-- Regenerate with: python -m coinpilot_pipelines.storage.ddl

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
