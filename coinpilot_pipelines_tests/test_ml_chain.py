"""The model chain through Dagster on real data from the emulator (21 days of the bundled
Binance.US BTCUSDT recording, and the synthetic XRPUSDT), with a real local MLflow store:
a model no better than climatology is not champion and the model strategy says it is idle; a
model that beats it becomes champion; a worse challenger is kept out; inference scores every bar
held-out evaluation counted; calibration, and a report with a large ECE gap starting exactly one
retrain."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from mlflow import MlflowClient
from sqlalchemy import update

from coinpilot_pipelines.defs import build_definitions, resource_values
from coinpilot_pipelines.defs.resources import DatabaseResource
from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.ml.bootstrap import BlockBootstrap
from coinpilot_pipelines.ml.labels import LabelSpec
from coinpilot_pipelines.ml.pipeline import train_and_register
from coinpilot_pipelines.ml.promotion import PromotionPolicy
from coinpilot_pipelines.ml.training import TrainingSpec
from coinpilot_pipelines.storage.database import get_engine
from coinpilot_pipelines.storage.models import inference_log, promotion_history
from coinpilot_pipelines.storage.schema import model_inference_log

from .dagster_helpers import QUIET, project_definitions, range_tags, settings_for

SYMBOLS = ("BTCUSDT", "XRPUSDT")
FIRST_DAY, LAST_DAY, DAYS = "2023-03-01", "2023-03-21", 21  # the whole BTCUSDT recording
PNG_MARKDOWN = "](data:image/png;base64,"
NOW = datetime(2023, 3, 22, tzinfo=timezone.utc)


def metadata_of(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    event = next(e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset))
    return {k: v.value for k, v in event.materialization.metadata.items()}


def train(defs: dg.Definitions, instance: dg.DagsterInstance, **config: object) -> dict:
    result = defs.resolve_job_def("retrain_job").execute_in_process(
        instance=instance, run_config={**QUIET, "ops": {"signal_model": {"config": config}}})
    assert result.success
    return metadata_of(result, "signal_model")


def model_strategy(defs: dg.Definitions, instance: dg.DagsterInstance) -> str:
    result = defs.resolve_job_def("order_executor_job").execute_in_process(
        instance=instance, run_config={**QUIET, "ops": {"resolve_trading_mode": {"config": {"mode": "shadow"}}}})
    assert result.success
    outputs = [e for e in result.all_events if e.is_successful_output and e.step_key == "collect_signals"]
    return outputs[0].step_output_data.metadata["model_strategy"].value


def assert_inline_png(markdown: str, alt: str) -> None:
    assert markdown.startswith(f"![{alt}{PNG_MARKDOWN}") and markdown.endswith(")")
    assert 5_000 < len(markdown) < 80_000  # a picture, yet small enough for the event log


def store_market(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    assets = defs.resolve_implicit_global_asset_job_def()
    for symbol in SYMBOLS:
        result = assets.execute_in_process(
            instance=instance, asset_selection=[dg.AssetKey("candles"), dg.AssetKey("features")],
            tags=range_tags(f"{FIRST_DAY}|{symbol}", f"{LAST_DAY}|{symbol}"), run_config=QUIET)
        assert result.success
        assert metadata_of(result, "features")["valid_rows"] == DAYS * 1440 - 199


@pytest.fixture
def chain(sqlite_url: str, emulator, tmp_path: Path):  # noqa: ANN001, ANN201
    # Inference looks back 7 days, over the whole held-out window, so their bars can be compared.
    defs = project_definitions(sqlite_url, emulator.url, COINPILOT_HOME=str(tmp_path), INFERENCE_LOOKBACK_BARS="10080",
                               AUTO_RETRAIN_ECE_STREAK="1", AUTO_RETRAIN_COOLDOWN_SEC="3600",
                               COINPILOT_MLFLOW_UI_URL="http://mlflow.example:5000")
    instance = dg.DagsterInstance.ephemeral()
    store_market(defs, instance)
    return defs, instance, tmp_path


def test_train_register_promote_infer_calibrate_and_retrain(chain, sqlite_url: str) -> None:  # noqa: ANN001
    defs, instance, home = chain
    assert model_strategy(defs, instance) == "idle: no model has been trained yet (materialize signal_model)"

    # Volume alone knows nothing about direction: no better than climatology, so never champion.
    useless = train(defs, instance, features=["vol_ratio"])
    assert (useless["model_version"], useless["promoted"], useless["champion_version"]) == ("1", False, "")
    assert useless["promotion_reason"].startswith(
        "no champion yet, and this model does not earn it: Brier skill vs climatology")
    assert useless["brier_skill_ci"][0] <= 0 and useless["bootstrap_block_bars"] == 240
    assert model_strategy(defs, instance).startswith(
        "idle: coinpilot-signal has no champion; the latest challenger, v1, was not promoted (no champion yet")

    first = train(defs, instance)
    assert (first["model_version"], first["promoted"], first["champion_version"]) == ("2", True, "2")
    assert first["promotion_reason"].startswith("promoted as the first champion: Brier skill vs climatology +")
    low, high = first["brier_skill_ci"]
    assert 0 < low < first["brier_skill"] < high
    scores = first["metrics"]
    for row in ("challenger v2", "climatology", "previous-return sign", "challenger v2: dead-band bars only"):
        assert f"| {row} " in scores
    assert first["data_window"] == "2023-03-01 03:19 .. 2023-03-21 23:44 UTC"  # the bars used, not the 30 days asked
    assert 0 < first["test_dead_band_rows"] < first["test_rows"]
    assert_inline_png(first["probability_histogram"], "held-out probability histogram")
    experiment = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}").get_run(first["mlflow_run_id"]).info.experiment_id
    assert first["mlflow_run"] == f"http://mlflow.example:5000/#/experiments/{experiment}/runs/{first['mlflow_run_id']}"
    assert first["mlflow_model_version"] == "http://mlflow.example:5000/#/models/coinpilot-signal/versions/2"
    assert model_strategy(defs, instance) == "active: trades on the scores of coinpilot-signal champion v2"

    worse = train(defs, instance, features=["vol_ratio"])
    assert (worse["model_version"], worse["promoted"], worse["champion_version"]) == ("3", False, "2")
    assert "kept the champion" in worse["promotion_reason"] and "below the required +1.00%" in worse["promotion_reason"]

    # The registry: a local SQLite store under COINPILOT_HOME, with aliases and logged runs.
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias("coinpilot-signal", "champion").version) == "2"
    assert str(client.get_model_version_by_alias("coinpilot-signal", "challenger").version) == "3"
    run = client.get_run(client.get_model_version("coinpilot-signal", "2").run_id)
    assert run.data.tags["dagster_run_id"] and run.data.params["feature_set_version"] == "candle-features-v1"
    assert {"test_auc", "test_brier", "test_ece", "test_log_loss", "test_brier_skill"} <= set(run.data.metrics)
    assert run.data.params["test_start"] < run.data.params["test_end"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"reliability_diagram.png", "probability_histogram.png", "model"} <= artifacts
    events = promotion_history(get_engine(sqlite_url), "coinpilot-signal")
    assert events["promoted"].tolist() == [False, True, False]
    assert events["champion_version"].fillna("none").tolist() == ["none", "none", "2"]
    assert events["reason"].iloc[2] == worse["promotion_reason"]
    assert events["bootstrap_block_bars"].tolist() == [240, 240, 240]
    assert events["brier_skill_ci_low"].iloc[1] == pytest.approx(low)

    calibration = defs.resolve_job_def("calibration_job").execute_in_process(instance=instance, run_config=QUIET)
    assert calibration.success
    scored = metadata_of(calibration, "inference_log")
    assert scored["model_version"] == "2" and scored["scored"] == 2 * 10080 and scored["realized"] > 20000
    log = inference_log(get_engine(sqlite_url), "coinpilot-signal", "2")
    assert set(log["decision"]) == {"long", "flat"} and (log["threshold"] == 0.5).all()
    assert ((log["probability"] >= 0.5) == (log["decision"] == "long")).all()
    # Held-out evaluation counted every bar inference scores (dead-band bars too) and nothing else.
    test_start, test_end = (pd.Timestamp(run.data.params[k]) for k in ("test_start", "test_end"))
    held_out = log[(log["open_time"] >= test_start) & (log["open_time"] < test_end) & log["realized_return"].notna()]
    assert len(held_out) == first["test_rows"]
    assert held_out["realized_label"].isna().sum() == first["test_dead_band_rows"]

    report = metadata_of(calibration, "calibration_report")
    assert report["model_version"] == "2" and report["production_ece"] < 0.1
    assert_inline_png(report["reliability_diagram"], "reliability diagram: production vs live")
    assert report["mlflow_model_version"] == "http://mlflow.example:5000/#/models/coinpilot-signal/versions/2"
    assert report["mlflow_run"].endswith(f"/runs/{report['mlflow_run_id']}")
    assert set(report["drift"]) == {"ret_1", "rolling_vol_20", "rsi_14", "vol_ratio"}
    assert all(d["z"] is not None and d["blocks"] == 5 for d in report["drift"].values())

    sensor = defs.resolve_sensor_def("retrain_sensor")
    assert not report["recommend_retrain"], report["reason"]
    reports = {"database": DatabaseResource(url=sqlite_url)}  # the sensor reads the reports' own times
    quiet_tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=reports))
    assert quiet_tick.run_requests == []

    # The market turns: the champion keeps saying "up" where prices fall, and calibration breaks.
    with get_engine(sqlite_url).begin() as connection:
        connection.execute(update(model_inference_log).where(model_inference_log.c.realized_return <= 0)
                           .values(probability=0.97))
    flagged = []
    for _ in range(2):
        run = defs.resolve_job_def("calibration_job").execute_in_process(
            instance=instance, run_config=QUIET, asset_selection=[dg.AssetKey("calibration_report")])
        flagged.append(metadata_of(run, "calibration_report"))
    assert all(r["recommend_retrain"] for r in flagged)
    assert flagged[0]["ece_gap"] > 0.3 and "live ECE" in flagged[0]["reason"]

    tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=quiet_tick.cursor, resources=reports))
    # One run for the first flagged report; the second falls inside the cooldown.
    assert [r.run_key for r in tick.run_requests] == [f"retrain-for-calibration-report-{flagged[0]['report_id']}"]
    again = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=tick.cursor, resources=reports))
    assert again.run_requests == []


def test_two_retrains_at_once_each_decide_against_the_champion_of_their_moment(db_url: str, emulator,  # noqa: ANN001
                                                                               tmp_path: Path) -> None:
    settings = settings_for(db_url, emulator.url, COINPILOT_HOME=str(tmp_path))
    store_market(build_definitions(settings), dg.DagsterInstance.ephemeral())
    engine, models = get_engine(db_url), settings.models
    series = [SeriesKey(settings.market_exchange, symbol, settings.interval) for symbol in SYMBOLS]
    spec = TrainingSpec(labels=LabelSpec(models.label_horizon_bars, models.label_dead_band),
                        embargo_bars=models.label_horizon_bars)
    policy = PromotionPolicy(bootstrap=BlockBootstrap(models.bootstrap_block_bars))
    # Both retrains register their version, then wait for each other: they reach the promotion
    # step together, the moment two overlapping retrains read a champion without the lock.
    together = threading.Barrier(2, timeout=300)

    def log(message: str) -> None:
        if message.startswith("registered version"):
            together.wait()

    def retrain(_: int) -> str:
        registry = resource_values(settings)["mlflow"].registry()
        return train_and_register(engine, registry, series, spec, policy, now=NOW, dagster_run_id=None, log=log).version

    with ThreadPoolExecutor(2) as pool:
        versions = sorted(pool.map(retrain, range(2)))
    assert versions == ["1", "2"]

    first, second = promotion_history(engine, models.model_name).to_dict("records")  # in the order decided
    assert pd.isna(first["champion_version"]) and first["promoted"]  # the same model twice: the first earns it ...
    assert second["champion_version"] == first["challenger_version"]  # ... the second meets it as champion
    assert not second["promoted"] and second["reason"].startswith("kept the champion: AUC")
    champion = resource_values(settings)["mlflow"].registry().alias_version("champion")
    assert champion.version == first["challenger_version"]
