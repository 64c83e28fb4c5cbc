"""``coinpilot continuity-scan``: the older scanner's command line over the SQL continuity scan."""

from __future__ import annotations

from coinpilot_pipelines.clock import SYSTEM_CLOCK
from coinpilot_pipelines.defs.continuity import scan_window
from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.market.intervals import Interval
from coinpilot_pipelines.settings import Settings, validate_symbol
from coinpilot_pipelines.storage.continuity import scan_continuity
from coinpilot_pipelines.storage.database import get_engine
from coinpilot_pipelines.storage.gap_segments import register_gap


def run_continuity_scan(*, symbol: str, interval: str, days: int, end: str | None, dsn: str | None,
                        auto_insert_missing: bool) -> dict[str, object]:
    settings = Settings.from_env()
    series = SeriesKey(settings.market_exchange, validate_symbol(symbol, source="--symbol"), Interval.parse(interval))
    now = SYSTEM_CLOCK.now()
    window_start, window_end = scan_window(end, days, now)
    engine = get_engine(dsn or settings.database_url)
    scan = scan_continuity(engine, series, window_start, window_end)
    report = scan.to_json(scanned_days=days)
    if auto_insert_missing:
        inserted = 0
        for gap in scan.gaps:
            inserted += sum(r.created for r in register_gap(engine, series, gap.from_open_time, gap.to_open_time,
                                                            source="scan", now=now))
        report["segments_inserted"] = inserted
    return report
