"""The Binance spot REST endpoints the emulator serves, as the public documentation describes them.

``/api/v3/ping``, ``time``, ``exchangeInfo``, ``klines`` (every documented interval, 1s to 1M),
``ticker/24hr``, ``ticker/price``, ``avgPrice`` and ``depth``, with the documented request weights
and errors: ``-1121 Invalid symbol.`` for a symbol the emulator does not serve, ``-1100`` for a
parameter that is not a number. Prices, tickers and the book all derive from the same bars.
"""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING

import numpy as np

from coinpilot_pipelines.emulator.market import (
    DAY_MS,
    FIRST_BAR_MS,
    MINUTE_MS,
    MONTH,
    SECOND_MS,
    WEEK,
    Grid,
    Summary,
    binance_kline,
    day_of,
    fixed,
)
from coinpilot_pipelines.emulator.replies import BadRequest, Reply, binance_error, json_reply, rows_reply
from coinpilot_pipelines.emulator.symbols import binance_assets

if TYPE_CHECKING:
    from coinpilot_pipelines.emulator.server import EmulatorState

HOUR_MS = 3_600_000
INTERVALS: dict[str, Grid] = {
    "1s": fixed("1s", SECOND_MS),
    **{f"{n}m": fixed(f"{n}m", n * MINUTE_MS) for n in (1, 3, 5, 15, 30)},
    **{f"{n}h": fixed(f"{n}h", n * HOUR_MS) for n in (1, 2, 4, 6, 8, 12)},
    "1d": fixed("1d", DAY_MS), "3d": fixed("3d", 3 * DAY_MS), "1w": WEEK, "1M": MONTH,
}
DEPTH_WEIGHTS = ((100, 5), (500, 25), (1000, 50), (5000, 250))
_DIGITS = "^[0-9]{1,20}$"


def request_weight(path: str, params: dict[str, str]) -> int:
    """The documented weight of a request (charged whether or not it succeeds)."""
    if path == "/api/v3/exchangeInfo":
        return 20
    if path == "/api/v3/depth":
        limit = params.get("limit", "100")
        wanted = min(int(limit), 5000) if limit.isdigit() else 100
        return next(weight for top, weight in DEPTH_WEIGHTS if wanted <= top)
    if path == "/api/v3/ticker/24hr":
        if "symbol" in params:
            return 2
        count = len(json.loads(params["symbols"])) if "symbols" in params and _is_list(params["symbols"]) else 0
        return 2 if 0 < count <= 20 else 40 if 0 < count <= 100 else 80
    if path == "/api/v3/ticker/price":
        return 2 if "symbol" in params else 4
    if path in ("/api/v3/klines", "/api/v3/avgPrice"):
        return 2  # klines: any limit, since 2023-08-25
    return 1


def handle(state: EmulatorState, path: str, params: dict[str, str]) -> Reply:
    routes = {
        "/api/v3/ping": lambda: json_reply(200, {}),
        "/api/v3/time": lambda: json_reply(200, {"serverTime": state.clock.now_ms()}),
        "/api/v3/exchangeInfo": lambda: exchange_info(state, params),
        "/api/v3/klines": lambda: klines(state, params),
        "/api/v3/ticker/24hr": lambda: ticker_24hr(state, params),
        "/api/v3/ticker/price": lambda: ticker_price(state, params),
        "/api/v3/avgPrice": lambda: avg_price(state, params),
        "/api/v3/depth": lambda: depth(state, params),
    }
    route = routes.get(path)
    if route is None:
        return binance_error(404, -1000, f"Unknown route {path}.")
    try:
        return route()
    except BadRequest as refused:
        return refused.reply


# -- parameters ---------------------------------------------------------------------------------
def _int(params: dict[str, str], name: str, default: int | None) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 20:
        raise BadRequest(binance_error(400, -1100, f"Illegal characters found in parameter '{name}'; "
                                                   f"legal range is '{_DIGITS}'."))
    return int(raw)


def _served(state: EmulatorState, symbol: str) -> str:
    if symbol not in state.symbols.binance:
        raise BadRequest(binance_error(400, -1121, "Invalid symbol."))
    return symbol


def _symbol(state: EmulatorState, params: dict[str, str]) -> str:
    symbol = params.get("symbol", "")
    if not symbol:
        raise BadRequest(binance_error(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."))
    return _served(state, symbol)


def _is_list(raw: str) -> bool:
    try:
        value = json.loads(raw)
    except ValueError:
        return False
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _symbols(state: EmulatorState, params: dict[str, str]) -> list[str] | None:
    """``symbol`` (one), ``symbols`` (a JSON array) or neither (all served symbols); None for one."""
    if "symbol" in params and "symbols" in params:
        raise BadRequest(binance_error(400, -1128, "Combination of optional parameters invalid."))
    if "symbol" in params:
        _symbol(state, params)
        return None
    if "symbols" in params:
        if not _is_list(params["symbols"]):
            raise BadRequest(binance_error(400, -1100, "Illegal characters found in parameter 'symbols'; legal range "
                                                       "is '^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$'."))
        return [_served(state, s) for s in json.loads(params["symbols"])]
    return list(state.symbols.binance)


def _one_or_many(state: EmulatorState, params: dict[str, str], render) -> Reply:  # noqa: ANN001 - symbol -> dict
    many = _symbols(state, params)
    return json_reply(200, render(params["symbol"]) if many is None else [render(s) for s in many])


# -- market state at "now" ----------------------------------------------------------------------
def _places(decimals: int) -> str:
    return f"{10.0 ** -decimals:.8f}"


def _last(state: EmulatorState, symbol: str, now: int) -> Summary:
    """The minute in progress at ``now`` (or the last one that traded before it)."""
    opened = now - now % MINUTE_MS
    bar = state.market.summary("binance", symbol, opened, opened + MINUTE_MS, now)
    lookback = opened
    while bar is None and lookback > FIRST_BAR_MS:  # a recording's gap: the last bar before it
        lookback -= DAY_MS
        bar = state.market.summary("binance", symbol, max(lookback, FIRST_BAR_MS), opened)
    if bar is None:
        raise BadRequest(binance_error(400, -1121, "Invalid symbol."))
    return bar


def _book(state: EmulatorState, symbol: str, now: int, levels: int) -> tuple[list[list[str]], list[list[str]], int]:
    """A synthetic order book around the last price: best bid at it, best ask one tick above, sizes
    drawn deterministically for each second, so two reads in one second see the same book."""
    decimals = state.market.binance_price_decimals(symbol, now)
    minutes = state.market.minutes("binance", symbol, day_of(now))
    lots = 8 if minutes is None else minutes.volume_decimals
    tick = 10.0 ** -decimals
    last = _last(state, symbol, now).c
    rng = random.Random(f"{symbol}|{now // 1000}")

    def size() -> str:
        return f"{max(round(rng.lognormvariate(0, 1) * 2000 / last, lots), 10.0 ** -lots):.8f}"

    bids = [[f"{round(last - k * tick, decimals):.8f}", size()] for k in range(levels) if last - k * tick > 0]
    asks = [[f"{round(last + (k + 1) * tick, decimals):.8f}", size()] for k in range(levels)]
    return bids, asks, (now - FIRST_BAR_MS) // 10


# -- endpoints ----------------------------------------------------------------------------------
def exchange_info(state: EmulatorState, params: dict[str, str]) -> Reply:
    chosen = _symbols(state, params)
    symbols = [params["symbol"]] if chosen is None else chosen
    now = state.clock.now_ms()
    return json_reply(200, {
        "timezone": "UTC",
        "serverTime": now,
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": state.scenario.weight_limit},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
        ],
        "exchangeFilters": [],
        "symbols": [_symbol_info(state, s, now) for s in symbols],
    })


def _symbol_info(state: EmulatorState, symbol: str, now: int) -> dict:
    base, quote = binance_assets(symbol)
    decimals = state.market.binance_price_decimals(symbol, now)
    minutes = state.market.minutes("binance", symbol, day_of(now))
    lots = 8 if minutes is None else minutes.volume_decimals
    min_notional = {"BTC": "0.00010000", "ETH": "0.00100000", "BNB": "0.01000000"}.get(quote, "5.00000000")
    return {
        "symbol": symbol, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8, "quoteAsset": quote,
        "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
                       "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True, "opoAllowed": False,
        "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": True, "cancelReplaceAllowed": True,
        "amendAllowed": True, "pegInstructionsAllowed": False, "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": _places(decimals), "maxPrice": "1000000.00000000",
             "tickSize": _places(decimals)},
            {"filterType": "LOT_SIZE", "minQty": _places(lots), "maxQty": "9000000.00000000", "stepSize": _places(lots)},
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "100000.00000000",
             "stepSize": "0.00000000"},
            {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10, "maxTrailingAboveDelta": 2000,
             "minTrailingBelowDelta": 10, "maxTrailingBelowDelta": 2000},
            {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "bidMultiplierDown": "0.2",
             "askMultiplierUp": "5", "askMultiplierDown": "0.2", "avgPriceMins": 5},
            {"filterType": "NOTIONAL", "minNotional": min_notional, "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [], "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"],
    }


def ticker_24hr(state: EmulatorState, params: dict[str, str]) -> Reply:
    kind = params.get("type", "FULL")
    if kind not in ("FULL", "MINI"):
        raise BadRequest(binance_error(400, -1139, "Invalid ticker type."))
    now = state.clock.now_ms()

    def render(symbol: str) -> dict:
        start = now - DAY_MS
        lo = start - start % MINUTE_MS
        window = state.market.summary("binance", symbol, lo, now + 1, now) or _last(state, symbol, now)
        decimals = state.market.binance_price_decimals(symbol, now)
        price = (lambda x: f"{round(x, decimals):.8f}")
        last_id = (now - FIRST_BAR_MS) // 100
        mini = {
            "symbol": symbol, "openPrice": price(window.o), "highPrice": price(window.h), "lowPrice": price(window.low),
            "lastPrice": price(window.c), "volume": f"{window.v:.8f}", "quoteVolume": f"{window.q:.8f}",
            "openTime": start, "closeTime": now, "firstId": last_id - window.n + 1, "lastId": last_id,
            "count": window.n,
        }
        if kind == "MINI":
            return mini
        previous = state.market.summary("binance", symbol, lo - MINUTE_MS, lo)
        bids, asks, _ = _book(state, symbol, now, 1)
        change = window.c - window.o
        return {
            "symbol": symbol, "priceChange": price(change),
            "priceChangePercent": f"{100 * change / window.o:.3f}" if window.o else "0.000",
            "weightedAvgPrice": price(window.q / window.v) if window.v else price(window.c),
            "prevClosePrice": price(previous.c if previous else window.o), "lastPrice": price(window.c),
            "lastQty": bids[0][1], "bidPrice": bids[0][0], "bidQty": bids[0][1], "askPrice": asks[0][0],
            "askQty": asks[0][1], **{k: v for k, v in mini.items() if k not in ("symbol", "lastPrice")},
        }

    return _one_or_many(state, params, render)


def ticker_price(state: EmulatorState, params: dict[str, str]) -> Reply:
    now = state.clock.now_ms()

    def render(symbol: str) -> dict:
        decimals = state.market.binance_price_decimals(symbol, now)
        return {"symbol": symbol, "price": f"{round(_last(state, symbol, now).c, decimals):.8f}"}

    return _one_or_many(state, params, render)


def avg_price(state: EmulatorState, params: dict[str, str]) -> Reply:
    symbol = _symbol(state, params)
    now = state.clock.now_ms()
    window = state.market.summary("binance", symbol, now - 5 * MINUTE_MS, now + 1, now) or _last(state, symbol, now)
    price = window.q / window.v if window.v else window.c
    return json_reply(200, {"mins": 5, "price": f"{price:.8f}", "closeTime": now})


def depth(state: EmulatorState, params: dict[str, str]) -> Reply:
    symbol = _symbol(state, params)
    limit = _int(params, "limit", 100)
    if limit < 1:
        raise BadRequest(binance_error(400, -1130, "Data sent for parameter 'limit' is not valid."))
    bids, asks, update_id = _book(state, symbol, state.clock.now_ms(), min(limit, 5000))
    return json_reply(200, {"lastUpdateId": update_id, "bids": bids, "asks": asks})


def klines(state: EmulatorState, params: dict[str, str]) -> Reply:
    symbol = _symbol(state, params)
    grid = INTERVALS.get(params.get("interval", ""))
    if grid is None:
        raise BadRequest(binance_error(400, -1120, "Invalid interval."))
    limit = _int(params, "limit", 500)
    start = _int(params, "startTime", None)
    end = _int(params, "endTime", None)
    if not 1 <= limit <= 1000:
        raise BadRequest(binance_error(400, -1130, "Data sent for parameter 'limit' is not valid."))
    if start is not None and end is not None and start > end:
        raise BadRequest(binance_error(400, -1023, "Start time is greater than end time."))
    now = state.clock.now_ms()
    hi = min(end if end is not None else now, now) + 1
    # With startTime the oldest bars from there, never before the first bar there is (so a start
    # in 1970 costs nothing); without it the newest bars before endTime.
    newest = start is None
    lo = FIRST_BAR_MS if newest else max(grid.ceil(start), grid.floor(FIRST_BAR_MS))

    def fetch(a: int, b: int) -> tuple[np.ndarray, list[str]]:
        return state.market.binance_rows(symbol, grid, a, b)

    span = limit * (grid.fixed_ms or 31 * DAY_MS)
    times, rows = state.select(fetch, symbol, grid, lo, hi, limit, span, now, newest=newest)
    if newest:
        times, rows = times[::-1], rows[::-1]
    rows = _open_bar_as_of_now(state, symbol, grid, times, rows, now)
    hide = state.consume_withheld(symbol, times)
    rows = [r for r, h in zip(rows, hide, strict=True) if not h]
    times = times[~hide]
    rows = _apply_row_faults(state, symbol, grid, times, rows, fetch, now, lo if start is not None else None)
    return rows_reply(rows)


def _open_bar_as_of_now(state: EmulatorState, symbol: str, grid: Grid, times: np.ndarray, rows: list[str],
                        now: int) -> list[str]:
    """The bar still open at ``now`` shows what has traded so far, never its final values."""
    if not len(times) or not times[-1] <= now < grid.next(int(times[-1])):
        return rows
    opened = int(times[-1])
    bar = state.market.summary("binance", symbol, opened, grid.next(opened), now)
    if bar is None:
        return rows
    decimals = state.market.binance_price_decimals(symbol, opened)
    return [*rows[:-1], binance_kline(opened, grid.next(opened) - 1, bar, decimals)]


def _apply_row_faults(state: EmulatorState, symbol: str, grid: Grid, times: np.ndarray, rows: list[str],
                      fetch, now: int, start: int | None) -> list[str]:  # noqa: ANN001 - the page fetcher
    scenario = state.scenario
    by_time = {m.open_ms: m.kind for m in scenario.malformed if m.symbol in (None, symbol)}
    if by_time:
        rows = [_malform(r, by_time[int(t)]) if int(t) in by_time else r for t, r in zip(times, rows, strict=True)]
    if scenario.duplicate_rows and start is not None and grid.fixed_ms:
        before_times, before_rows = fetch(start - scenario.duplicate_rows * grid.fixed_ms, start)
        keep = state.visible(symbol, grid, before_times, now)
        rows = [r for r, k in zip(before_rows, keep, strict=True) if k] + rows
    if scenario.shuffle_rows and len(rows) > 1:
        rows = rows[:]
        random.Random(int(times[0]) if len(times) else 0).shuffle(rows)
    return rows


def _malform(row: str, kind: str) -> str:
    fields = json.loads(row)
    if kind == "short_row":
        fields = fields[:7]
    elif kind == "non_numeric":
        fields[1] = "not-a-price"
    elif kind == "null_price":
        fields[4] = None
    elif kind == "high_below_low":
        fields[2], fields[3] = fields[3], fields[2]
        if fields[2] == fields[3]:
            fields[2] = f"{float(fields[3]) / 2:.8f}"
    elif kind == "negative_volume":
        fields[5] = "-" + fields[5].lstrip("-")
        if float(fields[5]) == 0:
            fields[5] = "-1.00000000"
    elif kind == "off_grid":
        fields[0] += 1_000
        fields[6] += 1_000
    return json.dumps(fields, separators=(",", ":"))

