-- Stored bars of one series in [window_start, window_end) that break the candle contract.
-- Mirrors market/validation.py's CandleModel, so a blocking check can vouch for what is stored.
SELECT count(*) FILTER (WHERE open <= 0 OR high <= 0 OR low <= 0 OR close <= 0)     AS non_positive_price,
       count(*) FILTER (WHERE volume < 0 OR quote_volume < 0 OR trade_count < 0)     AS negative_volume,
       count(*) FILTER (WHERE high < greatest(open, close))                          AS high_below_body,
       count(*) FILTER (WHERE low > least(open, close))                              AS low_above_body,
       count(*) FILTER (WHERE high < low)                                            AS high_below_low,
       count(*) FILTER (WHERE (extract(epoch FROM open_time) * 1000)::bigint % :interval_ms <> 0)
                                                                                     AS off_grid,
       count(*) FILTER (WHERE close_time <= open_time
                           OR close_time > open_time + (:interval_ms - 1) * interval '1 millisecond')
                                                                                     AS close_outside_interval,
       count(*)                                                                      AS checked_bars
FROM ohlcv_candles
WHERE exchange = :exchange
  AND symbol = :symbol
  AND interval = :interval
  AND open_time >= :window_start
  AND open_time < :window_end
