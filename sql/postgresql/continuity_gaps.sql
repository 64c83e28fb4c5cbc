-- Runs of missing bars of one series inside [range_start, range_end), as half-open ranges
-- [from_open_time, to_open_time): from the bar after a stored bar to the next stored bar (or to
-- the range end), plus the hole before the first stored bar. One ordered pass of the primary
-- key; the continuity scan runs it only over days its day counts found incomplete.
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
    SELECT open_time + :interval_ms * interval '1 millisecond' AS from_open_time,
           coalesce(next_open_time, :range_end)               AS to_open_time
    FROM bars
    UNION ALL
    SELECT :range_start, coalesce(min(open_time), :range_end)
    FROM bars
)
SELECT from_open_time, to_open_time
FROM holes
WHERE to_open_time > from_open_time
ORDER BY from_open_time
