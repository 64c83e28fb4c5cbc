"""The live chain in Dagster: `live_kline_sensor` stores each bar that closes and follows it through.

A tick stores the bars closed since its cursor, computes their features, scores them with the
champion (cached in the long-lived code-server process) and fills the outcomes that became known.
Each stage is reported as materialization events of the assets it updates (`candles`, `features`,
`inference_log`) instead of a run per bar per symbol, which would bury the run history; holes start
`gap_repair_job`. `order_signal_sensor` (defs/trading.py) takes it from the stored scores.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from coinpilot_pipelines.clock import Clock
from coinpilot_pipelines.defs.ml import CHAMPIONS, MlflowResource
from coinpilot_pipelines.defs.partitions import partition_key
from coinpilot_pipelines.defs.resources import DatabaseResource, MarketDataResource
from coinpilot_pipelines.market.ingest import IngestReport
from coinpilot_pipelines.market.live import LeftBehind, LiveCursor, LivePolicy, RepeatedAnswers, poll_live_bars
from coinpilot_pipelines.ml.inference import FollowUp, follow_new_bars
from coinpilot_pipelines.settings import Settings


def _candles_event(report: IngestReport, behind: LeftBehind | None) -> dg.AssetMaterialization:
    metadata = {"source": "live_kline_sensor", "rows_inserted": report.counts.inserted,
                "rows_updated": report.counts.updated, "rows_rejected": report.rejected,
                "last_open_time": dg.MetadataValue.timestamp(report.last_open_time)}
    if behind is not None:
        metadata.update(behind_bars_left_to_backfill=behind.bars,
                        store_ended_at=dg.MetadataValue.timestamp(behind.newest_stored))
    return dg.AssetMaterialization("candles", partition=partition_key(report.last_open_time, report.series.symbol),
                                   metadata=metadata)


def _features_event(report: IngestReport, follow_up: FollowUp) -> dg.AssetMaterialization:
    return dg.AssetMaterialization("features", partition=partition_key(report.last_open_time, report.series.symbol),
                                   metadata={"source": "live_kline_sensor", "rows": follow_up.features.rows,
                                             "valid_rows": follow_up.features.valid_rows})


def _scores_event(follow_ups: list[FollowUp], model_version: str) -> dg.AssetMaterialization:
    latest = pd.DataFrame([f.latest for f in follow_ups if f.latest])
    return dg.AssetMaterialization("inference_log", metadata={
        "source": "live_kline_sensor", "model_version": model_version, "scored": sum(f.scored for f in follow_ups),
        "realized": sum(f.realized for f in follow_ups),
        "latest": dg.MetadataValue.md(latest.to_markdown(index=False) if len(latest) else "_nothing new_")})


def build_live_sensor(settings: Settings, gap_repair_job: dg.JobDefinition) -> dg.SensorDefinition:
    continuity, models = settings.continuity, settings.models
    policy = LivePolicy(lookback_bars=continuity.live_lookback_bars, max_catchup_bars=continuity.live_catchup_bars,
                        budget_s=continuity.live_tick_budget_s)
    answers = RepeatedAnswers()  # lives as long as the code server that evaluates the ticks

    @dg.sensor(
        name="live_kline_sensor",
        job=gap_repair_job,
        minimum_interval_seconds=continuity.live_poll_interval_s,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Stores the bars closed since its cursor, computes their features and the champion's "
        "scores, reports each as candles, features and inference_log materializations, and starts "
        "gap_repair_job for each hole.",
    )
    def live_kline_sensor(context: dg.SensorEvaluationContext, database: dg.ResourceParam[DatabaseResource],
                          market_data: dg.ResourceParam[MarketDataResource], mlflow: dg.ResourceParam[MlflowResource],
                          clock: dg.ResourceParam[Clock]) -> dg.SensorResult:
        engine = database.engine()
        client = market_data.client(engine, clock)
        try:
            tick = poll_live_bars(client, engine, [market_data.series(s) for s in settings.symbols],
                                  LiveCursor.from_json(context.cursor), clock.now(), policy, answers=answers)
        finally:
            client.close()
        behind = {b.symbol: b for b in tick.left_behind}
        for b in tick.left_behind:
            context.log.warning(
                f"{b.symbol}: the store ends at {b.newest_stored:%Y-%m-%d %H:%M} UTC, {b.bars} bars before the "
                f"last {policy.max_catchup_bars} this sensor catches up; backfill the missing partitions")
        stored = [r for r in tick.reports if r.counts.inserted or r.counts.updated]
        champion = CHAMPIONS.current(mlflow.registry(), engine, clock.now()) if stored else None
        events, follow_ups = [], []
        for report in stored:
            follow_up = follow_new_bars(engine, champion, mlflow.model_name, report.series, report.window_start,
                                        report.window_end, bars_changed=report.counts.updated > 0,
                                        threshold=models.inference_threshold, now=clock.now())
            follow_ups.append(follow_up)
            events += [_candles_event(report, behind.get(report.series.symbol)), _features_event(report, follow_up)]
        if champion is not None and any(f.scored for f in follow_ups):
            events.append(_scores_event(follow_ups, champion.version))
        requests = [
            dg.RunRequest(
                run_key=f"gap-segment-{new.segment_id}",
                run_config={"ops": {"claim_gap_segments": {"config": {"segment_ids": [new.segment_id]}}}},
                tags={"coinpilot/symbol": new.symbol, "coinpilot/gap_source": "stream"},
            )
            for new in tick.new_gaps
        ]
        if tick.deferred:
            context.log.info(f"time budget used up; {tick.deferred} continue next tick")
        return dg.SensorResult(run_requests=requests, asset_events=events, cursor=tick.cursor.to_json())

    return live_kline_sensor
