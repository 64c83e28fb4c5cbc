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
