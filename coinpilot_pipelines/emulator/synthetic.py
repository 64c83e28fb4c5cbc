"""Deterministic synthetic 1-minute bars for any symbol and any UTC day.

Each day is generated on its own (so any date range is cheap to serve) yet the series is
continuous: a daily random walk fixes every day's opening level, and the minutes in between
are a Brownian bridge from that level to the next day's. The same symbol and day always give the
same bars, on every machine.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import numpy as np
from scipy.signal import lfilter

MINUTE_MS = 60_000
DAY_MS = 86_400_000
MINUTES_PER_DAY = 1440
LISTING_DATE = date(2017, 1, 1)  # the synthetic market has no bars before this day
_LAST_DAY = date(2040, 12, 31)
ZERO_VOLUME_SHARE = 0.01  # quiet minutes a liquid market still reports, with zero volume

# Typical price levels so synthetic series look like their namesakes; anything else is hashed.
_BASE_PRICES = {"BTC": 30_000.0, "ETH": 2_000.0, "XRP": 0.5, "SOL": 100.0, "BNB": 300.0,
                "DOGE": 0.08, "ADA": 0.4}
_QUOTE_SCALE = {"USDT": 1.0, "USDC": 1.0, "BUSD": 1.0, "KRW": 1_350.0, "BTC": 1 / 30_000, "ETH": 1 / 2_000}


@dataclass(frozen=True)
class DayBars:
    """One UTC day of 1m bars: epoch-ms open times and floats already rounded to the tick."""

    open_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    quote_volume: np.ndarray
    trades: np.ndarray
    price_decimals: int
    volume_decimals: int


def _seed(*parts: object) -> int:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _split_symbol(symbol: str) -> tuple[str, str]:
    if "-" in symbol:  # Upbit: QUOTE-BASE
        quote, base = symbol.split("-", 1)
        return base, quote
    for quote in ("USDT", "USDC", "BUSD", "KRW", "BTC", "ETH"):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol, "USDT"


def base_price(symbol: str) -> float:
    base, quote = _split_symbol(symbol)
    level = _BASE_PRICES.get(base)
    if level is None:
        level = 10 ** (_seed("level", base) % 600 / 100 - 2)  # 0.01 .. 10,000
    return level * _QUOTE_SCALE.get(quote, 1.0)


def price_decimals(price: float) -> int:
    """Roughly six significant digits, as exchange tick sizes give."""
    return int(min(8, max(0, 6 - math.floor(math.log10(price)))))


def volume_decimals(price: float) -> int:
    """Finer lots for dearer assets (BTC trades in 0.00001, XRP in whole units)."""
    return int(min(8, max(0, math.floor(math.log10(price)) + 1)))


@lru_cache(maxsize=64)
def _daily_log_levels(symbol: str) -> np.ndarray:
    days = (_LAST_DAY - LISTING_DATE).days + 2
    rng = np.random.default_rng(_seed("days", symbol))
    steps = rng.normal(0.0, 0.03, size=days)  # about 3% daily volatility
    steps[0] = 0.0
    return math.log(base_price(symbol)) + np.cumsum(steps)


def _reverting_noise(rng: np.random.Generator) -> np.ndarray:
    """Short-lived price deviations that decay back (half-life about 20 minutes), as order flow
    leaves in real 1m data; zero at both ends of the day so consecutive days still join."""
    phi = 0.5 ** (1 / 20)
    shocks = rng.normal(0.0, 0.0008 * math.sqrt(1 - phi**2), MINUTES_PER_DAY)
    deviation = lfilter([1.0], [1.0, -phi], shocks)  # AR(1): d[t] = phi * d[t-1] + shock[t]
    return deviation * np.minimum(1.0, np.minimum(np.arange(MINUTES_PER_DAY), np.arange(MINUTES_PER_DAY)[::-1]) / 60)


def day_bars(symbol: str, day: date) -> DayBars | None:
    """The day's 1440 bars, or None outside the synthetic market's life."""
    if day < LISTING_DATE or day > _LAST_DAY:
        return None
    index = (day - LISTING_DATE).days
    levels = _daily_log_levels(symbol)
    start_level, end_level = levels[index], levels[index + 1]
    rng = np.random.default_rng(_seed("minutes", symbol, day.isoformat()))

    steps = rng.standard_t(df=4, size=MINUTES_PER_DAY) * 0.0006  # fat-tailed minute returns
    walk = np.cumsum(steps)
    bridge = walk - np.linspace(1 / MINUTES_PER_DAY, 1.0, MINUTES_PER_DAY) * (walk[-1] - (end_level - start_level))
    close = np.exp(start_level + bridge + _reverting_noise(rng))
    open_ = np.concatenate(([math.exp(start_level)], close[:-1]))
    wick = np.abs(rng.normal(0.0, 0.0004, size=(2, MINUTES_PER_DAY)))
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])

    hour = np.arange(MINUTES_PER_DAY) / 60.0
    seasonality = 1.0 + 0.5 * np.sin((hour - 8.0) / 24.0 * 2 * math.pi)  # busier in US/EU hours
    notional = rng.lognormal(mean=math.log(40_000.0), sigma=0.9, size=MINUTES_PER_DAY) * seasonality
    notional *= _QUOTE_SCALE.get(_split_symbol(symbol)[1], 1.0)
    volume = notional / close
    quiet = rng.random(MINUTES_PER_DAY) < ZERO_VOLUME_SHARE

    decimals = price_decimals(float(close.mean()))
    lot_decimals = volume_decimals(float(close.mean()))
    open_, high, low, close = (np.round(a, decimals) for a in (open_, high, low, close))
    # A quiet minute trades nothing: it prints the previous close four times, like Binance.
    previous_close = np.concatenate(([open_[0]], close[:-1]))
    for series in (open_, high, low, close):
        series[quiet] = previous_close[quiet]
    high = np.maximum.reduce([high, open_, close])
    low = np.minimum.reduce([low, open_, close])
    volume = np.where(quiet, 0.0, np.maximum(np.round(volume, lot_decimals), 10.0 ** -lot_decimals))
    typical = (high + low + close) / 3
    quote_volume = np.round(volume * typical, 8)
    trades = np.where(quiet, 0, np.maximum(1, rng.poisson(notional / 2_000.0))).astype(np.int64)

    day_start = (index * DAY_MS) + _listing_ms()
    return DayBars(
        open_ms=day_start + np.arange(MINUTES_PER_DAY, dtype=np.int64) * MINUTE_MS,
        open=open_, high=high, low=low, close=close,
        volume=volume, quote_volume=quote_volume, trades=trades,
        price_decimals=decimals, volume_decimals=lot_decimals,
    )


@lru_cache(maxsize=1)
def _listing_ms() -> int:
    return (LISTING_DATE - date(1970, 1, 1)).days * DAY_MS
