-- Bars stored per UTC day of [window_start, window_end) for one series (epoch ms): how many, first
-- and last open time.
SELECT :window_start + ((open_time - :window_start) / 86400000) * 86400000 AS day_start,
       count(*)                                                             AS present_bars,
       min(open_time)                                                       AS first_open_time,
       max(open_time)                                                       AS last_open_time
FROM ohlcv_candles
WHERE exchange = :exchange
  AND symbol = :symbol
  AND interval = :interval
  AND open_time >= :window_start
  AND open_time < :window_end
GROUP BY 1
ORDER BY 1
