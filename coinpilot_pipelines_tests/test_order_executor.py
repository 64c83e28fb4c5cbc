"""The guarded order executor against the Upbit emulator: guards, idempotency, positions."""

from __future__ import annotations

import itertools
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from coinpilot_pipelines.storage.database import get_engine
from coinpilot_pipelines.storage.trading import apply_fill, attempts, begin_attempt, open_trades, positions
from coinpilot_pipelines.settings import ConfigError, Settings, live_guards
from coinpilot_pipelines.trading.guards import LIVE_GUARD_PHRASE, GuardInputs, GuardValueError, parse_guards, resolve_mode

from .trading_helpers import UTC, confirmed_entry, executor, stored_market, upbit_client

GUARDS = ("LIVE_TRADING_ENABLED", "UPBIT_TRADE_MODE", "LIVE_GUARD_PHRASE", "PAPER_POLICY_PROFILE", "UPBIT keys")
# What an operator might type instead of the exact live (or safe) value; every one is refused.
VARIANTS = {
    "LIVE_TRADING_ENABLED": ["TRUE ", "True", " true", "1", "yes", "true\u200b", "False"],
    "UPBIT_TRADE_MODE": ["Live", "LIVE", "live ", "Test\u200b", " test", "Shadow"],
    "LIVE_GUARD_PHRASE": [LIVE_GUARD_PHRASE + " ", LIVE_GUARD_PHRASE.lower(), "I confirm live trading"],
    "PAPER_POLICY_PROFILE": ["Prod", "PROD", "prod ", "production", "Test"],
}


def guard_env(flags: tuple[bool, ...]) -> dict[str, str]:
    enabled, live_mode, phrase, profile, _ = flags
    return {"LIVE_TRADING_ENABLED": "true" if enabled else "false", "UPBIT_TRADE_MODE": "live" if live_mode else "test",
            "LIVE_GUARD_PHRASE": LIVE_GUARD_PHRASE if phrase else "", "PAPER_POLICY_PROFILE": "prod" if profile else "test"}


def guards_for(flags: tuple[bool, ...]) -> GuardInputs:
    return GuardInputs(parse_guards(guard_env(flags)), access_key_set=flags[4], secret_key_set=flags[4])


def test_the_guard_matrix_allows_live_in_exactly_one_combination(emulator, tmp_path) -> None:  # noqa: ANN001
    modes = {}
    for index, flags in enumerate(itertools.product((False, True), repeat=5)):
        db = f"sqlite:///{tmp_path / f'guards-{index}.db'}"
        stored_market(db, emulator.url, minutes=15)
        confirmed_entry(db)
        decision = resolve_mode(guards_for(flags))
        before = dict(emulator.stats()["by_route"])
        with upbit_client(emulator.url) as client:
            executor(db, decision.mode, client if flags[4] else None).execute()
        after = emulator.stats()["by_route"]
        posted = {route: after.get(route, 0) - before.get(route, 0) for route in ("POST /v1/orders", "POST /v1/orders/test")}
        modes[flags] = decision.mode
        assert posted["POST /v1/orders"] == (1 if decision.mode == "live" else 0), (flags, decision)
        assert posted["POST /v1/orders/test"] == (1 if decision.mode == "test" else 0), (flags, decision)
        if decision.mode == "shadow":
            assert after == before  # shadow mode makes no exchange call at all
        status = attempts(get_engine(db))["status"].tolist()
        assert status == [{"shadow": "logged", "test": "test_ok", "live": "accepted"}[decision.mode]]
        # Any spelling but the exact one is refused with the variable's name: never live, never silently safe.
        for name, variants in VARIANTS.items():
            for variant in variants:
                with pytest.raises(GuardValueError, match=f"^{name}: "):
                    parse_guards({**guard_env(flags), name: variant})
    assert [flags for flags, mode in modes.items() if mode == "live"] == [(True,) * 5]
    # Every other combination says which guards failed.
    almost = resolve_mode(guards_for((True, True, True, False, True)))
    assert almost.mode == "test" and "PAPER_POLICY_PROFILE is 'test'" in almost.describe()
    no_keys = resolve_mode(guards_for((True, True, True, True, False)))
    assert no_keys.mode == "shadow" and "UPBIT_ACCESS_KEY and UPBIT_SECRET_KEY are not both set" in no_keys.describe()


def test_settings_and_the_guard_share_one_strict_parser() -> None:
    assert parse_guards({}) == parse_guards({name: "" for name in VARIANTS})  # unset and empty mean safe
    assert resolve_mode(GuardInputs(parse_guards({}), True, True)).mode == "shadow"
    for name, variants in VARIANTS.items():
        for variant in variants:
            with pytest.raises(ConfigError, match=f"^{name}: "):
                Settings.from_env({name: variant})
            with pytest.raises(ConfigError, match=f"^{name}: "):
                live_guards({name: variant})


def test_run_config_may_ask_for_a_safer_mode_never_a_less_safe_one() -> None:
    live = guards_for((True,) * 5)
    assert resolve_mode(live, "shadow").mode == "shadow"
    assert resolve_mode(live, "test").mode == "test"
    test_only = guards_for((False, True, True, True, True))
    decision = resolve_mode(test_only, "live")
    assert decision.mode == "test" and decision.reasons[0] == "run config asks for live, but only test is allowed"
    assert resolve_mode(guards_for((False,) * 5), "live").mode == "shadow"
    with pytest.raises(ValueError, match="not one of"):
        resolve_mode(live, "yolo")


def test_a_timeout_after_the_exchange_accepted_is_reconciled_not_resent(pg_url: str, emulator) -> None:  # noqa: ANN001
    emulator.set_scenario({"upbit_exchange": {"accept_then_stall_s": 1.5, "stall_count": 1}})
    stored_market(pg_url, emulator.url, minutes=15)
    confirmed_entry(pg_url)
    with upbit_client(emulator.url, timeout_s=0.4) as client:
        run = executor(pg_url, "live", client)
        run.execute()  # times out; the order was created anyway
        (attempt,) = attempts(get_engine(pg_url)).itertuples(index=False)
        assert attempt.status == "accepted" and attempt.uuid  # found by its identifier right away
        assert attempt.error_msg.startswith("upbit /v1/orders paper-1-buy: no answer")
        # A re-run of the same step, and the reconcile step: still one order, now settled.
        run.execute()
        executor(pg_url, "live", client).reconcile()
    assert emulator.stats()["by_route"]["POST /v1/orders"] == 1 and emulator.stats()["upbit_orders"] == 1
    (settled,) = attempts(get_engine(pg_url)).itertuples(index=False)
    assert settled.status == "done" and settled.final_state == "done" and settled.executed_volume > 0
    assert settled.avg_price > 0 and settled.paid_fee > 0
    (position,) = positions(get_engine(pg_url)).itertuples(index=False)
    assert (position.market, position.quantity) == ("KRW-BTC", settled.executed_volume)


def test_a_crash_between_recording_and_answer_is_settled_by_identifier(pg_url: str, emulator) -> None:  # noqa: ANN001
    stored_market(pg_url, emulator.url, minutes=15)
    engine = get_engine(pg_url)
    # A run recorded its intent, sent the order, and died before writing the answer down.
    body = {"market": "KRW-BTC", "side": "bid", "ord_type": "price", "price": "10000", "identifier": "paper-7-buy"}
    confirmed_entry(pg_url)
    with upbit_client(emulator.url) as client:
        run = executor(pg_url, "live", client)
        run.execute()  # creates paper trade 1 and its order normally
        begin_attempt(engine, ts=datetime.now(UTC) - timedelta(minutes=5), symbol="BTCUSDT", action="buy", mode="live",
                      side="bid", ord_type="price", price=Decimal("10000"), volume=None, paper_trade_id=1,
                      identifier="paper-7-buy", request_json=json.dumps(body), status="sending")
        assert client.create_order(body, test=False).accepted
        outcome = run.reconcile()
    assert outcome["looked_up"] == 1
    crashed = attempts(engine).set_index("identifier").loc["paper-7-buy"]
    assert crashed["status"] == "done" and crashed["uuid"]
    assert emulator.stats()["upbit_orders"] == 2  # the crashed order was not sent a second time


def test_two_executors_at_once_send_one_order_per_intent(pg_url: str, emulator) -> None:  # noqa: ANN001
    stored_market(pg_url, emulator.url, minutes=30)
    signals = [confirmed_entry(pg_url, minute, key=f"k{minute}") for minute in (5, 6, 7)]
    start = threading.Barrier(2)

    def run() -> None:
        with upbit_client(emulator.url) as client:
            start.wait()
            executor(pg_url, "live", client).execute()

    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(run), pool.submit(run)]:
            future.result()
    assert emulator.stats()["by_route"]["POST /v1/orders"] == 3 and emulator.stats()["upbit_orders"] == 3
    trades = open_trades(get_engine(pg_url))
    assert len(trades) == 3 and sorted(trades["entry_signal_id"]) == sorted(signals)
    assert sorted(attempts(get_engine(pg_url))["identifier"]) == sorted(f"paper-{i}-buy" for i in trades["id"])


def test_ten_concurrent_buys_leave_quantity_and_average_price_exact(pg_url: str) -> None:
    engine = get_engine(pg_url)
    fills = [(Decimal("0.001") * (i + 1), Decimal("60000000") + Decimal(1000) * i) for i in range(10)]
    start = threading.Barrier(10)

    def buy(volume: Decimal, price: Decimal) -> None:
        start.wait()
        apply_fill(engine, "upbit", "KRW-BTC", side="bid", volume=volume, price=price, now=datetime.now(UTC))

    with ThreadPoolExecutor(10) as pool:
        for future in [pool.submit(buy, v, p) for v, p in fills]:
            future.result()
    (position,) = positions(engine).itertuples(index=False)
    quantity = sum(v for v, _ in fills)
    assert position.quantity == quantity
    assert position.avg_price == pytest.approx(sum(v * p for v, p in fills) / quantity, abs=Decimal("1e-18"))
    sold = apply_fill(engine, "upbit", "KRW-BTC", side="ask", volume=Decimal("0.005"), price=Decimal("61000000"),
                      now=datetime.now(UTC))
    assert sold.quantity == quantity - Decimal("0.005") and sold.avg_price == position.avg_price
