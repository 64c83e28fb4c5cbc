"""Paper fills: at the next bar's open, with slippage against us and a proportional fee."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

QUANTITY_STEP = Decimal("0.00000001")


@dataclass(frozen=True)
class Fill:
    price: Decimal
    quantity: Decimal
    fee: Decimal


def entry_fill(next_open: Decimal, notional: Decimal, *, slippage: Decimal, fee_rate: Decimal) -> Fill:
    """A long entry: pay up by the slippage, spend ``notional`` (quantity rounded down to 1e-8)."""
    price = next_open * (1 + slippage)
    quantity = (notional / price).quantize(QUANTITY_STEP, rounding=ROUND_DOWN)
    return Fill(price, quantity, price * quantity * fee_rate)


def exit_fill(next_open: Decimal, quantity: Decimal, *, slippage: Decimal, fee_rate: Decimal) -> Fill:
    """A long exit: receive less by the slippage."""
    price = next_open * (1 - slippage)
    return Fill(price, quantity, price * quantity * fee_rate)


def realized_pnl(entry: Fill, exit_: Fill) -> Decimal:
    return (exit_.price - entry.price) * entry.quantity - entry.fee - exit_.fee
