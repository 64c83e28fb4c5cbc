-- Bars stored per UTC day of [window_start, window_end) for one series. The continuity scan runs
-- it only when the window's total falls short, to find which days to search for holes.
SELECT date_bin(interval '1 day', open_time, :window_start) AS day_start,
       count(*)                                             AS present_bars
FROM ohlcv_candles
WHERE exchange = :exchange
  AND symbol = :symbol
  AND interval = :interval
  AND open_time >= :window_start
  AND open_time < :window_end
GROUP BY 1
ORDER BY 1
