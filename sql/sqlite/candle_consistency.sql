-- Stored bars of one series in [window_start, window_end) that break the candle contract.
-- SQLite keeps times as epoch ms and decimals as exact text, hence the casts.
SELECT coalesce(sum(CAST(open AS REAL) <= 0 OR CAST(high AS REAL) <= 0
                    OR CAST(low AS REAL) <= 0 OR CAST(close AS REAL) <= 0), 0)           AS non_positive_price,
       coalesce(sum(CAST(volume AS REAL) < 0 OR CAST(quote_volume AS REAL) < 0
                    OR trade_count < 0), 0)                                              AS negative_volume,
       coalesce(sum(CAST(high AS REAL) < max(CAST(open AS REAL), CAST(close AS REAL))), 0) AS high_below_body,
       coalesce(sum(CAST(low AS REAL) > min(CAST(open AS REAL), CAST(close AS REAL))), 0)  AS low_above_body,
       coalesce(sum(CAST(high AS REAL) < CAST(low AS REAL)), 0)                          AS high_below_low,
       coalesce(sum(open_time % :interval_ms <> 0), 0)                                   AS off_grid,
       coalesce(sum(close_time <= open_time OR close_time > open_time + :interval_ms - 1), 0)
                                                                                         AS close_outside_interval,
       count(*)                                                                          AS checked_bars
FROM ohlcv_candles
WHERE exchange = :exchange
  AND symbol = :symbol
  AND interval = :interval
  AND open_time >= :window_start
  AND open_time < :window_end
