"""`order_executor_job` and `order_signal_sensor` through Dagster; no secret leaks anywhere."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from decimal import Decimal

import dagster as dg
import httpx2
import pytest
from dagster._serdes import serialize_value
import pandas as pd
from sqlalchemy import select

from coinpilot_pipelines.clients.anthropic_analyst import AnthropicAnalyst
from coinpilot_pipelines.clock import SimulatedClock
from coinpilot_pipelines.defs import build_resources, resource_values
from coinpilot_pipelines.defs.trading import AnalystResource, build_trading_definitions
from coinpilot_pipelines.emulator.server import Emulator
from coinpilot_pipelines.storage.database import get_engine
from coinpilot_pipelines.storage.schema import metadata, signal_scans
from coinpilot_pipelines.storage.trading import attempts, decisions, set_signal_status, signals_with_status, store_signals
from coinpilot_pipelines.trading.guards import LIVE_GUARD_PHRASE
from coinpilot_pipelines.trading.signals import Signal

from .dagster_helpers import QUIET, settings_for
from .picture_helpers import decoded, inline_png
from .test_ai_review import tool_answer
from .trading_helpers import BTC, MARKET_START, stored_market

MARKER_ACCESS = "MARKER-ACCESS-3f9a1c"
MARKER_SECRET = "MARKER-SECRET-7be2d4-0123456789abcdef0123"
MARKER_ANTHROPIC = "sk-ant-MARKER-5c8e0b"


class MockedAnalystResource(AnalystResource):
    """The analyst with Anthropic's API replaced by a mock transport: the one system not run here."""

    def analyst(self) -> AnthropicAnalyst | None:
        if not self.api_key:
            return None

        def answer(request: httpx2.Request) -> httpx2.Response:
            assert request.headers["authorization"] == f"Bearer {self.api_key}"
            return tool_answer("CONFIRM", 93)

        return AnthropicAnalyst(self.api_key, self.model, max_retries=0,
                                http_client=httpx2.Client(transport=httpx2.MockTransport(answer)))


def executor_definitions(db: str, emulator_url: str) -> dg.Definitions:
    settings = settings_for(db, emulator_url, COINPILOT_SYMBOLS="BTCUSDT", LIVE_ORDER_POLL_INTERVAL_SEC="0.01")
    trading = build_trading_definitions(settings.trading, 0.5, settings.symbols)
    resources = build_resources(settings)
    resources["analyst"] = MockedAnalystResource(api_key=resource_values(settings)["analyst"].api_key,
                                                 model="claude-haiku-4-5")
    # The run happens just after the stored market's last bar, whatever the wall clock says.
    resources["clock"] = SimulatedClock(MARKET_START + timedelta(minutes=30, seconds=5))
    return dg.Definitions(jobs=trading["jobs"], sensors=trading["sensors"], resources=resources)


def pending_entry(db: str, minute: int = 28) -> int:
    """An entry on the market's bar ``minute`` (by default the second-to-last: its fill bar is stored too)."""
    bar = MARKET_START + timedelta(minutes=minute)
    (signal_id,) = store_signals(get_engine(db), BTC, [
        Signal(f"model:BTCUSDT:enter:test-{minute}", "BTCUSDT", "model", "enter", bar, "test entry", Decimal("42000"),
               0.8)], bar)
    return signal_id


def test_a_live_run_leaks_no_secret_to_logs_metadata_or_tables(sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
                                                                caplog: pytest.LogCaptureFixture, capfd) -> None:  # noqa: ANN001
    for name, value in {"UPBIT_ACCESS_KEY": MARKER_ACCESS, "UPBIT_SECRET_KEY": MARKER_SECRET,
                        "ANTHROPIC_API_KEY": MARKER_ANTHROPIC, "LIVE_TRADING_ENABLED": "true",
                        "UPBIT_TRADE_MODE": "live", "LIVE_GUARD_PHRASE": LIVE_GUARD_PHRASE,
                        "PAPER_POLICY_PROFILE": "prod"}.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG)
    with Emulator(upbit_keys={MARKER_ACCESS: MARKER_SECRET}) as emulator:
        stored_market(sqlite_url, emulator.url, minutes=30)
        signal = pending_entry(sqlite_url)
        defs = executor_definitions(sqlite_url, emulator.url)
        instance = dg.DagsterInstance.ephemeral()
        result = defs.resolve_job_def("order_executor_job").execute_in_process(instance=instance, run_config=QUIET)
        assert result.success
        tokens = list(emulator.state.exchange.tokens_seen)
        assert emulator.stats()["by_route"]["POST /v1/orders"] == 1

    engine = get_engine(sqlite_url)
    assert signals_with_status(engine, ["executed"])["id"].tolist() == [signal]
    assert decisions(engine)["decision"].tolist() == ["CONFIRM"]
    assert attempts(engine)["status"].tolist() == ["done"]
    run = instance.get_run_by_id(result.run_id)
    assert run.tags["coinpilot/effective_mode"] == "live"

    haystacks = [serialize_value(entry) for entry in instance.all_logs(result.run_id)]
    haystacks += [serialize_value(run), caplog.text, *capfd.readouterr()]
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            haystacks.append(repr(connection.execute(select(table)).all()))
    secrets = [MARKER_ACCESS, MARKER_SECRET, MARKER_ANTHROPIC, *tokens]
    assert len(tokens) >= 3  # accounts, the order, its lookups: each with a fresh JWT
    for haystack in haystacks:
        for secret in secrets:
            assert secret not in haystack, f"a secret leaked: {secret[:24]}..."
    # The order's request was recorded -- without any credential in it.
    (attempt,) = attempts(engine).itertuples(index=False)
    assert json.loads(attempt.request_json) == {"identifier": "paper-1-buy", "market": "KRW-BTC", "ord_type": "price",
                                                "price": "10000", "side": "bid"}


def test_shadow_run_records_the_mode_and_why_and_calls_no_exchange(sqlite_url: str, emulator) -> None:  # noqa: ANN001
    stored_market(sqlite_url, emulator.url, minutes=30)
    pending_entry(sqlite_url)
    defs = executor_definitions(sqlite_url, emulator.url)
    before = dict(emulator.stats()["by_route"])
    result = defs.resolve_job_def("order_executor_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), run_config=QUIET)
    assert result.success
    mode_output = next(e for e in result.all_events
                       if e.event_type_value == "STEP_OUTPUT" and e.step_key == "resolve_trading_mode")
    why = mode_output.event_specific_data.metadata
    assert why["effective_mode"].value == "shadow" and "UPBIT_TRADE_MODE is 'shadow'" in why["why"].value
    assert attempts(get_engine(sqlite_url))["status"].tolist() == ["logged"]
    reconciled = next(e for e in result.all_events if e.is_successful_output and e.step_key == "reconcile_orders")
    decoded(inline_png(reconciled.step_output_data.metadata["trades_chart"].value))
    after = emulator.stats()["by_route"]
    assert {k: v for k, v in after.items() if k.startswith(("GET /v1/", "POST /v1/"))} == \
        {k: v for k, v in before.items() if k.startswith(("GET /v1/", "POST /v1/"))}


def test_the_sensor_scans_live_bars_and_requests_one_run_per_state_of_the_signals(sqlite_url: str, emulator) -> None:  # noqa: ANN001
    stored_market(sqlite_url, emulator.url, minutes=30)
    defs = executor_definitions(sqlite_url, emulator.url)
    sensor = defs.resolve_sensor_def("order_signal_sensor")
    clock = SimulatedClock(MARKET_START + timedelta(minutes=30, seconds=5))  # bar 29 just closed
    resources = {**resource_values(settings_for(sqlite_url, emulator.url)), "clock": clock}
    instance = dg.DagsterInstance.ephemeral()

    def tick() -> dg.SensorExecutionData:
        return sensor.evaluate_tick(dg.build_sensor_context(resources=resources, instance=instance))

    assert tick().skip_message == "no signal to carry on"
    engine = get_engine(sqlite_url)
    scanned = pd.read_sql(select(signal_scans), engine.connect())
    assert scanned["bar_open_time"].max() == MARKET_START + timedelta(minutes=29)  # every bar gets its decision time
    # An entry on the newest bar passes the risk limits in the tick and waits for its fill bar.
    newest = pending_entry(sqlite_url, minute=29)
    assert tick().skip_message == "1 signal(s) wait for the bar after theirs"
    assert signals_with_status(engine, ["approved"])["id"].tolist() == [newest]
    set_signal_status(engine, newest, "expired", "test: out of the way", only_from=["approved"], at=clock.now())
    signal = pending_entry(sqlite_url)
    (request,) = tick().run_requests
    assert request.run_key.startswith("orders-20240205T0029-") and not request.run_config
    assert [r.run_key for r in tick().run_requests] == [request.run_key]  # a retried tick asks for the same run
    # While an executor run is in progress, the signals wait for it: no second run piles up behind it.
    running = instance.create_run_for_job(defs.resolve_job_def("order_executor_job"),
                                          status=dg.DagsterRunStatus.STARTED)
    waiting = tick()
    assert waiting.run_requests == [] and f"run {running.run_id[:8]} is started" in waiting.skip_message
    instance.report_run_failed(running)
    assert [r.run_key for r in tick().run_requests] == [request.run_key]
    # Once the data is no longer live, nothing is traded on it (and the waiting entry expires).
    clock.advance(timedelta(hours=1))
    assert tick().skip_message.startswith("no live data: the newest bar opened 2024-02-05 00:29 UTC")
    assert signals_with_status(engine, ["approved"])["id"].tolist() == [signal]
