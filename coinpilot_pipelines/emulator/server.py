"""The local exchange emulator: a real HTTP server on loopback.

Serves Binance ``GET /api/v3/klines`` and Upbit ``GET /v1/candles/minutes/{unit}`` with their
real semantics (limits, paging bounds, ordering, headers, error bodies), the bundled news feeds
at ``GET /rss/{source}`` (see `emulator.news`), and plays the faults of the active `Scenario`.
It runs as ``coinpilot emulator`` or in-process on a background thread (`Emulator.start`).
Admin endpoints under ``/_emulator/`` switch scenarios and the clock.
"""

from __future__ import annotations

import json
import logging
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from coinpilot_pipelines.emulator.market import MINUTE_MS, MarketReplay
from coinpilot_pipelines.emulator.news import NewsReplay
from coinpilot_pipelines.emulator.scenarios import Scenario, ScenarioError, parse_time_ms
from coinpilot_pipelines.emulator.synthetic import LISTING_DATE
from coinpilot_pipelines.emulator.upbit_exchange import DEFAULT_KEYS, UpbitExchange

log = logging.getLogger(__name__)

BINANCE_INTERVALS_MS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
                        "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000,
                        "12h": 43_200_000, "1d": 86_400_000}
UPBIT_UNITS = (1, 3, 5, 10, 15, 30, 60, 240)
UPBIT_REQUESTS_PER_SECOND = 10
# Requests that reach the server this soon after a 429 were already on the wire when it was sent.
IN_FLIGHT_GRACE_MS = 1000
_SYMBOL = re.compile(r"^[A-Z0-9]{2,20}$")
_MARKET = re.compile(r"^[A-Z]{2,10}-[A-Z0-9]{2,20}$")
_LISTING_MS = int(datetime(LISTING_DATE.year, LISTING_DATE.month, LISTING_DATE.day, tzinfo=timezone.utc).timestamp() * 1000)


def klines_weight(limit: int) -> int:
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


class EmulatorClock:
    """The emulated "now": real time by default, or frozen at a moment for tests."""

    def __init__(self) -> None:
        self._frozen_ms: int | None = None
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            if self._frozen_ms is not None:
                return self._frozen_ms
        return time.time_ns() // 1_000_000

    def freeze(self, epoch_ms: int | None) -> None:
        with self._lock:
            self._frozen_ms = epoch_ms

    def advance(self, seconds: float) -> None:
        with self._lock:
            if self._frozen_ms is None:
                raise ValueError("the clock runs in real time; freeze it before advancing")
            self._frozen_ms += int(seconds * 1000)


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]


def _json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode(), headers or {})


def _binance_error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> Reply:
    return _json_reply(status, {"code": code, "msg": msg}, headers)


def _upbit_error(status: int, name: str, message: str) -> Reply:
    return _json_reply(status, {"error": {"name": name, "message": message}})


class EmulatorState:
    """Everything the handler threads share: market data, scenario, clock and counters."""

    def __init__(self, scenario: Scenario | None = None, upbit_keys: dict[str, str] | None = None) -> None:
        self.market = MarketReplay()
        self.clock = EmulatorClock()
        self.lock = threading.Lock()
        self.exchange = UpbitExchange(price_of=self._last_upbit_price, keys=dict(upbit_keys or DEFAULT_KEYS))
        self.set_scenario(scenario or Scenario())

    def _last_upbit_price(self, market: str) -> Decimal:
        now = self.clock.now_ms()
        _, rows = self.market.upbit_candles(market, 1, now - 86_400_000, now + 1)
        if not rows:
            raise ValueError(f"no {market} candles to price an order")
        return Decimal(str(json.loads(rows[-1])["trade_price"]))

    def set_scenario(self, scenario: Scenario) -> None:
        self.exchange.scenario = scenario.upbit_exchange
        self.exchange.reset()
        with self.lock:
            self.scenario = scenario
            self.by_route: Counter[str] = Counter()
            self.news = NewsReplay(scenario.news)
            self.market_requests = 0
            self.by_status: Counter[str] = Counter()
            self.weight_used = 0
            self.weight_window = 0
            self.banned_until_ms = 0
            self.limited_at_ms = 0
            self.upbit_second = 0
            self.upbit_in_second = 0

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "market_requests": self.market_requests,
                "by_status": dict(self.by_status),
                "weight_used": self.weight_used,
                "news_requests": dict(self.news.requests),
                "by_route": dict(self.by_route),
                "upbit_orders": self.exchange.order_count(),
            }

    # -- faults shared by every market endpoint ----------------------------------------------
    def admit(self, flavor: str, weight: int) -> tuple[Reply | None, dict[str, str], int]:
        """Count the request and decide whether a fault answers it instead of the data."""
        scenario = self.scenario
        now = self.clock.now_ms()
        headers: dict[str, str] = {}
        with self.lock:
            self.market_requests += 1
            number = self.market_requests
            if now < self.banned_until_ms:
                remaining_s = -(-(self.banned_until_ms - now) // 1000)
                if now - self.limited_at_ms < IN_FLIGHT_GRACE_MS:
                    # Sent before the client could have read the 429: limited again, not banned.
                    return self._refuse(flavor, 429, remaining_s, number), headers, number
                # The client kept sending after the 429 asked it to wait: banned, for longer.
                ban_s = max(2, 2 * remaining_s)
                self.banned_until_ms = now + ban_s * 1000
                return self._refuse(flavor, 418, ban_s, number), headers, number
            if scenario.rate_limit_storm.active(number):
                retry_s = scenario.rate_limit_storm.retry_after_s
                self.banned_until_ms, self.limited_at_ms = now + int(retry_s * 1000), now
                return self._refuse(flavor, 429, retry_s, number), headers, number
            if flavor == "binance":
                window = now // int(scenario.weight_window_s * 1000)
                if window != self.weight_window:
                    self.weight_window, self.weight_used = window, 0
                if self.weight_used + weight > scenario.weight_limit:
                    window_end = (window + 1) * int(scenario.weight_window_s * 1000)
                    self.banned_until_ms, self.limited_at_ms = window_end, now
                    return self._refuse(flavor, 429, -(-(window_end - now) // 1000), number), headers, number
                self.weight_used += weight
                headers["X-MBX-USED-WEIGHT-1M"] = str(self.weight_used)
            else:
                second = now // 1000
                if second != self.upbit_second:
                    self.upbit_second, self.upbit_in_second = second, 0
                self.upbit_in_second += 1
                left = UPBIT_REQUESTS_PER_SECOND - self.upbit_in_second
                if left < 0:
                    return self._refuse(flavor, 429, None, number), headers, number
                headers["Remaining-Req"] = f"group=candles; min=600; sec={left}"
            if scenario.server_errors.active(number):
                status = scenario.server_errors.status
                reply = (_binance_error(status, -1001, "Internal error; unable to process your request.")
                         if flavor == "binance" else _upbit_error(status, "server_error", "Internal server error."))
                return reply, headers, number
        return None, headers, number

    def _refuse(self, flavor: str, status: int, retry_after_s: float | None, number: int) -> Reply:
        headers = {} if retry_after_s is None else {"Retry-After": str(int(-(-retry_after_s // 1)))}
        if flavor == "binance":
            text = ("Too many requests; current limit of IP(127.0.0.1) request weight per minute is "
                    f"{self.scenario.weight_limit}." if status == 429 else
                    "Way too much request weight used; IP banned until "
                    f"{self.banned_until_ms}. Please use WebSocket Streams for live updates to avoid bans.")
            return _binance_error(status, -1003, text, headers)
        reply = _upbit_error(status, "too_many_requests", "Too many API requests.")
        reply.headers.update(headers)
        return reply

    # -- which bars a response may show -------------------------------------------------------
    def visible(self, symbol: str, interval_ms: int, times: np.ndarray, now: int) -> np.ndarray:
        keep = times <= now  # bars that have opened; the current one is still open
        for outage in self.scenario.outages:
            keep &= ~_window_mask(outage, symbol, times)
        for late in self.scenario.late:
            hidden = _window_mask(late.window, symbol, times) & (now < times + interval_ms + late.delay_s * 1000)
            keep &= ~hidden
        return keep

    def consume_withheld(self, symbol: str, times: np.ndarray) -> np.ndarray:
        """Bars held back from this response; each hold-back is used up once per response."""
        hide = np.zeros(len(times), bool)
        with self.lock:
            for item in self.scenario.withheld:
                mask = _window_mask(item.window, symbol, times)
                if item.times > 0 and mask.any():
                    item.times -= 1
                    hide |= mask
        return hide


def _window_mask(window, symbol: str, times: np.ndarray) -> np.ndarray:  # noqa: ANN001
    if window.symbol is not None and window.symbol != symbol:
        return np.zeros(len(times), bool)
    return (times >= window.start_ms) & (times < window.end_ms)


def _select(fetch: Callable[[int, int], tuple[np.ndarray, list[str]]], keep: Callable[[np.ndarray], np.ndarray],
            lo: int, hi: int, limit: int, span: int, *, newest: bool) -> tuple[np.ndarray, list[str]]:
    """Up to ``limit`` visible bars in ``[lo, hi)``, oldest-first from ``lo`` or newest-first from ``hi``.

    Fetches ``span`` of time at a time and keeps going while bars are missing, as an exchange
    walking its index would.
    """
    times_out: list[int] = []
    rows_out: list[str] = []
    cursor_lo, cursor_hi = (max(lo, hi - span), hi) if newest else (lo, min(hi, lo + span))
    while len(rows_out) < limit and cursor_lo < cursor_hi:
        times, rows = fetch(cursor_lo, cursor_hi)
        mask = keep(times)
        chosen = np.flatnonzero(mask)
        if newest:
            chosen = chosen[::-1]
        for i in chosen[: limit - len(rows_out)]:
            times_out.append(int(times[i]))
            rows_out.append(rows[i])
        if newest:
            cursor_lo, cursor_hi = max(lo, cursor_lo - span), cursor_lo
        else:
            cursor_lo, cursor_hi = cursor_hi, min(hi, cursor_hi + span)
    return np.asarray(times_out, dtype=np.int64), rows_out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _EmulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and the
        # client's delayed ACK add about 40 ms to every response on a kept-alive connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("emulator: " + format, *args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        truncate = False
        if not url.path.startswith("/_emulator/"):
            with state.lock:
                state.by_route[f"{method} {url.path}"] += 1
        try:
            if url.path.startswith("/_emulator/"):
                reply = self._admin(method, url.path, body)
            elif method == "GET" and url.path == "/api/v3/klines":
                reply, truncate = self._market("binance", params, self._klines)
            elif method == "GET" and url.path in ("/api/v3/ping", "/api/v3/time"):
                reply = _json_reply(200, {} if url.path.endswith("ping") else {"serverTime": state.clock.now_ms()})
            elif method == "GET" and (match := re.fullmatch(r"/v1/candles/minutes/(\d+)", url.path)):
                reply, truncate = self._market("upbit", params, lambda p: self._upbit_candles(int(match.group(1)), p))
            elif url.path in ("/v1/accounts", "/v1/orders", "/v1/orders/test", "/v1/order"):
                reply = self._upbit_exchange(method, url.path, params, body)
            elif method == "GET" and url.path.rstrip("/") == "/rss":
                reply = _json_reply(200, {"sources": state.news.sources()})
            elif method == "GET" and (match := re.fullmatch(r"/rss/([^/]+)", url.path)):
                reply = self._news(match.group(1))
            else:
                reply = _json_reply(404, {"error": f"no route for {method} {url.path}"})
        except ScenarioError as exc:
            reply = _json_reply(400, {"error": str(exc)})
        try:
            self._send(reply, truncate)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up waiting (a slow-feed scenario); there is no one left to answer.
            self.close_connection = True

    def _market(self, flavor: str, params: dict[str, str], handler: Callable[[dict[str, str]], Reply]) -> tuple[Reply, bool]:
        state = self.server.state
        if state.scenario.latency_s:
            time.sleep(state.scenario.latency_s)
        weight = klines_weight(_int_param(params.get("limit"), 500)) if flavor == "binance" else 1
        refused, headers, number = state.admit(flavor, weight)
        if refused is None and state.scenario.slow_responses.active(number):
            time.sleep(state.scenario.slow_responses.delay_s)
        reply = refused or handler(params)
        reply.headers.update(headers)
        with state.lock:
            state.by_status[str(reply.status)] += 1
        return reply, refused is None and state.scenario.truncated_bodies.active(number)

    def _news(self, source: str) -> Reply:
        news = self.server.state.news
        if source not in news.sources():
            return _json_reply(404, {"error": f"no feed {source!r}; known: {', '.join(news.sources())}"})
        if news.slow_s(source):
            time.sleep(news.slow_s(source))
        status, body, headers = news.respond(
            source, if_none_match=self.headers.get("If-None-Match"),
            if_modified_since=self.headers.get("If-Modified-Since"), now_ms=self.server.state.clock.now_ms(),
        )
        return Reply(status, body, headers)

    # -- Binance ---------------------------------------------------------------------------
    def _klines(self, params: dict[str, str]) -> Reply:
        state = self.server.state
        symbol = params.get("symbol", "")
        if not symbol:
            return _binance_error(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if not _SYMBOL.match(symbol):
            return _binance_error(400, -1121, "Invalid symbol.")
        interval_ms = BINANCE_INTERVALS_MS.get(params.get("interval", ""))
        if interval_ms is None:
            return _binance_error(400, -1120, "Invalid interval.")
        try:
            limit = _int_param(params.get("limit"), 500)
            start = _int_param(params.get("startTime"), None)
            end = _int_param(params.get("endTime"), None)
        except ValueError as exc:
            return _binance_error(400, -1100, f"Illegal characters found in a parameter: {exc}")
        if not 1 <= limit <= 1000:
            return _binance_error(400, -1130, "Data sent for parameter 'limit' is not valid.")
        if start is not None and end is not None and start > end:
            return _binance_error(400, -1023, "Start time is greater than end time.")
        now = state.clock.now_ms()
        hi = min(end if end is not None else now, now) + 1
        # With startTime the oldest bars from there; without it the newest bars before endTime.
        newest = start is None
        lo = _LISTING_MS if newest else -(-start // interval_ms) * interval_ms

        def fetch(a: int, b: int) -> tuple[np.ndarray, list[str]]:
            return state.market.binance_rows(symbol, interval_ms, a, b)

        times, rows = _select(fetch, lambda t: state.visible(symbol, interval_ms, t, now), lo, hi, limit,
                              limit * interval_ms, newest=newest)
        if newest:
            times, rows = times[::-1], rows[::-1]
        hide = state.consume_withheld(symbol, times)
        rows = [r for r, h in zip(rows, hide, strict=True) if not h]
        times = times[~hide]
        rows = self._apply_row_faults(symbol, interval_ms, times, rows, fetch, now, lo if start is not None else None)
        return Reply(200, ("[" + ",".join(rows) + "]").encode(), {"Content-Type": "application/json;charset=UTF-8"})

    def _apply_row_faults(self, symbol: str, interval_ms: int, times: np.ndarray, rows: list[str],
                          fetch: Callable, now: int, start: int | None) -> list[str]:  # noqa: ANN001
        scenario = self.server.state.scenario
        by_time = {m.open_ms: m.kind for m in scenario.malformed if m.symbol in (None, symbol)}
        if by_time:
            rows = [_malform(r, by_time[int(t)]) if int(t) in by_time else r for t, r in zip(times, rows, strict=True)]
        if scenario.duplicate_rows and start is not None:
            before_times, before_rows = fetch(start - scenario.duplicate_rows * interval_ms, start)
            keep = self.server.state.visible(symbol, interval_ms, before_times, now)
            rows = [r for r, k in zip(before_rows, keep, strict=True) if k] + rows
        if scenario.shuffle_rows and len(rows) > 1:
            rows = rows[:]
            random.Random(int(times[0]) if len(times) else 0).shuffle(rows)
        return rows

    # -- Upbit -----------------------------------------------------------------------------
    def _upbit_candles(self, unit: int, params: dict[str, str]) -> Reply:
        state = self.server.state
        if unit not in UPBIT_UNITS:
            return _upbit_error(400, "invalid_parameter", f"unit {unit} is not one of {UPBIT_UNITS}")
        market = params.get("market", "")
        if not _MARKET.match(market):
            return _upbit_error(404, "Code not found", "마켓을 찾지 못하였습니다.")
        try:
            count = _int_param(params.get("count"), 1)
        except ValueError:
            return _upbit_error(400, "invalid_parameter", "count must be an integer")
        if not 1 <= count <= 200:
            return _upbit_error(400, "invalid_parameter", "count must be between 1 and 200")
        now = state.clock.now_ms()
        interval_ms = unit * MINUTE_MS
        to = params.get("to")
        try:
            hi = _parse_upbit_to(to) if to else now + 1
        except ValueError:
            return _upbit_error(400, "invalid_parameter", f"to {to!r} is not ISO 8601 (yyyy-MM-dd'T'HH:mm:ss'Z')")
        hi = -(-min(hi, now + 1) // interval_ms) * interval_ms if to else hi

        def fetch(a: int, b: int) -> tuple[np.ndarray, list[str]]:
            return state.market.upbit_candles(market, unit, a, b)

        times, rows = _select(fetch, lambda t: state.visible(market, interval_ms, t, now), _LISTING_MS, hi, count,
                              max(count * interval_ms, 86_400_000), newest=True)
        hide = state.consume_withheld(market, times)
        rows = [r for r, h in zip(rows, hide, strict=True) if not h]
        return Reply(200, ("[" + ",".join(rows) + "]").encode(), {"Content-Type": "application/json;charset=UTF-8"})

    # -- Upbit exchange ----------------------------------------------------------------------
    def _upbit_exchange(self, method: str, path: str, params: dict[str, str], body: bytes) -> Reply:
        exchange = self.server.state.exchange
        now = self.server.state.clock.now_ms()
        routes = {("GET", "/v1/accounts"), ("POST", "/v1/orders"), ("POST", "/v1/orders/test"), ("GET", "/v1/order")}
        if (method, path) not in routes:
            return _upbit_error(405, "method_not_allowed", f"{method} {path} is not supported")
        if method == "POST":
            try:
                params = json.loads(body or b"{}")
            except ValueError:
                return _upbit_error(400, "invalid_json", "request body is not JSON")
            if not isinstance(params, dict):
                return _upbit_error(400, "invalid_json", "request body is not a JSON object")
        refused, remaining = exchange.remaining("order" if method == "POST" else "default", now)
        denied = refused or exchange.authenticate(self.headers.get("Authorization"), params)
        if denied is None:
            if path == "/v1/accounts":
                denied = exchange.accounts()
            elif path == "/v1/order":
                denied = exchange.lookup(params)
            else:
                denied = exchange.create(params, test=path.endswith("/test"), now_ms=now)
        status, payload = denied
        return _json_reply(status, payload, {"Remaining-Req": remaining})

    # -- admin -----------------------------------------------------------------------------
    def _admin(self, method: str, path: str, body: bytes) -> Reply:
        state = self.server.state
        if path == "/_emulator/health":
            return _json_reply(200, {"ok": True})
        if path == "/_emulator/stats":
            return _json_reply(200, state.stats())
        if path == "/_emulator/scenario" and method == "PUT":
            state.set_scenario(Scenario.from_dict(json.loads(body or b"{}")))
            return _json_reply(200, {"ok": True})
        if path == "/_emulator/reset" and method == "POST":
            state.set_scenario(Scenario())
            state.clock.freeze(None)
            return _json_reply(200, {"ok": True})
        if path == "/_emulator/clock" and method == "PUT":
            doc = json.loads(body or b"{}")
            if "advance_s" in doc:
                state.clock.advance(float(doc["advance_s"]))
            else:
                now = doc.get("now")
                state.clock.freeze(None if now is None else parse_time_ms(now, "now"))
            return _json_reply(200, {"now": state.clock.now_ms()})
        return _json_reply(404, {"error": f"no admin route {method} {path}"})

    def _send(self, reply: Reply, truncate: bool) -> None:
        self.send_response(reply.status)
        headers = {"Content-Type": "application/json", **reply.headers} if reply.body else reply.headers
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        if truncate:
            self.send_header("Connection", "close")
        self.end_headers()
        if truncate:
            # Promise the whole body, deliver half, hang up: a response cut mid-body.
            self.wfile.write(reply.body[: len(reply.body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(reply.body)


def _int_param(raw: str | None, default: int | None) -> int | None:
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"-?\d+", raw):
        raise ValueError(raw)
    return int(raw)


def _parse_upbit_to(raw: str) -> int:
    text = raw.strip().replace(" ", "T").replace("Z", "+00:00")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)  # Upbit reads an offset-less time as UTC
    return int(moment.timestamp() * 1000)


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


class _EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: EmulatorState) -> None:
        super().__init__(address, _Handler)
        self.state = state


class Emulator:
    """The emulator on a background thread: ``with Emulator() as emu: ... emu.url``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, scenario: Scenario | None = None,
                 upbit_keys: dict[str, str] | None = None) -> None:
        self.state = EmulatorState(scenario, upbit_keys)
        self._server = _EmulatorHTTPServer((host, port), self.state)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def clock(self) -> EmulatorClock:
        return self.state.clock

    def set_scenario(self, scenario: Scenario | dict[str, Any]) -> None:
        self.state.set_scenario(scenario if isinstance(scenario, Scenario) else Scenario.from_dict(scenario))

    def stats(self) -> dict[str, Any]:
        return self.state.stats()

    def start(self) -> Emulator:
        self._thread = threading.Thread(target=self._server.serve_forever, name="coinpilot-emulator", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
