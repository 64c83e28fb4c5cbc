-- Bars stored per UTC day of [window_start, window_end) for one series (epoch ms).
SELECT :window_start + ((open_time - :window_start) / 86400000) * 86400000 AS day_start,
       count(*)                                                             AS present_bars
FROM ohlcv_candles
WHERE exchange = :exchange
  AND symbol = :symbol
  AND interval = :interval
  AND open_time >= :window_start
  AND open_time < :window_end
GROUP BY 1
ORDER BY 1
