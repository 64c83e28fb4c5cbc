"""The `candles` asset: exchange bars per UTC day and symbol, with its contract checks."""

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import dagster as dg
import pandas as pd
from sqlalchemy import Engine

from coinpilot_pipelines.clients.http import RequestStats
from coinpilot_pipelines.clock import Clock
from coinpilot_pipelines.defs.images import png_markdown
from coinpilot_pipelines.defs.partitions import days_between, partition_key, windows_by_symbol
from coinpilot_pipelines.defs.pools import EXCHANGE_POOL
from coinpilot_pipelines.defs.resources import NO_CONFIG, DatabaseResource, MarketDataResource
from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.market.ingest import IngestReport, ingest_candles
from coinpilot_pipelines.market.intervals import to_ms
from coinpilot_pipelines.pictures.market import candles_day
from coinpilot_pipelines.storage.candles import WindowSummary, consistency_violations, day_summaries, read_candles
from coinpilot_pipelines.storage.continuity import holes_in
from coinpilot_pipelines.storage.gap_segments import register_gap

SCHEMA_CHECK = "candles_contract"
CONTINUITY_CHECK = "candles_continuity"
CANDLE_BUCKET = timedelta(minutes=30)  # a day of 1m bars drawn as 48 candles
OHLC = ("open", "high", "low", "close")


def _per_symbol_table(reports: list[IngestReport]) -> str:
    frame = pd.DataFrame(
        [
            {
                "symbol": r.series.symbol,
                "window": f"{r.window_start:%Y-%m-%d %H:%M} .. {r.window_end:%Y-%m-%d %H:%M}",
                "fetched": r.fetched,
                "inserted": r.counts.inserted,
                "updated": r.counts.updated,
                "rejected": r.rejected,
                "missing bars": r.missing_bars,
                "completeness %": round(100 * r.completeness, 3),
            }
            for r in reports
        ]
    )
    return frame.to_markdown(index=False)


def _preview(reports: list[IngestReport]) -> str:
    frames = [r.preview.assign(symbol=r.series.symbol) for r in reports if not r.preview.empty]
    if not frames:
        return "_no bars stored in this run_"
    preview = pd.concat(frames).head(10)
    preview["open_time"] = preview["open_time"].dt.strftime("%Y-%m-%d %H:%M")
    return preview.drop(columns=["close_time"]).to_markdown(index=False)


def _sum(reports: list[IngestReport], attribute: str) -> int:
    return sum(int(getattr(r, attribute)) for r in reports)


def run_metadata(reports: list[IngestReport], request_stats: RequestStats) -> dict[str, Any]:
    """What the whole run did: on every partition it materialized, beside that partition's own figures."""
    reasons = sum((r.reject_reasons for r in reports), start=Counter())
    metadata: dict[str, Any] = {
        "run_per_symbol": dg.MetadataValue.md(_per_symbol_table(reports)),
        "run_rows_fetched": _sum(reports, "fetched"),
        "run_rows_inserted": sum(r.counts.inserted for r in reports),
        "run_rows_updated": sum(r.counts.updated for r in reports),
        "run_rows_unchanged": sum(r.counts.unchanged for r in reports),
        "run_rows_rejected": _sum(reports, "rejected"),
        "duplicates_collapsed": _sum(reports, "duplicates_collapsed"),
        "open_bars_skipped": _sum(reports, "open_bars"),
        "rows_with_extra_fields": _sum(reports, "extra_fields"),
        "exchange_requests": request_stats.requests,
        "exchange_retries": request_stats.transient_retries,
        "exchange_rate_limited": request_stats.rate_limited,
        "database_retries": _sum(reports, "db_retries"),
        "preview": dg.MetadataValue.md(_preview(reports)),
    }
    if reasons:
        top = "\n".join(f"- {count} x {reason}" for reason, count in reasons.most_common(10))
        metadata["reject_reasons"] = dg.MetadataValue.md(top)
    return metadata


def partition_metadata(engine: Engine, report: IngestReport, day: datetime,
                       stored: WindowSummary | None) -> dict[str, Any]:
    """One day of one symbol as this run left it: what was fetched and inserted, what is there, its chart."""
    end = min(day + timedelta(days=1), report.window_end)
    expected = report.series.interval.bars_between(to_ms(day), to_ms(end)) if end > day else 0
    present = stored.present_bars if stored else 0
    metadata: dict[str, Any] = {
        "chart": day_chart(engine, report.series, day, end) if end > day else dg.MetadataValue.md("_no closed bar yet_"),
        "rows_fetched": report.fetched_by_day.get(day, 0),
        "rows_inserted": report.counts.inserted_by_day.get(day, 0),
        "rows_rejected": report.rejected_by_day.get(day, 0),
        "expected_bars": expected,
        "present_bars": present,
        "missing_bars": max(0, expected - present),
        "completeness_pct": round(100.0 * present / expected, 4) if expected else 100.0,
    }
    if stored is not None and stored.first_open_time is not None:
        metadata["first_open_time"] = dg.MetadataValue.timestamp(stored.first_open_time)
        metadata["last_open_time"] = dg.MetadataValue.timestamp(stored.last_open_time)
    return metadata


def day_chart(engine: Engine, series: SeriesKey, day: datetime, end: datetime) -> dg.MetadataValue:
    """The day's candles as stored, with the ranges still missing in ``[day, end)`` shaded."""
    bars = read_candles(engine, series, day, end)[["open_time", *OHLC]].astype({c: "float64" for c in OHLC})
    missing = [(gap.from_open_time, gap.to_open_time) for gap in holes_in(engine, series, day, end)]
    png = candles_day(bars, missing, start=day, end=day + timedelta(days=1),
                      bucket=max(CANDLE_BUCKET, series.interval.delta), title=f"{series.symbol} {day:%Y-%m-%d}")
    return png_markdown(png, f"{series.symbol} candles {day:%Y-%m-%d}")


def register_missing(engine: Engine, report: IngestReport, now: datetime) -> int:
    """Track the holes a fetch left, so gap repair picks them up; returns new segments."""
    created = 0
    for gap in holes_in(engine, report.series, report.window_start, report.window_end):
        created += sum(r.created for r in register_gap(engine, report.series, gap.from_open_time,
                                                       gap.to_open_time, source="ingest", now=now))
    return created


def build_candles_asset(partitions: dg.MultiPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name="candles",
        config_schema=NO_CONFIG,
        group_name="market",
        partitions_def=partitions,
        # A year of one symbol launched from the UI is one run paging through the exchange.
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=EXCHANGE_POOL,
        kinds={"python", "sql"},
        description=(
            "Closed OHLCV bars from the exchange, one partition per UTC day and symbol. Rows that "
            "break the candle contract are quarantined in candle_rejects with their reason."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                SCHEMA_CHECK,
                asset="candles",
                blocking=True,
                description="Stored bars honour the candle contract (prices > 0, volume >= 0, "
                "high/low cover open and close, open time on the interval grid, close time inside the bar).",
            ),
            dg.AssetCheckSpec(
                CONTINUITY_CHECK,
                asset="candles",
                description="Every closed bar of the window is stored; WARN when bars are missing.",
            ),
        ],
    )
    def candles(
        context: dg.AssetExecutionContext, database: dg.ResourceParam[DatabaseResource],
        market_data: dg.ResourceParam[MarketDataResource], clock: dg.ResourceParam[Clock],
    ) -> dg.MaterializeResult:
        engine = database.engine()
        windows = windows_by_symbol(partitions, context.partition_keys)
        reports: list[IngestReport] = []
        registered = 0
        client = market_data.client(engine, clock)
        try:
            for symbol, spans in windows.items():
                for start, end in spans:
                    context.log.info(f"fetching {symbol} {market_data.interval} bars {start:%Y-%m-%d} .. {end:%Y-%m-%d}")
                    report = ingest_candles(
                        client, engine, market_data.series(symbol), start, end,
                        source="rest", run_id=context.run.run_id, now=clock.now(),
                        chunk_rows=market_data.chunk_rows,
                    )
                    context.log.info(
                        f"{symbol}: {report.fetched} fetched, {report.counts.inserted} inserted, "
                        f"{report.counts.updated} updated, {report.rejected} rejected, "
                        f"{report.missing_bars} missing of {report.expected_bars}"
                    )
                    reports.append(report)
                    if report.missing_bars:
                        registered += register_missing(engine, report, clock.now())
                    # Each partition's materialization describes its own day, also in a single-run backfill.
                    stored = day_summaries(engine, report.series, start, end)
                    for day in days_between(start, end):
                        context.add_asset_metadata(partition_metadata(engine, report, day, stored.get(day)),
                                                   partition_key=partition_key(day, symbol))
        finally:
            client.close()

        checked_bars = 0
        violations: dict[str, int] = {}
        for report in reports:
            found = consistency_violations(engine, report.series, report.window_start, report.window_end)
            checked_bars += found.pop("checked_bars")
            violations.update({f"{report.series.symbol}: {rule}": n for rule, n in found.items() if n})
        missing = {r.series.symbol: r.missing_bars for r in reports if r.missing_bars}
        return dg.MaterializeResult(
            metadata={**run_metadata(reports, client.stats), "gap_segments_registered": registered},
            check_results=[
                dg.AssetCheckResult(
                    check_name=SCHEMA_CHECK,
                    passed=not violations,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={
                        "checked_bars": checked_bars,
                        "violations": dg.MetadataValue.json(violations),
                        "rows_quarantined_this_run": _sum(reports, "rejected"),
                    },
                ),
                dg.AssetCheckResult(
                    check_name=CONTINUITY_CHECK,
                    passed=not missing,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={
                        "missing_bars": sum(missing.values()),
                        "missing_by_symbol": dg.MetadataValue.json(missing),
                    },
                ),
            ],
        )

    return candles
