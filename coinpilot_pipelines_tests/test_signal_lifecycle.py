"""Every signal ends: executed, rejected or expired with a reason. Exits met on the newest bar wait for
the next bar and are filled there; an entry whose fill never comes expires and blocks nothing."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

from coinpilot_pipelines.clock import SimulatedClock
from coinpilot_pipelines.storage.database import get_engine
from coinpilot_pipelines.storage.trading import (
    closed_trades,
    open_trades,
    pending_entry_exists,
    signals_with_status,
    store_signals,
)
from coinpilot_pipelines.trading.signals import MEAN_REVERSION, ExitRules, Signal

from .trading_helpers import BTC, MARKET_START, SETTINGS, confirmed_entry, executor, stored_market

MINUTE = timedelta(minutes=1)
# Exits on time only (no price rule fires), so the exit is met exactly on bar 26 for a trade entered at bar 5.
TIME_EXIT = dataclasses.replace(SETTINGS, exit_rules=ExitRules(0.45, Decimal("0.5"), Decimal("0.5"), 21 * MINUTE))


def run_executor(db: str, clock: SimulatedClock) -> None:
    """One order_executor_job pass: collect, risk, review, execute, reconcile."""
    run = executor(db, "shadow", settings=TIME_EXIT, now=clock.now)
    run.collect_signals()
    run.apply_risk()
    run.review()
    run.execute()
    run.reconcile()


def test_an_exit_met_on_the_newest_bar_is_filled_at_the_next_bar_that_arrives(sqlite_url: str, emulator) -> None:  # noqa: ANN001
    stored_market(sqlite_url, emulator.url, minutes=6)  # bars 0..5
    engine = get_engine(sqlite_url)
    entry = MARKET_START + 4 * MINUTE
    (signal_id,) = store_signals(engine, BTC, [Signal(f"{MEAN_REVERSION}:BTCUSDT:enter:test", "BTCUSDT", MEAN_REVERSION,
                                                      "enter", entry, "test entry", Decimal("42000"))], entry)
    clock = SimulatedClock(MARKET_START + 6 * MINUTE + timedelta(seconds=5))  # just after bar 5 closed
    run_executor(sqlite_url, clock)
    stored_market(sqlite_url, emulator.url, minutes=27)  # bars up to 26: bar 26 is the newest
    clock.set(MARKET_START + 27 * MINUTE + timedelta(seconds=5))
    run_executor(sqlite_url, clock)
    (trade,) = open_trades(engine).itertuples(index=False)
    assert trade.entry_time == MARKET_START + 5 * MINUTE  # entered at bar 5's open
    (exit_signal,) = signals_with_status(engine, ["confirmed"]).itertuples(index=False)
    assert exit_signal.action == "exit" and exit_signal.bar_open_time == MARKET_START + 26 * MINUTE
    assert exit_signal.reason.startswith("time_exit")

    stored_market(sqlite_url, emulator.url, minutes=60)  # bars up to 59 arrive
    for _ in range(2):
        clock.advance(MINUTE)
        run_executor(sqlite_url, clock)
    (closed,) = closed_trades(engine).itertuples(index=False)
    assert closed.exit_time == MARKET_START + 27 * MINUTE and closed.exit_reason == "time_exit"
    assert open_trades(engine).empty
    states = signals_with_status(engine, ["new", "approved", "confirmed", "rejected", "executed", "expired"])
    assert set(states["status"]) == {"executed"} and states["decided_at"].notna().all()
    assert signal_id in states["id"].tolist()


def test_an_entry_whose_fill_bar_never_comes_expires_and_blocks_nothing(sqlite_url: str, emulator) -> None:  # noqa: ANN001
    stored_market(sqlite_url, emulator.url, minutes=15)  # an outage after bar 14: nothing follows it
    engine = get_engine(sqlite_url)
    stranded = confirmed_entry(sqlite_url, minute=14, key=f"{MEAN_REVERSION}:BTCUSDT:enter")
    clock = SimulatedClock(MARKET_START + 15 * MINUTE + timedelta(seconds=5))
    run_executor(sqlite_url, clock)
    assert signals_with_status(engine, ["confirmed"])["id"].tolist() == [stranded]  # waits for its fill bar
    clock.set(MARKET_START + (15 + SETTINGS.entry_ttl_bars) * MINUTE + timedelta(seconds=5))
    run_executor(sqlite_url, clock)
    (expired,) = signals_with_status(engine, ["expired"]).itertuples(index=False)
    assert expired.id == stranded and "not filled within 5 bars" in expired.status_reason
    assert expired.decided_at == clock.now()
    assert not pending_entry_exists(engine, "BTCUSDT", "model")  # the symbol and strategy take entries again
