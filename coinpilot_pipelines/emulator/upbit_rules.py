"""Upbit's KRW market rules the emulator holds orders and prices to.

The order price unit (호가 단위) depends on the price: Upbit publishes the table on its KRW
market page and has changed some bands over time (2024: the 100..10,000 KRW bands); this is the
table in force, checked against live order books. A KRW order totals at least 5,000 KRW.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np

MIN_ORDER_TOTAL_KRW = Decimal("5000")
# (lower bound of the band, price unit), highest band first.
KRW_PRICE_UNITS = (
    (Decimal("2000000"), Decimal("1000")),
    (Decimal("1000000"), Decimal("500")),
    (Decimal("500000"), Decimal("500")),
    (Decimal("100000"), Decimal("100")),
    (Decimal("50000"), Decimal("50")),
    (Decimal("10000"), Decimal("10")),
    (Decimal("5000"), Decimal("5")),
    (Decimal("100"), Decimal("1")),
    (Decimal("10"), Decimal("0.1")),
    (Decimal("1"), Decimal("0.01")),
    (Decimal("0.1"), Decimal("0.001")),
    (Decimal("0.01"), Decimal("0.0001")),
    (Decimal("0.001"), Decimal("0.00001")),
    (Decimal("0.0001"), Decimal("0.000001")),
    (Decimal("0.00001"), Decimal("0.0000001")),
    (Decimal("0"), Decimal("0.00000001")),
)
_BOUNDS = np.array([float(bound) for bound, _ in KRW_PRICE_UNITS])
_UNITS = np.array([float(unit) for _, unit in KRW_PRICE_UNITS])


def krw_price_unit(price: Decimal) -> Decimal:
    """The price unit of a KRW market at this price."""
    return next(unit for bound, unit in KRW_PRICE_UNITS if price >= bound)


def on_krw_grid(price: Decimal) -> bool:
    return price > 0 and price % krw_price_unit(price) == 0


def round_to_krw_units(prices: np.ndarray) -> np.ndarray:
    """Prices rounded to their band's unit, as every Upbit KRW trade prints."""
    units = _UNITS[np.argmax(prices[..., None] >= _BOUNDS, axis=-1)]
    return np.round(np.round(prices / units) * units, 8)
