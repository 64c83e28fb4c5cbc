-- Bars stored for one series in [window_start, window_end): how many, first and last open time.
-- An index-only scan of the primary key; used for completeness in materialization metadata.
SELECT count(*)       AS present_bars,
       min(open_time) AS first_open_time,
       max(open_time) AS last_open_time
FROM ohlcv_candles
WHERE exchange = :exchange
  AND symbol = :symbol
  AND interval = :interval
  AND open_time >= :window_start
  AND open_time < :window_end
