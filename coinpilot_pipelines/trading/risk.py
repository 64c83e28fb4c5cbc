"""Risk limits an entry must pass. Exits always pass: they only ever reduce risk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal


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


def entry_refusal(state: RiskState, limits: RiskLimits, *, at: datetime, open_positions: int,
                  notional: Decimal) -> str | None:
    """Why an entry at ``at`` is refused, or None when it passes every limit."""
    if state.cooldown_until is not None and at < state.cooldown_until:
        return f"cooldown after {limits.losing_streak} losing trades until {state.cooldown_until.isoformat()}"
    pnl_today = state.daily_realized_pnl if day_of(at) == state.trading_day else Decimal(0)
    if pnl_today <= -limits.daily_loss_limit:
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
