"""Continuity in Dagster: the `gap_segments` asset (the 365-day scan) and gap repair.

When things run lives here; how gaps are found, merged and repaired lives in `market/` and
`storage/`.
"""

import dataclasses
import statistics
from datetime import date, datetime, time, timedelta, timezone

import dagster as dg
import pandas as pd
from sqlalchemy import Engine

from coinpilot_pipelines.clock import Clock
from coinpilot_pipelines.defs.images import png_markdown
from coinpilot_pipelines.defs.pools import EXCHANGE_POOL
from coinpilot_pipelines.defs.resources import NO_CONFIG, DatabaseResource, MarketDataResource
from coinpilot_pipelines.defs.runs import describe, runs_in_progress
from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.market.intervals import to_ms
from coinpilot_pipelines.market.repair import RepairOutcome, RepairPolicy, repair_segment
from coinpilot_pipelines.pictures.market import completeness_strip
from coinpilot_pipelines.settings import ContinuitySettings
from coinpilot_pipelines.storage.candles import day_summaries
from coinpilot_pipelines.storage.continuity import scan_continuity
from coinpilot_pipelines.storage.gap_segments import (
    ACTIVE_STATES,
    Segment,
    claim_due_segments,
    due_segments,
    get_segment,
    list_segments,
    register_gap,
)

CLAIM_TIMEOUT = timedelta(minutes=15)  # a `repairing` claim older than this belonged to a dead run
SCAN_CRON = "10 2 * * *"


def scan_window(end: str | None, days: int, now: datetime, *,
                not_before: date | None = None) -> tuple[datetime, datetime]:
    """``[end - days, end)`` at 00:00 UTC; ``end`` defaults to today. The start is never before
    ``not_before``: no bar is expected before the first day the pipeline collects."""
    end_day = date.fromisoformat(end) if end else now.astimezone(timezone.utc).date()
    window_end = datetime.combine(end_day, time(0), tzinfo=timezone.utc)
    window_start = window_end - timedelta(days=days)
    if not_before is not None:
        window_start = min(window_end, max(window_start, datetime.combine(not_before, time(0), tzinfo=timezone.utc)))
    return window_start, window_end


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def daily_completeness(engine: Engine, series: SeriesKey, days: pd.DatetimeIndex, window_end: datetime) -> list[float]:
    """Stored over expected bars for each UTC day of ``days`` (the last one ends at ``window_end``)."""
    stored = day_summaries(engine, series, days[0].to_pydatetime(), window_end)
    shares = []
    for day in days.to_pydatetime():
        expected = series.interval.bars_between(to_ms(day), to_ms(min(day + timedelta(days=1), window_end)))
        present = stored[day].present_bars if day in stored else 0
        shares.append(present / expected if expected else 1.0)
    return shares


def outage_days(segments: list[Segment], window_start: datetime, window_end: datetime) -> list[datetime]:
    """The UTC days inside the window touched by an unrecoverable segment."""
    touched = set()
    for segment in segments:
        if segment.state != "unrecoverable":
            continue
        first = max(segment.from_open_time, window_start)
        last = min(segment.to_open_time, window_end) - timedelta(milliseconds=1)
        touched.update(pd.date_range(pd.Timestamp(first).floor("D"), pd.Timestamp(last).floor("D"), freq="D"))
    return sorted(day.to_pydatetime() for day in touched)


def build_continuity_definitions(settings: ContinuitySettings, symbols: tuple[str, ...],
                                 start_date: date) -> dict[str, list]:
    # Legacy config schemas: Pythonic `str`/`int` fields would accept Dagster's {"env": NAME} source.
    scan_config = {
        "days": dg.Field(dg.Int, default_value=settings.scan_days),
        "end": dg.Field(dg.Noneable(dg.String), default_value=None,
                        description="YYYY-MM-DD; the window is [end - days, end) at 00:00 UTC (default: today)"),
    }

    @dg.asset(
        name="gap_segments",
        group_name="market",
        config_schema=scan_config,
        deps=["candles"],
        kinds={"sql"},
        description=(
            "Runs of missing candles per symbol over the last 365 days (from COINPILOT_START_DATE at the "
            "earliest), found in SQL, tracked as half-open segments from detection to recovery (or to "
            "unrecoverable, for real outages)."
        ),
    )
    def gap_segments(context: dg.AssetExecutionContext, database: dg.ResourceParam[DatabaseResource],
                     market_data: dg.ResourceParam[MarketDataResource],
                     clock: dg.ResourceParam[Clock]) -> dg.MaterializeResult:
        engine = database.engine()
        now = clock.now()
        config = context.op_execution_context.op_config
        window_start, window_end = scan_window(config["end"], config["days"], now, not_before=start_date)
        rows, inserted = [], 0
        days = pd.date_range(window_start, window_end, freq="D", inclusive="left")
        completeness, outages = {}, []
        for symbol in symbols:
            series = market_data.series(symbol)
            scan = scan_continuity(engine, series, window_start, window_end)
            for gap in scan.gaps:
                inserted += sum(r.created for r in register_gap(
                    engine, series, gap.from_open_time, gap.to_open_time, source="scan", now=now))
            segments = list_segments(engine, series)
            if len(days):
                completeness[symbol] = daily_completeness(engine, series, days, window_end)
                outages += [{"symbol": symbol, "day": day} for day in outage_days(segments, window_start, window_end)]
            recovered = [s for s in segments if s.state == "recovered" and s.recovered_at >= window_start]
            ttr = [(s.recovered_at - s.detected_at).total_seconds() for s in recovered]
            rows.append({
                "symbol": symbol,
                "completeness %": round(100 * scan.completeness, 4),
                "expected bars": scan.expected_bars,
                "present bars": scan.present_bars,
                "gaps": len(scan.gaps),
                "missing bars": scan.missing_bars,
                "open segments": sum(s.state in ACTIVE_STATES for s in segments),
                "unrecoverable": sum(s.state == "unrecoverable" for s in segments),
                "recovered": len(recovered),
                "ttr p50 s": _percentile(ttr, 50),
                "ttr p90 s": _percentile(ttr, 90),
            })
            context.log.info(f"{symbol}: {scan.present_bars}/{scan.expected_bars} bars, {len(scan.gaps)} gaps")
        table = pd.DataFrame(rows)
        pictures = {}
        if completeness:
            png = completeness_strip(pd.DataFrame(completeness, index=days),
                                     pd.DataFrame(outages, columns=["symbol", "day"]),
                                     title=f"completeness per day, {window_start:%Y-%m-%d} .. {window_end:%Y-%m-%d} "
                                           "(x: unrecoverable outage)")
            pictures["completeness_strip"] = png_markdown(png, "completeness per symbol per day")
        return dg.MaterializeResult(metadata={
            "window_start": dg.MetadataValue.timestamp(window_start),
            "window_end": dg.MetadataValue.timestamp(window_end),
            "segments_inserted": inserted,
            "open_segments": int(table["open segments"].sum()),
            "unrecoverable_segments": int(table["unrecoverable"].sum()),
            "min_completeness_pct": float(table["completeness %"].min()),
            "per_symbol": dg.MetadataValue.md(table.to_markdown(index=False)),
            **pictures,
        })

    continuity_scan_job = dg.define_asset_job(
        "continuity_scan_job", selection=[gap_segments.key],
        description="The daily 365-day continuity scan: find every hole and register it for repair.",
    )
    continuity_scan_schedule = dg.ScheduleDefinition(
        name="continuity_scan_schedule", job=continuity_scan_job, cron_schedule=SCAN_CRON,
        execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING,
    )

    repair_config = {
        "segment_ids": dg.Field(dg.Noneable(dg.Array(dg.Int)), default_value=None,
                                description="the segments to repair; default: whatever is due, by priority"),
        "max_segments": dg.Field(dg.Int, default_value=settings.repair_max_segments),
    }

    @dg.op(out=dg.DynamicOut(int), config_schema=repair_config, description="Claim the segments due for repair, by priority.")
    def claim_gap_segments(context: dg.OpExecutionContext, database: dg.ResourceParam[DatabaseResource],
                           clock: dg.ResourceParam[Clock]):
        config = context.op_config
        claimed = claim_due_segments(database.engine(), clock.now(), limit=config["max_segments"],
                                     claim_timeout=CLAIM_TIMEOUT, segment_ids=config["segment_ids"])
        context.log.info(f"claimed {len(claimed)} segment(s): {[s.id for s in claimed]}")
        for segment in claimed:
            yield dg.DynamicOutput(segment.id, mapping_key=f"segment_{segment.id}")

    @dg.op(pool=EXCHANGE_POOL, config_schema=NO_CONFIG, description="Refetch one segment's range, store it, recount, decide.")
    def repair_gap_segment(context: dg.OpExecutionContext, segment_id: int, database: dg.ResourceParam[DatabaseResource],
                           market_data: dg.ResourceParam[MarketDataResource], clock: dg.ResourceParam[Clock]) -> dict:
        engine = database.engine()
        segment = get_segment(engine, segment_id)
        policy = RepairPolicy(empty_attempts=settings.repair_empty_attempts,
                              empty_spacing=timedelta(seconds=settings.repair_empty_spacing_s))
        client = market_data.client(engine, clock)
        try:
            outcome = repair_segment(client, engine, segment, policy, clock.now(),
                                     run_id=context.run.run_id)
        finally:
            client.close()
        context.log.info(f"segment {segment_id} ({outcome.symbol}): {outcome.state}; {outcome.detail}")
        if outcome.bars_inserted:
            day = segment.from_open_time.date()
            while day <= (segment.to_open_time - timedelta(milliseconds=1)).date():
                context.log_event(dg.AssetMaterialization(
                    asset_key="candles", partition=f"{day.isoformat()}|{segment.series.symbol}",
                    metadata={"repaired_by_segment": segment_id, "bars_inserted": outcome.bars_inserted}))
                day += timedelta(days=1)
        return dataclasses.asdict(outcome)

    @dg.op(config_schema=NO_CONFIG, description="Summarize the repairs of this run.")
    def summarize_gap_repairs(outcomes: list[dict]) -> dg.Output[None]:
        frame = pd.DataFrame(outcomes, columns=list(RepairOutcome.__dataclass_fields__))
        states = frame["state"].value_counts().to_dict()
        return dg.Output(None, metadata={
            "segments": len(frame),
            "recovered": states.get("recovered", 0),
            "unrecoverable": states.get("unrecoverable", 0),
            "still_open": states.get("open", 0),
            "bars_inserted": int(frame["bars_inserted"].sum()),
            "outcomes": dg.MetadataValue.md(frame.to_markdown(index=False) if len(frame) else "_nothing was due_"),
        })

    @dg.job(name="gap_repair_job", description="Repair due gap segments, several at a time within the exchange pool.")
    def gap_repair_job():
        summarize_gap_repairs(claim_gap_segments().map(repair_gap_segment).collect())

    @dg.sensor(
        name="gap_repair_sensor",
        job=gap_repair_job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Starts gap_repair_job when segments are due (found by the scan, or retries).",
    )
    def gap_repair_sensor(context: dg.SensorEvaluationContext, database: dg.ResourceParam[DatabaseResource],
                          clock: dg.ResourceParam[Clock]) -> dg.SensorResult:
        # A run claims its segments when it starts; until then they still look due, so a run on its
        # way must not be doubled by one that would find nothing left to claim.
        pending = runs_in_progress(context.instance, gap_repair_job.name)
        targeted: set[int] = set()
        for run in pending:
            ids = run.run_config.get("ops", {}).get("claim_gap_segments", {}).get("config", {}).get("segment_ids")
            if ids is None:
                return dg.SensorResult(skip_reason=f"{describe(run)} and repairs whatever is due")
            targeted.update(ids)
        due = [s for s in due_segments(database.engine(), clock.now(), claim_timeout=CLAIM_TIMEOUT)
               if s.id not in targeted]
        if not due:
            return dg.SensorResult(skip_reason="no gap segment is due" + (
                f" beyond the {len(targeted)} that runs on their way will repair" if targeted else ""))
        batch = due[: settings.repair_max_segments]
        # The key names each segment's attempt: a re-evaluated tick cannot start the same repair twice.
        attempt = ",".join(f"{s.id}.{s.retry_count}.{s.empty_fetches}" for s in batch)
        return dg.SensorResult(run_requests=[dg.RunRequest(
            run_key=f"gap-repair-{attempt}",
            run_config={"ops": {"claim_gap_segments": {"config": {"segment_ids": [s.id for s in batch]}}}})])

    return {
        "assets": [gap_segments],
        "jobs": [continuity_scan_job, gap_repair_job],
        "schedules": [continuity_scan_schedule],
        "sensors": [gap_repair_sensor],
    }
