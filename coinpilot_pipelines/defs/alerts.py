"""Alert sensors: failed runs, WARN/ERROR asset checks and key states, posted to COINPILOT_ALERT_WEBHOOK_URL.

What counts as a change and how it is said lives in `alerts/`; here is only where the sensors find
what they observe: the run-failure events, the instance's event log (check evaluations, after a
cursor), run tags, `calibration_report` materializations and the application database.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import dagster as dg
from dagster._core.events import DagsterEventType
from sqlalchemy import Engine

from coinpilot_pipelines.alerts.observations import (
    PASSED,
    Observation,
    check_observations,
    contract_violations_by_symbol,
    flagged_news_sources,
    loss_limit_observation,
    missing_bars_by_symbol,
    promotion_observation,
    retrain_observation,
    run_failure_observation,
    run_symbols,
    trade_mode_observation,
)
from coinpilot_pipelines.alerts.service import AlertService
from coinpilot_pipelines.clients.webhook import WebhookClient
from coinpilot_pipelines.clock import Clock
from coinpilot_pipelines.defs.candles import CONTINUITY_CHECK, SCHEMA_CHECK
from coinpilot_pipelines.defs.links import asset_url, run_url
from coinpilot_pipelines.defs.news import HEALTH_CHECK
from coinpilot_pipelines.defs.resources import DatabaseResource
from coinpilot_pipelines.settings import DEFAULT_UI_BASE_URL
from coinpilot_pipelines.storage.monitoring import promotions_since, risk_states
from coinpilot_pipelines.trading.guards import MODES
from coinpilot_pipelines.trading.risk import daily_loss_limit_reached, realized_today

EXECUTOR_JOB = "order_executor_job"
MODE_TAG = "coinpilot/effective_mode"  # set by the executor's resolve_trading_mode op
CALIBRATION_ASSET = dg.AssetKey("calibration_report")
CHECK_BATCH = 500  # evaluations one tick reads; the rest wait for the next tick


@dataclass(frozen=True)
class AlertsResource:
    """Where alerts go: COINPILOT_ALERT_WEBHOOK_URL (a secret: never run config, never shown), and
    the UI their links point to (COINPILOT_UI_BASE_URL). Without a webhook, alerts are logged only."""

    webhook_url: str = field(default="", repr=False)
    ui_base_url: str = DEFAULT_UI_BASE_URL

    def service(self, engine: Engine, clock: Clock) -> AlertService:
        return AlertService(engine, WebhookClient(self.webhook_url) if self.webhook_url else None, clock)

    def run_link(self, run_id: str | None, asset: str) -> str:
        """The run, or the asset when the event came from a sensor tick rather than a run."""
        return run_url(self.ui_base_url, run_id) if run_id else asset_url(self.ui_base_url, asset)


@dataclass(frozen=True)
class WatchedCheck:
    failing: Callable[[Mapping[str, Any]], dict[str, str]]  # subject -> detail, from the evaluation's metadata
    # The subjects an evaluation speaks for: the symbols of the run that materialized the asset
    # (a candles run covers only its own partitions), or every subject the check names or failed before.
    per_run_symbols: bool


WATCHED_CHECKS = {
    CONTINUITY_CHECK: WatchedCheck(missing_bars_by_symbol, per_run_symbols=True),
    SCHEMA_CHECK: WatchedCheck(contract_violations_by_symbol, per_run_symbols=True),
    HEALTH_CHECK: WatchedCheck(flagged_news_sources, per_run_symbols=False),
}


def _plain(metadata: Mapping[str, dg.MetadataValue]) -> dict[str, Any]:
    return {key: value.value for key, value in metadata.items()}


def build_alert_definitions(symbols: tuple[str, ...], daily_loss_limit: Decimal) -> dict[str, list]:
    @dg.run_failure_sensor(
        name="run_failure_alert_sensor",
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Posts one alert per failed run (any job of this code location), with a link to the run.",
    )
    def run_failure_alert_sensor(context: dg.RunFailureSensorContext, database: dg.ResourceParam[DatabaseResource],
                                 alerts: dg.ResourceParam[AlertsResource], clock: dg.ResourceParam[Clock]) -> None:
        run = context.dagster_run
        # The root cause of the first failed step says why; the run's failure event only that a step failed.
        errors = [e.step_failure_data.error for e in context.get_step_failure_events() if e.step_failure_data.error]
        while errors and errors[0].cause is not None:
            errors[0] = errors[0].cause
        reason = errors[0].message if errors else context.failure_event.message or ""
        alerts.service(database.engine(), clock).report([run_failure_observation(
            run.job_name, run.run_id, reason, run_url(alerts.ui_base_url, run.run_id))])

    @dg.sensor(
        name="check_alert_sensor",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Posts an alert when candles_contract, candles_continuity or news_sources_healthy changes "
                    "state (WARN/ERROR, or passing again) for a symbol or news source; once per change.",
    )
    def check_alert_sensor(context: dg.SensorEvaluationContext, database: dg.ResourceParam[DatabaseResource],
                           alerts: dg.ResourceParam[AlertsResource],
                           clock: dg.ResourceParam[Clock]) -> dg.SensorResult:
        storage = context.instance.event_log_storage
        if context.cursor is None:
            # Evaluations from before the sensor ran are history, not news: start at the present.
            start = storage.get_maximum_record_id() or 0
            return dg.SensorResult(cursor=str(start), skip_reason=f"watching check evaluations after event {start}")
        events = storage.get_logs_for_all_runs_by_log_id(
            after_cursor=int(context.cursor), dagster_event_type=DagsterEventType.ASSET_CHECK_EVALUATION,
            limit=CHECK_BATCH)
        service = alerts.service(database.engine(), clock)
        run_tags: dict[str, Mapping[str, str]] = {}
        messages = []
        for entry in events.values():
            evaluation = entry.dagster_event.event_specific_data
            watched = WATCHED_CHECKS.get(evaluation.check_name)
            if watched is None:
                continue
            asset = evaluation.asset_key.to_user_string()
            failing = watched.failing(_plain(evaluation.metadata))
            if watched.per_run_symbols:
                if entry.run_id and entry.run_id not in run_tags:
                    run = context.instance.get_run_by_id(entry.run_id)
                    run_tags[entry.run_id] = run.tags if run else {}
                scope = run_symbols(run_tags.get(entry.run_id, {}), symbols)
            else:
                scope = [*failing, *service.failing_subjects(evaluation.check_name, PASSED)]
            messages += service.report(check_observations(
                evaluation.check_name, asset, passed=evaluation.passed, severity=evaluation.severity.value,
                failing=failing, scope=scope, link=alerts.run_link(entry.run_id, asset)))
        cursor = str(max(events, default=int(context.cursor)))
        return dg.SensorResult(cursor=cursor, skip_reason=None if messages else
                               f"{len(events)} check evaluation(s), no change of state")

    @dg.sensor(
        name="state_alert_sensor",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Posts an alert when the order executor's effective mode changes (live trading on or off), "
                    "a calibration report starts or stops recommending a retrain, a model is promoted, or a risk "
                    "profile reaches its daily loss limit.",
    )
    def state_alert_sensor(context: dg.SensorEvaluationContext, database: dg.ResourceParam[DatabaseResource],
                           alerts: dg.ResourceParam[AlertsResource],
                           clock: dg.ResourceParam[Clock]) -> dg.SensorResult:
        engine = database.engine()
        # None: the first tick, which reports the present state of each, not its history.
        cursor = json.loads(context.cursor) if context.cursor else {"calibration": None, "promotion": None}
        observations: list[Observation] = []

        mode_runs = context.instance.get_run_records(filters=dg.RunsFilter(
            job_name=EXECUTOR_JOB, tags={MODE_TAG: list(MODES)}), limit=1)
        latest_executor = mode_runs[0].dagster_run if mode_runs else None
        if latest_executor is not None:
            observations.append(trade_mode_observation(
                EXECUTOR_JOB, latest_executor.tags[MODE_TAG], latest_executor.run_id,
                run_url(alerts.ui_base_url, latest_executor.run_id)))

        reports = _calibration_reports(context.instance, cursor["calibration"])
        for record in reports:
            metadata = _plain(record.asset_materialization.metadata)
            if "recommend_retrain" in metadata:
                observations.append(retrain_observation(
                    CALIBRATION_ASSET.to_user_string(), bool(metadata["recommend_retrain"]),
                    str(metadata.get("reason", "")), alerts.run_link(record.run_id, CALIBRATION_ASSET.to_user_string())))

        promotions = promotions_since(engine, cursor["promotion"])
        observations += [promotion_observation(p.model_name, p.version, p.reason,
                                               alerts.run_link(p.dagster_run_id, "signal_model")) for p in promotions]

        now = clock.now()
        executor_link = run_url(alerts.ui_base_url, latest_executor.run_id) if latest_executor else None
        observations += [loss_limit_observation(profile, reached=daily_loss_limit_reached(state, daily_loss_limit, now),
                                                pnl_today=realized_today(state, now), limit=daily_loss_limit,
                                                link=executor_link)
                         for profile, state in sorted(risk_states(engine).items())]

        messages = alerts.service(engine, clock).report(observations)
        new_cursor = {"calibration": reports[-1].storage_id if reports else cursor["calibration"],
                      "promotion": promotions[-1].id if promotions else cursor["promotion"]}
        return dg.SensorResult(cursor=json.dumps(new_cursor),
                               skip_reason=None if messages else "no change of a watched state")

    return {"assets": [], "jobs": [], "schedules": [],
            "sensors": [run_failure_alert_sensor, check_alert_sensor, state_alert_sensor]}


def _calibration_reports(instance: dg.DagsterInstance, after_storage_id: int | None) -> list[dg.EventLogRecord]:
    """`calibration_report` materializations after the cursor, oldest first; the newest alone without one."""
    if after_storage_id is None:
        return list(instance.fetch_materializations(CALIBRATION_ASSET, limit=1).records)
    return list(instance.fetch_materializations(
        dg.AssetRecordsFilter(CALIBRATION_ASSET, after_storage_id=after_storage_id), limit=100, ascending=True).records)
