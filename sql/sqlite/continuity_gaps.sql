-- Runs of missing bars of one series inside [range_start, range_end), as half-open ranges
-- [from_open_time, to_open_time) in epoch ms (see postgresql/continuity_gaps.sql).
WITH bars AS (
    SELECT open_time,
           lead(open_time) OVER (ORDER BY open_time) AS next_open_time
    FROM ohlcv_candles
    WHERE exchange = :exchange
      AND symbol = :symbol
      AND interval = :interval
      AND open_time >= :range_start
      AND open_time < :range_end
), holes AS (
    SELECT open_time + :interval_ms                 AS from_open_time,
           coalesce(next_open_time, :range_end)     AS to_open_time
    FROM bars
    UNION ALL
    SELECT :range_start, coalesce(min(open_time), :range_end)
    FROM bars
)
SELECT from_open_time, to_open_time
FROM holes
WHERE to_open_time > from_open_time
ORDER BY from_open_time
