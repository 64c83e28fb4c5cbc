"""Signals, paper trades, risk state, live positions, order attempts, AI decisions.

Risk state and positions are read with ``SELECT ... FOR UPDATE`` inside the transaction that
writes them, so concurrent executors on PostgreSQL queue on the row instead of losing an update.
Order attempts are unique by identifier and written before any request is sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, Row, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from coinpilot_pipelines.market.candles import SeriesKey
from coinpilot_pipelines.storage.frames import of_series, query_frame
from coinpilot_pipelines.storage.schema import (
    agent_decisions,
    live_positions,
    paper_trades,
    risk_state,
    signal_scans,
    trade_signals,
    upbit_account_snapshots,
    upbit_order_attempts,
    upbit_order_snapshots,
)
from coinpilot_pipelines.trading.risk import RiskState
from coinpilot_pipelines.trading.signals import Signal


def _insert(connection: Connection):  # noqa: ANN202 - the dialect's Insert constructor
    return pg_insert if connection.dialect.name == "postgresql" else sqlite_insert


def _locked(connection: Connection, query):  # noqa: ANN001, ANN202 - a Select, locked where the database can
    return query.with_for_update() if connection.dialect.name == "postgresql" else query


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


# -- signals ---------------------------------------------------------------------------------------

def store_signals(engine: Engine, series: SeriesKey, signals: Sequence[Signal], now: datetime) -> list[int]:
    """Insert new signals (an existing key is left as it is); the ids of the ones that are new."""
    created = []
    with engine.begin() as connection:
        for signal in signals:
            statement = _insert(connection)(trade_signals).values(
                signal_key=signal.key, exchange=series.exchange, symbol=series.symbol, interval=series.interval.code,
                strategy=signal.strategy, action=signal.action, bar_open_time=signal.bar_open_time,
                reason=signal.reason, probability=signal.probability, close=signal.close,
                context=_json(signal.context), paper_trade_id=signal.paper_trade_id, status="new", created_at=now,
            ).on_conflict_do_nothing(index_elements=["signal_key"]).returning(trade_signals.c.id)
            new_id = connection.execute(statement).scalar()
            if new_id is not None:
                created.append(new_id)
    return created


def signals_with_status(engine: Engine, statuses: Sequence[str]) -> pd.DataFrame:
    query = select(trade_signals).where(trade_signals.c.status.in_(statuses)).order_by(
        trade_signals.c.bar_open_time, trade_signals.c.id)
    with engine.connect() as connection:
        return query_frame(connection, query)


PENDING = ("new", "approved", "confirmed")
FINAL = ("executed", "rejected", "expired")


def set_signal_status(engine: Engine, signal_id: int, status: str, reason: str | None,
                      *, only_from: Sequence[str] | None = None, at: datetime | None = None) -> bool:
    """Move a signal on; with ``only_from``, only if it is still in one of those states. A final
    status needs ``at``, the time it was decided."""
    if (status in FINAL) != (at is not None):
        raise ValueError(f"signal {signal_id}: status {status!r} {'needs' if status in FINAL else 'takes no'} a decision time")
    statement = update(trade_signals).where(trade_signals.c.id == signal_id)
    if only_from is not None:
        statement = statement.where(trade_signals.c.status.in_(only_from))
    with engine.begin() as connection:
        return connection.execute(statement.values(status=status, status_reason=reason, decided_at=at)).rowcount == 1


def last_scanned_bar(engine: Engine, series: SeriesKey) -> datetime | None:
    query = select(func.max(signal_scans.c.bar_open_time)).where(
        of_series(signal_scans, series))
    with engine.connect() as connection:
        return connection.execute(query).scalar()


def record_scan(engine: Engine, series: SeriesKey, bars: Sequence[datetime], *, scanned_at: datetime,
                signals: int) -> None:
    """The bars a signal scan looked at for the first time (a bar already scanned keeps its time)."""
    if not bars:
        return
    with engine.begin() as connection:
        connection.execute(_insert(connection)(signal_scans).values([
            {"exchange": series.exchange, "symbol": series.symbol, "interval": series.interval.code,
             "bar_open_time": bar, "scanned_at": scanned_at, "signals": signals} for bar in bars
        ]).on_conflict_do_nothing(index_elements=["exchange", "symbol", "interval", "bar_open_time"]))


def pending_entry_exists(engine: Engine, symbol: str, strategy: str) -> bool:
    query = select(func.count()).select_from(trade_signals).where(
        trade_signals.c.symbol == symbol, trade_signals.c.strategy == strategy, trade_signals.c.action == "enter",
        trade_signals.c.status.in_(PENDING))
    with engine.connect() as connection:
        return connection.execute(query).scalar_one() > 0


# -- paper trades ----------------------------------------------------------------------------------

def open_trades(engine: Engine, symbol: str | None = None) -> pd.DataFrame:
    query = select(paper_trades).where(paper_trades.c.status == "open")
    if symbol is not None:
        query = query.where(paper_trades.c.symbol == symbol)
    with engine.connect() as connection:
        return query_frame(connection, query.order_by(paper_trades.c.id))


def closed_trades(engine: Engine) -> pd.DataFrame:
    with engine.connect() as connection:
        return query_frame(connection, select(paper_trades).where(paper_trades.c.status == "closed"))


def count_open_trades(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(paper_trades)
                                  .where(paper_trades.c.status == "open")).scalar_one()


def open_trade(engine: Engine, signal: Row, *, entry_time: datetime, price: Decimal, quantity: Decimal,
               fee: Decimal) -> int:
    """The paper trade an entry signal opens (the same one again if it was opened before)."""
    with engine.begin() as connection:
        statement = _insert(connection)(paper_trades).values(
            exchange=signal.exchange, symbol=signal.symbol, interval=signal.interval, strategy=signal.strategy,
            side="long", entry_signal_id=signal.id, entry_time=entry_time, entry_price=price, quantity=quantity,
            entry_fee=fee, status="open",
        ).on_conflict_do_nothing(index_elements=["entry_signal_id"])
        connection.execute(statement)
        return connection.execute(select(paper_trades.c.id).where(paper_trades.c.entry_signal_id == signal.id)).scalar_one()


def close_trade(engine: Engine, trade_id: int, exit_signal_id: int, *, exit_time: datetime, price: Decimal,
                fee: Decimal, reason: str, pnl_of: Callable[[Row], Decimal],
                on_closed: Callable[[Connection, Decimal], None]) -> Row | None:
    """Close a trade once: under a row lock, an already closed trade is returned unchanged.

    ``on_closed(connection, pnl)`` runs in the same transaction (the risk-state update).
    """
    with engine.begin() as connection:
        trade = connection.execute(_locked(connection, select(paper_trades).where(paper_trades.c.id == trade_id))).one()
        if trade.status == "closed":
            return trade
        pnl = pnl_of(trade)
        connection.execute(update(paper_trades).where(paper_trades.c.id == trade_id).values(
            exit_signal_id=exit_signal_id, exit_time=exit_time, exit_price=price, exit_fee=fee, exit_reason=reason,
            pnl=pnl, status="closed"))
        on_closed(connection, pnl)
        return connection.execute(select(paper_trades).where(paper_trades.c.id == trade_id)).one()


def get_trade(engine: Engine, trade_id: int) -> Row:
    with engine.connect() as connection:
        return connection.execute(select(paper_trades).where(paper_trades.c.id == trade_id)).one()


# -- risk state --------------------------------------------------------------------------------------

def _risk_row(connection: Connection, profile: str, now: datetime) -> Row:
    connection.execute(_insert(connection)(risk_state).values(
        profile=profile, trading_day=now.replace(hour=0, minute=0, second=0, microsecond=0),
        daily_realized_pnl=Decimal(0), consecutive_losses=0, cooldown_until=None, updated_at=now,
    ).on_conflict_do_nothing(index_elements=["profile"]))
    return connection.execute(_locked(connection, select(risk_state).where(risk_state.c.profile == profile))).one()


def read_risk_state(engine: Engine, profile: str, now: datetime) -> RiskState:
    with engine.begin() as connection:
        row = _risk_row(connection, profile, now)
    return RiskState(row.trading_day, row.daily_realized_pnl, row.consecutive_losses, row.cooldown_until)


def update_risk_state(connection: Connection, profile: str, now: datetime,
                      change: Callable[[RiskState], RiskState]) -> RiskState:
    """Apply ``change`` to the profile's state under a row lock (in the caller's transaction)."""
    row = _risk_row(connection, profile, now)
    state = change(RiskState(row.trading_day, row.daily_realized_pnl, row.consecutive_losses, row.cooldown_until))
    connection.execute(update(risk_state).where(risk_state.c.profile == profile).values(
        **asdict(state), updated_at=now))
    return state


# -- live positions ------------------------------------------------------------------------------

def apply_fill(engine: Engine, exchange: str, market: str, *, side: str, volume: Decimal, price: Decimal,
               now: datetime) -> Row:
    """Add a fill to a position under a row lock: buys move the average price, sells realize PnL."""
    with engine.begin() as connection:
        connection.execute(_insert(connection)(live_positions).values(
            exchange=exchange, market=market, quantity=Decimal(0), avg_price=Decimal(0), realized_pnl=Decimal(0),
            updated_at=now).on_conflict_do_nothing(index_elements=["exchange", "market"]))
        key = (live_positions.c.exchange == exchange) & (live_positions.c.market == market)
        position = connection.execute(_locked(connection, select(live_positions).where(key))).one()
        quantity, avg_price, realized = position.quantity, position.avg_price, position.realized_pnl
        if side == "bid":
            total = quantity + volume
            avg_price = (quantity * avg_price + volume * price) / total if total else Decimal(0)
            quantity = total
        else:
            sold = min(volume, quantity)
            realized += (price - avg_price) * sold
            quantity -= sold
        connection.execute(update(live_positions).where(key).values(
            quantity=quantity, avg_price=avg_price, realized_pnl=realized, updated_at=now))
        return connection.execute(select(live_positions).where(key)).one()


def positions(engine: Engine) -> pd.DataFrame:
    with engine.connect() as connection:
        return query_frame(connection, select(live_positions))


# -- order attempts ------------------------------------------------------------------------------

def begin_attempt(engine: Engine, **values: Any) -> tuple[Row, bool]:
    """Record an order intent before any request. Returns the attempt and whether it is new: an
    identifier already recorded (by an earlier run, or a run going on right now) is never sent again."""
    with engine.begin() as connection:
        new_id = connection.execute(_insert(connection)(upbit_order_attempts).values(**values)
                                    .on_conflict_do_nothing(index_elements=["identifier"])
                                    .returning(upbit_order_attempts.c.id)).scalar()
        attempt = connection.execute(select(upbit_order_attempts).where(
            upbit_order_attempts.c.identifier == values["identifier"])).one()
    return attempt, new_id is not None


def update_attempt(engine: Engine, attempt_id: int, **values: Any) -> None:
    with engine.begin() as connection:
        connection.execute(update(upbit_order_attempts).where(upbit_order_attempts.c.id == attempt_id).values(**values))


def attempts(engine: Engine, statuses: Sequence[str] | None = None) -> pd.DataFrame:
    query = select(upbit_order_attempts).order_by(upbit_order_attempts.c.id)
    if statuses is not None:
        query = query.where(upbit_order_attempts.c.status.in_(statuses))
    with engine.connect() as connection:
        return query_frame(connection, query)


def attempt_by_identifier(engine: Engine, identifier: str) -> Row | None:
    with engine.connect() as connection:
        return connection.execute(select(upbit_order_attempts).where(
            upbit_order_attempts.c.identifier == identifier)).one_or_none()


def get_attempt(engine: Engine, attempt_id: int) -> Row:
    with engine.connect() as connection:
        return connection.execute(select(upbit_order_attempts).where(upbit_order_attempts.c.id == attempt_id)).one()


def record_snapshot(engine: Engine, attempt_id: int, order: dict, now: datetime) -> None:
    with engine.begin() as connection:
        connection.execute(upbit_order_snapshots.insert().values(
            attempt_id=attempt_id, polled_at=now, state=str(order.get("state")),
            executed_volume=_decimal_or_none(order.get("executed_volume")),
            remaining_volume=_decimal_or_none(order.get("remaining_volume")),
            paid_fee=_decimal_or_none(order.get("paid_fee")), avg_price=_decimal_or_none(order.get("avg_price")),
            trades_count=order.get("trades_count"), raw_json=_json(order)))


def record_accounts(engine: Engine, accounts: list[dict], now: datetime) -> int:
    rows = [{"taken_at": now, "currency": a["currency"], "balance": Decimal(str(a["balance"])),
             "locked": Decimal(str(a.get("locked", "0"))), "avg_buy_price": _decimal_or_none(a.get("avg_buy_price")),
             "unit_currency": a.get("unit_currency")} for a in accounts]
    if rows:
        with engine.begin() as connection:
            connection.execute(upbit_account_snapshots.insert(), rows)
    return len(rows)


def _decimal_or_none(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


# -- AI decisions --------------------------------------------------------------------------------

def record_decision(engine: Engine, **values: Any) -> int:
    values["signal"] = _json(values["signal"])
    with engine.begin() as connection:
        return connection.execute(agent_decisions.insert().values(**values).returning(agent_decisions.c.id)).scalar_one()


def decisions(engine: Engine) -> pd.DataFrame:
    with engine.connect() as connection:
        return query_frame(connection, select(agent_decisions).order_by(agent_decisions.c.id))
