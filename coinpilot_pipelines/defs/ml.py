"""Features, trained models, inference and calibration in Dagster, with retrain automation."""

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd

from coinpilot_pipelines.clients.mlflow_registry import CHAMPION, ModelRegistry, model_version_url, run_url
from coinpilot_pipelines.clock import Clock
from coinpilot_pipelines.defs.images import figure_markdown, png_markdown
from coinpilot_pipelines.defs.partitions import partition_key, windows_by_symbol
from coinpilot_pipelines.defs.resources import NO_CONFIG, DatabaseResource, MarketDataResource
from coinpilot_pipelines.features.candle_features import FEATURE_SET_VERSION, MODEL_FEATURES
from coinpilot_pipelines.features.schema import feature_contract_failures
from coinpilot_pipelines.features.service import FeatureRun, refresh_features
from coinpilot_pipelines.ml.bootstrap import BlockBootstrap
from coinpilot_pipelines.ml.inference import NO_CHAMPION, ChampionCache, score_and_realize
from coinpilot_pipelines.ml.labels import LabelSpec
from coinpilot_pipelines.ml.monitoring import RetrainPolicy
from coinpilot_pipelines.ml.pipeline import train_and_register
from coinpilot_pipelines.ml.promotion import PromotionPolicy
from coinpilot_pipelines.ml.reporting import build_calibration_report
from coinpilot_pipelines.ml.training import MODEL_KINDS, TrainingSpec
from coinpilot_pipelines.pictures.features import bands_and_rsi
from coinpilot_pipelines.settings import ModelSettings
from coinpilot_pipelines.storage.models import reports_since

FEATURES_CHECK = "features_contract"
# One retrain at a time where the run queue applies tag limits; the promotion step also takes a
# database lock, since in-process runs (the demo) bypass the queue.
RETRAIN_TAGS = {"coinpilot/exclusive": "retrain"}
# The champion each long-lived process (a code server) scores with, loaded once per version.
CHAMPIONS = ChampionCache()


@dataclass(frozen=True)
class MlflowResource:
    """The MLflow tracking server and model registry (a SQLite store under COINPILOT_HOME by default)."""

    tracking_uri: str = field(repr=False)  # may carry credentials
    model_name: str = "coinpilot-signal"
    artifact_root: str | None = None  # a local directory for artifacts when the store is local

    def registry(self) -> ModelRegistry:
        root = Path(self.artifact_root) if self.artifact_root else None
        return ModelRegistry(self.tracking_uri, model_name=self.model_name, experiment=self.model_name,
                             artifact_root=root)


def _metrics_md(rows: dict[str, dict]) -> str:
    return pd.DataFrame(rows).T.round(5).to_markdown()


def last_day_chart(run: FeatureRun) -> tuple[str, dg.MetadataValue] | None:
    """The partition of the run's last day and its close, bands and RSI; None when that day has no bar."""
    day = run.end - timedelta(days=1)
    rows = run.features[run.features["open_time"] >= day]
    if rows.empty:
        return None
    title = f"{run.series.symbol} {day:%Y-%m-%d}: close, Bollinger bands, RSI"
    return partition_key(day, run.series.symbol), png_markdown(bands_and_rsi(rows, title=title), title)


def build_ml_definitions(settings: ModelSettings, partitions: dg.MultiPartitionsDefinition,
                         symbols: tuple[str, ...]) -> dict[str, list]:
    def series_list(market_data: dg.ResourceParam[MarketDataResource]) -> list:
        return [market_data.series(s) for s in symbols]

    @dg.asset(
        name="features",
        config_schema=NO_CONFIG,
        group_name="ml",
        deps=["candles"],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"pandas", "sql"},
        description="Per-bar features from that bar and earlier ones only; bars whose windows cross a "
        "gap or the warm-up are stored flagged invalid.",
        check_specs=[dg.AssetCheckSpec(FEATURES_CHECK, asset="features", blocking=True,
                                       description="The computed features honour the pandera FeatureModel.")],
    )
    def features(context: dg.AssetExecutionContext, database: dg.ResourceParam[DatabaseResource], clock: dg.ResourceParam[Clock],
                 market_data: dg.ResourceParam[MarketDataResource]) -> dg.MaterializeResult:
        engine = database.engine()
        now = clock.now()
        runs = []
        for symbol, spans in windows_by_symbol(partitions, context.partition_keys).items():
            for start, end in spans:
                runs.append(refresh_features(engine, market_data.series(symbol), start, end, now=now))
            # Spans are in order: the symbol's last run holds its last day.
            if (chart := last_day_chart(runs[-1])) is not None:
                context.add_asset_metadata({"bands_and_rsi": chart[1]}, partition_key=chart[0])
        computed = pd.concat([r.features for r in runs], ignore_index=True)
        failures = feature_contract_failures(computed)
        reasons = sum((r.invalid_reasons for r in runs), start=Counter())
        return dg.MaterializeResult(
            metadata={
                "rows": int(sum(r.rows for r in runs)),
                "valid_rows": int(sum(r.valid_rows for r in runs)),
                "invalid_by_reason": dg.MetadataValue.json(dict(reasons)),
                "feature_set_version": FEATURE_SET_VERSION,
                "preview": dg.MetadataValue.md(_preview(computed)),
            },
            check_results=[dg.AssetCheckResult(
                check_name=FEATURES_CHECK, passed=failures.empty, severity=dg.AssetCheckSeverity.ERROR,
                metadata={"rows_checked": len(computed), "failures": len(failures),
                          "failure_sample": dg.MetadataValue.md(failures.head(10).to_markdown(index=False)
                                                                if len(failures) else "_none_")},
            )],
        )

    # Legacy config schema: Pythonic `str`/`int` fields would accept Dagster's {"env": NAME} source.
    training_config = {
        "window_days": dg.Field(dg.Int, default_value=settings.train_window_days),
        "model": dg.Field(dg.Enum("ModelKind", [dg.EnumValue(kind) for kind in MODEL_KINDS]), default_value="logistic"),
        "regularization": dg.Field(dg.Float, default_value=1.0),
        "features": dg.Field(dg.Array(dg.Enum("ModelFeature", [dg.EnumValue(f) for f in MODEL_FEATURES])),
                             default_value=list(MODEL_FEATURES)),
    }

    @dg.asset(
        name="signal_model",
        group_name="ml",
        config_schema=training_config,
        deps=["features", "candles"],
        kinds={"scikitlearn", "mlflow"},
        description="A direction classifier trained on a trailing window of all symbols, registered in "
        "MLflow as `challenger`, and promoted to `champion` only if it beats climatology and the champion "
        "on the same held-out window, under block-bootstrap intervals.",
    )
    def signal_model(context: dg.AssetExecutionContext, database: dg.ResourceParam[DatabaseResource], clock: dg.ResourceParam[Clock],
                     market_data: dg.ResourceParam[MarketDataResource], mlflow: dg.ResourceParam[MlflowResource]) -> dg.MaterializeResult:
        config = context.op_execution_context.op_config
        spec = TrainingSpec(
            window_days=config["window_days"], labels=LabelSpec(settings.label_horizon_bars, settings.label_dead_band),
            embargo_bars=settings.label_horizon_bars, model=config["model"], regularization=config["regularization"],
            features=tuple(config["features"]),
        )
        policy = PromotionPolicy(settings.promote_min_auc_improve, settings.promote_max_brier_degrade,
                                 settings.promote_max_ece_degrade, BlockBootstrap(settings.bootstrap_block_bars))
        registry = mlflow.registry()
        outcome = train_and_register(database.engine(), registry, series_list(market_data), spec, policy,
                                     now=clock.now(), dagster_run_id=context.run.run_id,
                                     log=context.log.info)
        decision = outcome.decision
        context.log.info(f"version {outcome.version}: {decision.reason}")
        return dg.MaterializeResult(metadata={
            "model_version": outcome.version,
            "champion_version": outcome.champion_version or "",
            "promoted": decision.promote,
            "promotion_reason": decision.reason,
            "promotion_event_id": outcome.promotion_event_id,
            "test_auc": decision.challenger.auc,
            "test_brier": decision.challenger.brier,
            "test_ece": decision.challenger.ece,
            "test_log_loss": decision.challenger.log_loss,
            "brier_skill": decision.brier_skill,
            "brier_skill_ci": dg.MetadataValue.json(list(decision.brier_skill_ci) if decision.brier_skill_ci else None),
            "auc_gain_ci": dg.MetadataValue.json(list(decision.auc_gain_ci) if decision.auc_gain_ci else None),
            "bootstrap_block_bars": decision.block_bars,
            "metrics": dg.MetadataValue.md(outcome.scores.round(5).to_markdown()),
            "probability_histogram": figure_markdown(outcome.histogram, "held-out probability histogram"),
            "train_rows": outcome.train_rows,
            "test_rows": outcome.test_rows,
            "test_dead_band_rows": outcome.dead_band_rows,
            "data_window": f"{outcome.data_start:%Y-%m-%d %H:%M} .. {outcome.data_end:%Y-%m-%d %H:%M} UTC",
            "test_window": f"{outcome.test.test_start:%Y-%m-%d %H:%M} .. {outcome.test.test_end:%Y-%m-%d %H:%M} UTC",
            "features": ",".join(outcome.features),
            "feature_set_version": FEATURE_SET_VERSION,
            "mlflow_run_id": outcome.run.run_id,
            "mlflow_run": dg.MetadataValue.url(run_url(settings.mlflow_ui_url, outcome.run)),
            "mlflow_model_version": dg.MetadataValue.url(
                model_version_url(settings.mlflow_ui_url, registry.model_name, outcome.version)),
        })

    @dg.asset(
        name="inference_log",
        config_schema=NO_CONFIG,
        group_name="ml",
        deps=["signal_model", "features"],
        kinds={"sql"},
        description="The champion's probability for each new bar, with threshold and decision; realized "
        "outcomes are filled in once the horizon has passed.",
    )
    def inference_log(context: dg.AssetExecutionContext, database: dg.ResourceParam[DatabaseResource],
                      market_data: dg.ResourceParam[MarketDataResource], mlflow: dg.ResourceParam[MlflowResource],
                      clock: dg.ResourceParam[Clock]) -> dg.MaterializeResult:
        outcome = score_and_realize(database.engine(), mlflow.registry(), series_list(market_data),
                                    threshold=settings.inference_threshold, lookback_bars=settings.inference_lookback_bars,
                                    now=clock.now(), champions=CHAMPIONS)
        if outcome.model_version is None:
            context.log.warning(f"nothing scored: {NO_CHAMPION}")
            return dg.MaterializeResult(metadata={"model_version": "", "scored": 0, "realized": 0,
                                                  "why": f"nothing scored: {NO_CHAMPION}"})
        latest = pd.DataFrame(outcome.latest)
        context.log.info(f"model v{outcome.model_version}: {outcome.scored} scored, {outcome.realized} realized")
        return dg.MaterializeResult(metadata={
            "model_version": outcome.model_version,
            "scored": outcome.scored,
            "realized": outcome.realized,
            "threshold": settings.inference_threshold,
            "latest": dg.MetadataValue.md(latest.to_markdown(index=False) if len(latest) else "_nothing new_"),
        })

    @dg.asset(
        name="calibration_report",
        config_schema=NO_CONFIG,
        group_name="ml",
        deps=["inference_log", "signal_model"],
        kinds={"mlflow"},
        description="Production (held-out) versus live (realized) calibration of the champion, feature "
        "drift, and whether to retrain.",
    )
    def calibration_report(context: dg.AssetExecutionContext, database: dg.ResourceParam[DatabaseResource],
                           market_data: dg.ResourceParam[MarketDataResource], mlflow: dg.ResourceParam[MlflowResource],
                           clock: dg.ResourceParam[Clock]) -> dg.MaterializeResult:
        registry = mlflow.registry()
        if registry.alias_version(CHAMPION) is None:
            context.log.warning(f"no calibration report: {NO_CHAMPION}")
            return dg.MaterializeResult(metadata={"recommend_retrain": False, "reason": f"no champion to calibrate: "
                                                                                        f"{NO_CHAMPION}"})
        policy = RetrainPolicy(settings.retrain_ece_gap_abs, settings.retrain_ece_gap_rel, settings.retrain_ece_streak,
                               settings.drift_z_threshold, settings.drift_features, settings.drift_psi_threshold)
        report = build_calibration_report(database.engine(), registry, series_list(market_data),
                                          policy=policy, live_window_days=settings.calibration_live_window_days,
                                          now=clock.now(), dagster_run_id=context.run.run_id)
        context.log.info(f"report {report.report_id}: {report.recommendation.reason}")
        snapshot_rows = {"production (held-out)": {k: getattr(report.production, k) for k in ("ece", "mce", "brier", "count")}}
        if report.live is not None:
            snapshot_rows["live (realized)"] = {k: getattr(report.live, k) for k in ("ece", "mce", "brier", "count")}
        bins = report.production.table.round(4).to_markdown(index=False)
        return dg.MaterializeResult(metadata={
            "report_id": report.report_id,
            "model_version": report.model_version,
            "recommend_retrain": report.recommendation.retrain,
            "reason": report.recommendation.reason,
            "production_ece": report.production.ece,
            "live_ece": report.live.ece if report.live else None,
            "ece_gap": (report.live.ece - report.production.ece) if report.live else None,
            "calibration": dg.MetadataValue.md(_metrics_md(snapshot_rows)),
            "production_bins": dg.MetadataValue.md(bins),
            "live_bins": dg.MetadataValue.md(report.live.table.round(4).to_markdown(index=False) if report.live else "_no outcomes yet_"),
            "drift": dg.MetadataValue.json({d.feature: d.report() for d in report.drift}),
            "reliability_diagram": figure_markdown(report.diagram, "reliability diagram: production vs live"),
            "mlflow_run_id": report.run.run_id,
            "mlflow_run": dg.MetadataValue.url(run_url(settings.mlflow_ui_url, report.run)),
            "mlflow_model_version": dg.MetadataValue.url(
                model_version_url(settings.mlflow_ui_url, mlflow.model_name, report.model_version)),
            "bin_edges": "10 equal-width bins, right-closed: [0, 0.1], (0.1, 0.2], ..., (0.9, 1] (as scikit-learn)",
        })

    retrain_job = dg.define_asset_job(
        "retrain_job", selection=[signal_model.key], tags=RETRAIN_TAGS,
        description="Refresh the training window's features, train, register and run the promotion step.",
    )
    calibration_job = dg.define_asset_job(
        "calibration_job", selection=[inference_log.key, calibration_report.key],
        description="Score new bars with the champion, fill realized outcomes, and write a calibration report.",
    )
    # Both run by default: the monitoring half of the loop (scores -> report -> retrain_sensor ->
    # retrain_job -> promotion) needs no person.
    retrain_schedule = dg.ScheduleDefinition(
        name="retrain_schedule", job=retrain_job, cron_schedule=settings.retrain_cron, execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING)
    calibration_schedule = dg.ScheduleDefinition(
        name="calibration_schedule", job=calibration_job, cron_schedule=settings.calibration_cron,
        execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING)

    @dg.sensor(
        name="retrain_sensor",
        job=retrain_job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Starts retrain_job once per calibration report that recommends it, at most once per "
        "cooldown, so a flapping report cannot start a retrain storm.",
    )
    def retrain_sensor(context: dg.SensorEvaluationContext,
                       database: dg.ResourceParam[DatabaseResource]) -> dg.SensorResult:
        # The cooldown is measured on the reports' own times (the project's clock), never on Dagster's
        # event timestamps, which are wall-clock time even in a simulation.
        cursor = json.loads(context.cursor) if context.cursor else {"after_id": 0, "last_requested_at": None}
        last = datetime.fromisoformat(cursor["last_requested_at"]) if cursor["last_requested_at"] else None
        requests, skipped, after_id = [], [], cursor["after_id"]
        for report in reports_since(database.engine(), after_id):
            after_id = report.id
            if not report.recommend_retrain:
                continue
            if last is not None and report.created_at - last < timedelta(seconds=settings.retrain_cooldown_s):
                skipped.append(report.id)
                continue
            last = report.created_at
            requests.append(dg.RunRequest(run_key=f"retrain-for-calibration-report-{report.id}",
                                          tags={"coinpilot/calibration_report": str(report.id)}))
        if skipped:
            context.log.info(f"reports {skipped} recommend retraining inside the cooldown; not retraining again")
        new_cursor = json.dumps({"after_id": after_id, "last_requested_at": last.isoformat() if last else None})
        return dg.SensorResult(run_requests=requests, cursor=new_cursor,
                               skip_reason=None if requests else "no new report recommends retraining")

    return {
        "assets": [features, signal_model, inference_log, calibration_report],
        "jobs": [retrain_job, calibration_job],
        "schedules": [retrain_schedule, calibration_schedule],
        "sensors": [retrain_sensor],
    }


def _preview(computed: pd.DataFrame) -> str:
    valid = computed[computed["is_valid"]].tail(5).drop(columns=["invalid_reason", "is_valid"])
    return valid.round({c: 6 for c in valid.columns if c != "open_time"}).to_markdown(index=False)
