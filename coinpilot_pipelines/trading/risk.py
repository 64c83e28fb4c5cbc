"""Risk limits an entry must pass (exits always pass: they only ever reduce risk), and the size
limits every order sent to the exchange must pass, exits included."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal


UPBIT_MIN_ORDER_KRW = Decimal("5000")  # Upbit refuses KRW-market orders with a smaller total


@dataclass(frozen=True)
class RiskLimits:
    daily_loss_limit: Decimal
    max_position_notional: Decimal
    max_open_positions: int
    losing_streak: int
    cooldown: timedelta


@dataclass(frozen=True)
class RiskState:
    trading_day: datetime  # 00:00 UTC
    daily_realized_pnl: Decimal
    consecutive_losses: int
    cooldown_until: datetime | None


def day_of(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def realized_today(state: RiskState, at: datetime) -> Decimal:
    """The PnL realized on the UTC day of ``at`` (the state may still hold an earlier day's)."""
    return state.daily_realized_pnl if day_of(at) == state.trading_day else Decimal(0)


def daily_loss_limit_reached(state: RiskState, daily_loss_limit: Decimal, at: datetime) -> bool:
    return realized_today(state, at) <= -daily_loss_limit


def entry_refusal(state: RiskState, limits: RiskLimits, *, at: datetime, open_positions: int,
                  notional: Decimal) -> str | None:
    """Why an entry at ``at`` is refused, or None when it passes every limit."""
    if state.cooldown_until is not None and at < state.cooldown_until:
        return f"cooldown after {limits.losing_streak} losing trades until {state.cooldown_until.isoformat()}"
    if daily_loss_limit_reached(state, limits.daily_loss_limit, at):
        pnl_today = realized_today(state, at)
        return f"daily loss limit reached: {pnl_today} <= -{limits.daily_loss_limit}"
    if open_positions >= limits.max_open_positions:
        return f"{open_positions} positions open, the maximum is {limits.max_open_positions}"
    if notional > limits.max_position_notional:
        return f"position size {notional} above the maximum {limits.max_position_notional}"
    return None


def after_close(state: RiskState, limits: RiskLimits, *, pnl: Decimal, at: datetime) -> RiskState:
    """The state once a trade closed at ``at`` with ``pnl``."""
    day = day_of(at)
    daily = (state.daily_realized_pnl if day == state.trading_day else Decimal(0)) + pnl
    losses = state.consecutive_losses + 1 if pnl < 0 else 0
    cooldown = state.cooldown_until
    if losses >= limits.losing_streak:
        cooldown, losses = at + limits.cooldown, 0
    return RiskState(day, daily, losses, cooldown)


def order_size_refusal(side: str, *, krw_total: Decimal | None, volume: Decimal | None, held_volume: Decimal | None,
                       max_order_krw: Decimal) -> str | None:
    """Why an order may not be sent to Upbit, or None.

    A buy spends ``krw_total``: it must lie within Upbit's minimum total and our own ceiling. A
    sell must not sell more than was bought (``held_volume``), and where its KRW total is known
    it must reach the minimum, or Upbit would refuse it anyway.
    """
    if side == "bid":
        if krw_total is None or krw_total < UPBIT_MIN_ORDER_KRW:
            return f"order total {krw_total} KRW is below Upbit's minimum of {UPBIT_MIN_ORDER_KRW} KRW"
        if krw_total > max_order_krw:
            return f"order total {krw_total} KRW is above RISK_MAX_ORDER_KRW ({max_order_krw} KRW)"
        return None
    if volume is None or volume <= 0:
        return f"sell volume {volume} is not positive"
    if held_volume is not None and volume > held_volume:
        return f"sell volume {volume} is more than the {held_volume} bought"
    if krw_total is not None and krw_total < UPBIT_MIN_ORDER_KRW:
        return f"order total about {krw_total:.0f} KRW is below Upbit's minimum of {UPBIT_MIN_ORDER_KRW} KRW"
    return None
