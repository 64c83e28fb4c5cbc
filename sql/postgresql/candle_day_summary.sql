-- Bars stored per UTC day of [window_start, window_end) for one series: how many, first and last
-- open time. The continuity scan runs it only when the window's total falls short, to find which
-- days to search for holes; a candles materialization runs it to describe each partition.
SELECT date_bin(interval '1 day', open_time, :window_start) AS day_start,
       count(*)                                             AS present_bars,
       min(open_time)                                       AS first_open_time,
       max(open_time)                                       AS last_open_time
FROM ohlcv_candles
WHERE exchange = :exchange
  AND symbol = :symbol
  AND interval = :interval
  AND open_time >= :window_start
  AND open_time < :window_end
GROUP BY 1
ORDER BY 1
