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
