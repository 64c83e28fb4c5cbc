"""The model chain through Dagster on the emulator's data, with a real local MLflow store:
train -> register -> champion; a worse challenger kept out; a better one promoted; inference,
calibration, and a report with a large ECE gap starting exactly one retrain."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from mlflow import MlflowClient
from sqlalchemy import update

from coinpilot_pipelines.storage.database import get_engine
from coinpilot_pipelines.storage.models import inference_log, promotion_history
from coinpilot_pipelines.storage.schema import model_inference_log

from .dagster_helpers import QUIET, project_definitions, range_tags

SYMBOLS = ("BTCUSDT", "XRPUSDT")


def metadata_of(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    event = next(e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset))
    return {k: v.value for k, v in event.materialization.metadata.items()}


def train(defs: dg.Definitions, instance: dg.DagsterInstance, **config: object) -> dict:
    result = defs.resolve_job_def("retrain_job").execute_in_process(
        instance=instance, run_config={**QUIET, "ops": {"signal_model": {"config": config}}})
    assert result.success
    return metadata_of(result, "signal_model")


@pytest.fixture
def chain(sqlite_url: str, emulator, tmp_path: Path):  # noqa: ANN001, ANN201
    defs = project_definitions(sqlite_url, emulator.url, COINPILOT_HOME=str(tmp_path), TRAIN_WINDOW_DAYS="5",
                               AUTO_RETRAIN_ECE_STREAK="1", AUTO_RETRAIN_COOLDOWN_SEC="3600")
    instance = dg.DagsterInstance.ephemeral()
    assets = defs.resolve_implicit_global_asset_job_def()
    for symbol in SYMBOLS:
        result = assets.execute_in_process(
            instance=instance, asset_selection=[dg.AssetKey("candles"), dg.AssetKey("features")],
            tags=range_tags(f"2024-02-01|{symbol}", f"2024-02-05|{symbol}"), run_config=QUIET)
        assert result.success
        assert metadata_of(result, "features")["valid_rows"] == 5 * 1440 - 199
    return defs, instance, tmp_path


def test_train_register_promote_infer_calibrate_and_retrain(chain, sqlite_url: str) -> None:  # noqa: ANN001
    defs, instance, home = chain

    first = train(defs, instance, features=["vol_ratio"])
    assert (first["model_version"], first["promoted"]) == ("1", True)
    assert first["promotion_reason"] == "first model: no champion yet"

    worse = train(defs, instance, features=["vol_ratio"])
    assert (worse["model_version"], worse["promoted"], worse["champion_version"]) == ("2", False, "1")
    assert "kept the champion" in worse["promotion_reason"] and "below the required +1.00%" in worse["promotion_reason"]

    better = train(defs, instance)
    assert (better["model_version"], better["promoted"], better["champion_version"]) == ("3", True, "3")
    assert better["test_auc"] > first["test_auc"] + 0.02
    low, high = better["auc_gain_ci"]
    assert 0 < low < high

    # The registry: a local SQLite store under COINPILOT_HOME, with aliases and logged runs.
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias("coinpilot-signal", "champion").version) == "3"
    assert str(client.get_model_version_by_alias("coinpilot-signal", "challenger").version) == "3"
    run = client.get_run(client.get_model_version("coinpilot-signal", "3").run_id)
    assert run.data.tags["dagster_run_id"] and run.data.params["feature_set_version"] == "candle-features-v1"
    assert {"test_auc", "test_brier", "test_ece", "test_log_loss"} <= set(run.data.metrics)
    assert run.data.params["test_start"] < run.data.params["test_end"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "reliability_diagram.png" in artifacts
    events = promotion_history(get_engine(sqlite_url), "coinpilot-signal")
    assert events["promoted"].tolist() == [True, False, True]
    assert events["reason"].iloc[1] == worse["promotion_reason"]

    calibration = defs.resolve_job_def("calibration_job").execute_in_process(instance=instance, run_config=QUIET)
    assert calibration.success
    scored = metadata_of(calibration, "inference_log")
    assert scored["model_version"] == "3" and scored["scored"] > 2000 and scored["realized"] > 2000
    log = inference_log(get_engine(sqlite_url), "coinpilot-signal", "3")
    assert set(log["decision"]) == {"long", "flat"} and (log["threshold"] == 0.5).all()
    assert ((log["probability"] >= 0.5) == (log["decision"] == "long")).all()
    report = metadata_of(calibration, "calibration_report")
    assert report["model_version"] == "3" and report["production_ece"] < 0.1

    sensor = defs.resolve_sensor_def("retrain_sensor")
    assert not report["recommend_retrain"], report["reason"]
    quiet_tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
    assert quiet_tick.run_requests == []

    # The market turns: the champion keeps saying "up" where prices fall, and calibration breaks.
    with get_engine(sqlite_url).begin() as connection:
        connection.execute(update(model_inference_log).where(model_inference_log.c.realized_label == 0)
                           .values(probability=0.97))
    flagged = []
    for _ in range(2):
        run = defs.resolve_job_def("calibration_job").execute_in_process(
            instance=instance, run_config=QUIET, asset_selection=[dg.AssetKey("calibration_report")])
        flagged.append(metadata_of(run, "calibration_report"))
    assert all(r["recommend_retrain"] for r in flagged)
    assert flagged[0]["ece_gap"] > 0.3 and "live ECE" in flagged[0]["reason"]

    tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=quiet_tick.cursor))
    # One run for the first flagged report; the second falls inside the cooldown.
    assert [r.run_key for r in tick.run_requests] == [f"retrain-for-calibration-report-{flagged[0]['report_id']}"]
    again = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=tick.cursor))
    assert again.run_requests == []
