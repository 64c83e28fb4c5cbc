"""The Upbit quotation endpoints the emulator serves: ``/v1/market/all``, minute, day, week and
month candles (newest first, at most 200, before an exclusive ``to``) and ``/v1/ticker``.

Upbit's day starts at 00:00 UTC (09:00 KST) for day candles and the ticker's change against the
previous close; weeks start on Monday. A market the emulator does not serve is ``404 Code not found``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import numpy as np

from coinpilot_pipelines.emulator.market import (
    DAY_MS,
    FIRST_BAR_MS,
    MINUTE_MS,
    MONTH,
    WEEK,
    Grid,
    Summary,
    day_of,
    fixed,
    upbit_minute_candle,
    upbit_number,
    upbit_period_candle,
)
from coinpilot_pipelines.emulator.replies import BadRequest, Reply, json_reply, rows_reply, upbit_error

if TYPE_CHECKING:
    from coinpilot_pipelines.emulator.server import EmulatorState

MINUTE_UNITS = (1, 3, 5, 10, 15, 30, 60, 240)
PERIODS = {"days": (fixed("1d", DAY_MS), None), "weeks": (WEEK, "first_day_of_period"),
           "months": (MONTH, "first_day_of_period")}
NAMES = {"BTC": ("비트코인", "Bitcoin"), "ETH": ("이더리움", "Ethereum"), "XRP": ("엑스알피(리플)", "XRP")}
KST = timezone(timedelta(hours=9))


def rate_group(path: str) -> str:
    """The request group Upbit counts a quotation call in (``Remaining-Req: group=...``)."""
    return {"/v1/market/all": "market", "/v1/ticker": "ticker"}.get(path, "candles")


def handle(state: EmulatorState, path: str, params: dict[str, str]) -> Reply:
    try:
        if path == "/v1/market/all":
            return market_all(state, params)
        if path == "/v1/ticker":
            return ticker(state, params)
        if match := re.fullmatch(r"/v1/candles/minutes/(\d+)", path):
            unit = int(match.group(1))
            if unit not in MINUTE_UNITS:
                return upbit_error(400, "invalid_parameter", f"unit {unit} is not one of {MINUTE_UNITS}")
            return candles(state, params, fixed(f"{unit}m", unit * MINUTE_MS), None)
        if match := re.fullmatch(r"/v1/candles/(days|weeks|months)", path):
            grid, period = PERIODS[match.group(1)]
            return candles(state, params, grid, period)
    except BadRequest as refused:
        return refused.reply
    return upbit_error(404, "not_found", f"no such API: GET {path}")


def _market(state: EmulatorState, market: str) -> str:
    if market not in state.symbols.upbit:
        raise BadRequest(upbit_error(404, 404, "Code not found"))
    return market


def market_all(state: EmulatorState, params: dict[str, str]) -> Reply:
    details = params.get("isDetails", params.get("is_details", "false")).lower() == "true"
    listed = []
    for market in state.symbols.upbit:
        base = market.split("-", 1)[1]
        korean, english = NAMES.get(base, (base, base))
        entry = {"market": market, "korean_name": korean, "english_name": english}
        if details:
            entry.update(market_warning="NONE", market_event={
                "warning": False, "caution": {"PRICE_FLUCTUATIONS": False, "TRADING_VOLUME_SOARING": False,
                                              "DEPOSIT_AMOUNT_SOARING": False, "GLOBAL_PRICE_DIFFERENCES": False,
                                              "CONCENTRATION_OF_SMALL_ACCOUNTS": False}})
        listed.append(entry)
    return json_reply(200, listed)


def _parse_to(raw: str) -> int:
    text = raw.strip().replace(" ", "T").replace("Z", "+00:00")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)  # Upbit reads an offset-less time as UTC
    return int(moment.timestamp() * 1000)


def candles(state: EmulatorState, params: dict[str, str], grid: Grid, period: str | None) -> Reply:
    market = _market(state, params.get("market", ""))
    count_text = params.get("count", "1")
    if not count_text.isdigit():
        return upbit_error(400, "invalid_parameter", "count must be an integer")
    count = int(count_text)
    if not 1 <= count <= 200:
        return upbit_error(400, "invalid_parameter", "count must be between 1 and 200")
    now = state.clock.now_ms()
    to = params.get("to")
    try:
        hi = grid.ceil(min(_parse_to(to), now + 1)) if to else now + 1
    except ValueError:
        return upbit_error(400, "invalid_parameter", f"to {to!r} is not ISO 8601 (yyyy-MM-dd'T'HH:mm:ss'Z')")
    minutes = grid.fixed_ms and grid.fixed_ms < DAY_MS

    def fetch(a: int, b: int) -> tuple[np.ndarray, list[str]]:
        if minutes:
            return state.market.upbit_candles(market, grid.fixed_ms // MINUTE_MS, a, b)
        return state.market.upbit_long(market, grid, a, b, lambda t, bar, _: _period_candle(state, market, grid, period,
                                                                                             t, bar, now))

    span = max(count * (grid.fixed_ms or 31 * DAY_MS), DAY_MS)
    times, rows = state.select(fetch, market, grid, FIRST_BAR_MS, hi, count, span, now, newest=True)
    if len(times) and times[0] <= now < grid.next(int(times[0])):
        opened = int(times[0])
        bar = state.market.summary("upbit", market, opened, grid.next(opened), now)
        if bar is not None:  # the candle in progress, as of now
            rows[0] = (upbit_minute_candle(market, grid.fixed_ms // MINUTE_MS, opened, bar) if minutes
                       else _period_candle(state, market, grid, period, opened, bar, now))
    hide = state.consume_withheld(market, times)
    return rows_reply([r for r, h in zip(rows, hide, strict=True) if not h])


def _period_candle(state: EmulatorState, market: str, grid: Grid, period: str | None, t: int, bar: Summary,
                   now: int) -> str:
    previous = None
    if period is None:
        before = state.market.summary("upbit", market, t - DAY_MS, t)
        previous = before.c if before else None
    last_trade = min(grid.next(t), now) - 1
    return upbit_period_candle(market, t, bar, previous, period=period, last_trade_ms=last_trade)


def ticker(state: EmulatorState, params: dict[str, str]) -> Reply:
    names = [m.strip() for m in params.get("markets", "").split(",") if m.strip()]
    if not names:
        return upbit_error(400, "invalid_parameter", "markets is required")
    now = state.clock.now_ms()
    return json_reply(200, [_ticker(state, _market(state, name), now) for name in names])


def _ticker(state: EmulatorState, market: str, now: int) -> dict:
    day = now - now % DAY_MS
    today = state.market.summary("upbit", market, day, day + DAY_MS, now)
    before = state.market.summary("upbit", market, day - DAY_MS, day)
    rolling = state.market.summary("upbit", market, now - DAY_MS - (now - DAY_MS) % MINUTE_MS, now + 1, now)
    if today is None:  # nothing traded yet today: the day opens at the previous close
        last = before or rolling
        if last is None:
            raise BadRequest(upbit_error(404, 404, "Code not found"))
        today = Summary(last.c, last.c, last.c, last.c, 0.0, 0.0, 0)
    previous = before.c if before else today.o
    change = today.c - previous
    year = [(today, 0)] + [(d, k) for k in range(1, 365) if (d := state.market.daily("upbit", market, day_of(day - k * DAY_MS)))]
    high = max(year, key=lambda item: item[0].h)
    low = min(year, key=lambda item: item[0].low)
    stamp = datetime.fromtimestamp(now / 1000, tz=timezone.utc)
    return {
        "market": market,
        "trade_date": stamp.strftime("%Y%m%d"), "trade_time": stamp.strftime("%H%M%S"),
        "trade_date_kst": stamp.astimezone(KST).strftime("%Y%m%d"), "trade_time_kst": stamp.astimezone(KST).strftime("%H%M%S"),
        "trade_timestamp": now,
        "opening_price": upbit_number(today.o), "high_price": upbit_number(today.h),
        "low_price": upbit_number(today.low), "trade_price": upbit_number(today.c),
        "prev_closing_price": upbit_number(previous),
        "change": "RISE" if change > 0 else "FALL" if change < 0 else "EVEN",
        "change_price": upbit_number(abs(change)), "change_rate": round(abs(change) / previous, 10) if previous else 0.0,
        "signed_change_price": upbit_number(change), "signed_change_rate": round(change / previous, 10) if previous else 0.0,
        "trade_volume": round(today.v / max(today.n, 1), 8) if today.v else 0.0,
        "acc_trade_price": round(today.q, 5), "acc_trade_price_24h": round(rolling.q, 5) if rolling else 0.0,
        "acc_trade_volume": round(today.v, 8), "acc_trade_volume_24h": round(rolling.v, 8) if rolling else 0.0,
        "highest_52_week_price": upbit_number(high[0].h),
        "highest_52_week_date": day_of(day - high[1] * DAY_MS).isoformat(),
        "lowest_52_week_price": upbit_number(low[0].low),
        "lowest_52_week_date": day_of(day - low[1] * DAY_MS).isoformat(),
        "timestamp": now,
    }

