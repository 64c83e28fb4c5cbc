"""Alerts against a real webhook receiver on loopback: a failed run, WARN checks, key states.

Each sensor is evaluated as the daemon does it, tick after tick with the cursor it returned, on
an on-disk Dagster instance and the application database; the messages are the JSON bodies the
receiver got.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import dagster as dg
import pytest

from coinpilot_pipelines.alerts.observations import (
    Observation,
    alert_text,
    contract_violations_by_symbol,
    run_symbols,
)
from coinpilot_pipelines.clients.webhook import WebhookClient
from coinpilot_pipelines.clock import SimulatedClock
from coinpilot_pipelines.defs import build_definitions, resource_values
from coinpilot_pipelines.emulator.upbit_exchange import DEFAULT_KEYS
from coinpilot_pipelines.settings import ConfigError, Secrets, Settings
from coinpilot_pipelines.storage.alert_states import Change, record_state
from coinpilot_pipelines.storage.database import get_engine
from coinpilot_pipelines.storage.models import record_promotion
from coinpilot_pipelines.storage.trading import update_risk_state
from coinpilot_pipelines.trading.guards import LIVE_GUARD_PHRASE
from coinpilot_pipelines.trading.risk import RiskState

from .dagster_helpers import QUIET, settings_for
from .trading_helpers import stored_market
from .webhook_helpers import WebhookReceiver

UTC = timezone.utc
NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)  # the sensors' clock: no test runs across a UTC midnight
UI = "https://dagster.example.com"
OUTAGE_DAY, CLEAN_DAY = "2023-03-06", "2023-03-07"


class Sensors:
    """The project's sensors on one instance, each ticked with the cursor its last tick returned."""

    def __init__(self, settings: Settings, instance: dg.DagsterInstance) -> None:
        self.definitions = build_definitions(settings)
        self.resources = {**resource_values(settings), "clock": SimulatedClock(NOON)}
        self.instance = instance
        self.cursors: dict[str, str | None] = {}

    def tick(self, name: str):  # noqa: ANN201 - what evaluate_tick returns
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursors.get(name),
                                          resources=self.resources, definitions=self.definitions)
        result = self.definitions.resolve_sensor_def(name).evaluate_tick(context)
        self.cursors[name] = result.cursor
        return result


@pytest.fixture
def hook():  # noqa: ANN201
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def instance(tmp_path):  # noqa: ANN001, ANN201 - a sharded SQLite instance, as `coinpilot ui` has
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as test_instance:
        yield test_instance


def _settings(db: str, emulator_url: str, hook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch,
              **overrides: str) -> Settings:
    monkeypatch.setenv("COINPILOT_ALERT_WEBHOOK_URL", hook.url)  # read by Secrets, as in production
    return settings_for(db, emulator_url, COINPILOT_UI_BASE_URL=UI, **overrides)


def test_a_failing_run_posts_exactly_one_message_with_its_link(sqlite_url: str, emulator, hook, instance,  # noqa: ANN001
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    sensors = Sensors(_settings(sqlite_url, emulator.url, hook, monkeypatch), instance)
    sensors.tick("run_failure_alert_sensor")  # the first tick starts watching from here
    job = sensors.definitions.resolve_job_def("order_executor_job")
    result = job.execute_in_process(instance=instance, raise_on_error=False, run_config={
        **QUIET, "ops": {"collect_signals": {"config": {"up_to": "yesterday noon"}}}})
    assert not result.success
    for _ in range(3):
        sensors.tick("run_failure_alert_sensor")
    [text] = hook.texts
    assert f"run {result.run_id[:8]} of order_executor_job failed: " in text
    assert "up_to 'yesterday noon' is not an ISO-8601 time" in text  # the step's own error, not "a step failed"
    assert text.endswith(f"\n{UI}/runs/{result.run_id}")


def _materialize_candles(sensors: Sensors, day: str) -> dg.ExecuteInProcessResult:
    job = sensors.definitions.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(instance=sensors.instance, asset_selection=[dg.AssetKey("candles")],
                                  partition_key=f"{day}|BTCUSDT", run_config=QUIET)


def test_a_warn_check_posts_one_message_and_a_flapping_one_one_per_change(sqlite_url: str, emulator, hook,  # noqa: ANN001
                                                                          instance, monkeypatch) -> None:  # noqa: ANN001
    emulator.set_scenario({"outages": [{"symbol": "BTCUSDT", "start": f"{OUTAGE_DAY}T03:00:00Z",
                                        "end": f"{OUTAGE_DAY}T03:17:00Z"}]})
    sensors = Sensors(_settings(sqlite_url, emulator.url, hook, monkeypatch), instance)
    assert sensors.tick("check_alert_sensor").skip_message.startswith("watching check evaluations after event")

    first = _materialize_candles(sensors, OUTAGE_DAY)
    sensors.tick("check_alert_sensor")
    sensors.tick("check_alert_sensor")
    [warn] = hook.texts
    assert warn == ("CoinPilot: WARN: check candles_continuity on candles fails for BTCUSDT: 17 bars missing\n"
                    f"{UI}/runs/{first.run_id}")

    # The same outage again and again, then the symbol whole, broken and whole again: one message per change.
    runs = [_materialize_candles(sensors, day) for day in (OUTAGE_DAY, OUTAGE_DAY, CLEAN_DAY, OUTAGE_DAY)]
    sensors.tick("check_alert_sensor")  # one tick reads all four evaluations, in order
    _materialize_candles(sensors, CLEAN_DAY)
    sensors.tick("check_alert_sensor")
    assert hook.texts[1:] == [
        f"CoinPilot: check candles_continuity on candles passes again for BTCUSDT (was WARN)\n{UI}/runs/{runs[2].run_id}",
        f"CoinPilot: WARN: check candles_continuity on candles fails for BTCUSDT: 17 bars missing (was PASSED)\n"
        f"{UI}/runs/{runs[3].run_id}",
        "CoinPilot: check candles_continuity on candles passes again for BTCUSDT (was WARN)\n"
        f"{UI}/runs/{instance.get_runs(limit=1)[0].run_id}",
    ]
    # candles_contract passed throughout, for the first time without a word
    assert not any("candles_contract" in text for text in hook.texts)


def _live_run(sensors: Sensors, monkeypatch: pytest.MonkeyPatch) -> dg.ExecuteInProcessResult:
    """An executor run with every live guard set (the Upbit keys are set from the start)."""
    guards = {"LIVE_TRADING_ENABLED": "true", "UPBIT_TRADE_MODE": "live", "LIVE_GUARD_PHRASE": LIVE_GUARD_PHRASE,
              "PAPER_POLICY_PROFILE": "prod"}
    with monkeypatch.context() as env:
        for name, value in guards.items():
            env.setenv(name, value)
        return sensors.definitions.resolve_job_def("order_executor_job").execute_in_process(
            instance=sensors.instance, run_config=QUIET)


def test_key_states_alert_on_each_change(sqlite_url: str, emulator, hook, instance, monkeypatch) -> None:  # noqa: ANN001
    access, secret = next(iter(DEFAULT_KEYS.items()))  # the emulator's exchange account
    monkeypatch.setenv("UPBIT_ACCESS_KEY", access)
    monkeypatch.setenv("UPBIT_SECRET_KEY", secret)
    sensors = Sensors(_settings(sqlite_url, emulator.url, hook, monkeypatch, RISK_DAILY_LOSS_LIMIT="50"), instance)
    engine = get_engine(sqlite_url)
    stored_market(sqlite_url, emulator.url, minutes=30)
    executor = sensors.definitions.resolve_job_def("order_executor_job")
    shadow = executor.execute_in_process(instance=instance, run_config=QUIET)
    sensors.tick("state_alert_sensor")
    assert hook.texts == []  # shadow mode, no report, no promotion, no risk state: all normal

    live = _live_run(sensors, monkeypatch)
    assert instance.get_run_by_id(live.run_id).tags["coinpilot/effective_mode"] == "live"
    now = NOON
    with engine.begin() as connection:  # a losing day, as the executor records it
        update_risk_state(connection, "default", now, lambda s: RiskState(s.trading_day, Decimal("-61.5"), 2, None))
    with engine.begin() as connection:
        record_promotion(connection, decided_at=now, model_name="coinpilot-signal", challenger_version="4",
                         champion_version="3", promoted=True, reason="AUC +2.1%", challenger_metrics={},
                         eval_window_start=now - timedelta(days=1), eval_window_end=now, dagster_run_id=None)
    instance.report_runless_asset_event(dg.AssetMaterialization(
        "calibration_report", metadata={"report_id": 7, "recommend_retrain": True, "reason": "ECE gap 0.09 twice"}))
    sensors.tick("state_alert_sensor")
    sensors.tick("state_alert_sensor")
    assert hook.texts == [
        f"CoinPilot: LIVE TRADING: order_executor_job run {live.run_id[:8]} runs in live mode and sends real orders "
        f"(was shadow)\n{UI}/runs/{live.run_id}",
        f"CoinPilot: calibration_report recommends retraining: ECE gap 0.09 twice\n{UI}/assets/calibration_report",
        f"CoinPilot: model coinpilot-signal v4 promoted to champion: AUC +2.1%\n{UI}/assets/signal_model",
        "CoinPilot: daily loss limit reached for risk profile default: realized PnL today -61.5 <= -50; no new "
        f"entries until tomorrow (UTC)\n{UI}/runs/{live.run_id}",
    ]

    executor.execute_in_process(instance=instance, run_config=QUIET)  # back to shadow
    sensors.tick("state_alert_sensor")
    assert hook.texts[4:] == [f"CoinPilot: order_executor_job run {instance.get_runs(limit=1)[0].run_id[:8]} runs in "
                              f"shadow mode (was live)\n{UI}/runs/{instance.get_runs(limit=1)[0].run_id}"]
    assert shadow.success and live.success


def test_a_failing_webhook_is_retried_within_bounds_and_logged_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    with WebhookReceiver(failures=10) as down:
        client = WebhookClient(down.url)
        caplog.set_level(logging.WARNING)
        assert client.post("first") is False
        assert down.requests == 3  # a 5xx is tried three times, then given up
        assert "alert not delivered: alert webhook: gave up after 3 attempts" in caplog.text
        assert down.url not in caplog.text and "XXXXsecretXXXX" not in repr(client)
    with WebhookReceiver(failures=1) as flaky:
        assert WebhookClient(flaky.url).post("second") is True
        assert flaky.texts == ["second"]


def test_without_a_webhook_alerts_are_logged_only(sqlite_url: str, emulator, instance,  # noqa: ANN001
                                                  caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(sqlite_url, emulator.url)
    sensors = Sensors(settings, instance)
    sensors.tick("run_failure_alert_sensor")
    job = sensors.definitions.resolve_job_def("order_executor_job")
    job.execute_in_process(instance=instance, raise_on_error=False,
                           run_config={**QUIET, "ops": {"collect_signals": {"config": {"up_to": "soon"}}}})
    caplog.set_level(logging.WARNING)
    sensors.tick("run_failure_alert_sensor")
    assert "alert (COINPILOT_ALERT_WEBHOOK_URL is not set, so it is only logged): CoinPilot: run " in caplog.text
    assert "http://127.0.0.1:3000/runs/" in caplog.text  # the default UI address


def test_the_webhook_url_is_a_secret() -> None:
    url = "https://hooks.slack.com/services/T0/B0/abcdefSECRET"
    secrets = Secrets.from_env({"COINPILOT_ALERT_WEBHOOK_URL": url})
    assert secrets.alert_webhook_url == url and "abcdefSECRET" not in repr(secrets)
    assert "abcdefSECRET" not in repr(resource_values(Settings.from_env({}), secrets)["alerts"])
    with pytest.raises(ConfigError) as error:
        Secrets.from_env({"COINPILOT_ALERT_WEBHOOK_URL": "hooks.slack.com/abcdefSECRET"})
    assert str(error.value) == "COINPILOT_ALERT_WEBHOOK_URL: not an http(s) URL (the value is not shown)"
    from coinpilot_pipelines.security import secret_values
    assert url in secret_values({"COINPILOT_ALERT_WEBHOOK_URL": url})
    with pytest.raises(ConfigError, match="COINPILOT_UI_BASE_URL: 'dagster:3000' is not an http"):
        Settings.from_env({"COINPILOT_UI_BASE_URL": "dagster:3000"})


def test_what_a_change_says() -> None:
    warn = Observation("candles_continuity", "BTCUSDT", "WARN", "WARN: ...", "http://ui/runs/1", normal="PASSED")
    passed = Observation("candles_continuity", "BTCUSDT", "PASSED", "passes", None, normal="PASSED")
    assert alert_text(passed, Change(None, "PASSED")) is None  # the first evaluation, passing: nothing to say
    assert alert_text(warn, None) is None  # no change
    assert alert_text(warn, Change(None, "WARN")) == "CoinPilot: WARN: ...\nhttp://ui/runs/1"
    assert alert_text(passed, Change("WARN", "PASSED")) == "CoinPilot: passes (was WARN)"
    symbols = ("BTCUSDT", "ETHUSDT", "XRPUSDT")
    assert run_symbols({"dagster/partition/symbol": "XRPUSDT"}, symbols) == ["XRPUSDT"]
    assert run_symbols({"dagster/asset_partition_range_start": "2024-01-01|XRPUSDT",
                        "dagster/asset_partition_range_end": "2024-02-01|BTCUSDT"}, symbols) == list(symbols)
    assert run_symbols({}, symbols) == []
    assert contract_violations_by_symbol({"violations": {"BTCUSDT: high_below_low": 2, "BTCUSDT: off_grid": 1}}) == {
        "BTCUSDT": "high_below_low (2), off_grid (1)"}


def test_the_stored_state_changes_once_per_change_also_under_concurrent_reports(db_url: str) -> None:
    engine = get_engine(db_url)
    states = ["PASSED", "WARN", "WARN", "PASSED", "WARN"]
    changes = [record_state(engine, "candles_continuity", "BTCUSDT", s, NOON) for s in states]
    assert changes == [Change(None, "PASSED"), Change("PASSED", "WARN"), None, Change("WARN", "PASSED"),
                       Change("PASSED", "WARN")]
    assert record_state(engine, "candles_continuity", "XRPUSDT", "WARN", NOON) == Change(None, "WARN")  # its own key

    # Eight evaluations report the same recovery at once: exactly one of them sees the change.
    with ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(lambda _: record_state(engine, "candles_continuity", "BTCUSDT", "PASSED", NOON), range(8)))
    assert [c for c in seen if c is not None] == [Change("WARN", "PASSED")]
