"""The local exchange emulator: a real HTTP server on loopback.

Serves the Binance spot market data API (`emulator.binance_api`), Upbit's quotation API
(`emulator.upbit_api`) and exchange API (`emulator.upbit_exchange`) with their real semantics
(limits, paging bounds, ordering, headers, error bodies), for the symbols it is configured with
(`emulator.symbols`), the bundled news feeds at ``GET /rss/{source}`` (see `emulator.news`), and
plays the faults of the active `Scenario`. Every path under ``/api/`` answers in Binance's error
shape, every path under ``/v1/`` in Upbit's. Each exchange has its own rate limiter, as each is
its own server: a Binance ban does not stop Upbit requests. It runs as ``coinpilot emulator`` or
in-process on a background thread (`Emulator.start`). Admin endpoints under ``/_emulator/``
switch scenarios and the clock.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import numpy as np

from coinpilot_pipelines.emulator import binance_api, upbit_api
from coinpilot_pipelines.emulator.market import MINUTE_MS, Grid, MarketReplay
from coinpilot_pipelines.emulator.news import NewsReplay
from coinpilot_pipelines.emulator.replies import Reply, binance_error, json_reply, upbit_error
from coinpilot_pipelines.emulator.scenarios import Scenario, ScenarioError, parse_time_ms
from coinpilot_pipelines.emulator.symbols import ServedSymbols
from coinpilot_pipelines.emulator.upbit_exchange import DEFAULT_KEYS, UpbitExchange

log = logging.getLogger(__name__)

UPBIT_REQUESTS_PER_SECOND = 10
UPBIT_EXCHANGE_PATHS = ("/v1/accounts", "/v1/orders", "/v1/orders/test", "/v1/order", "/v1/orders/chance",
                        "/v1/orders/open", "/v1/orders/closed", "/v1/orders/uuids")
WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"


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
class Limiter:
    """One exchange's rate limit state: its bans, its weight minute, its requests this second.

    ``answered`` holds the connections refused since the limit began. HTTP/1.1 without pipelining
    sends a connection's next request only after its last answer was read, so a request on one of
    them read the refusal and came anyway; a request on any other connection may have been on its
    way before the client could know. Judging by connection, not by a grace in time, keeps an
    honest client on a slow machine from being banned for the few requests it had in flight.
    """

    banned_until_ms: int = 0
    answered: set[int] = field(default_factory=set)
    weight_used: int = 0
    weight_window: int = 0
    second: int = 0
    in_second: int = 0


class _UpbitMarketView:
    """What the Upbit exchange needs from the market: prices as of the emulator's now."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state

    def now_ms(self) -> int:
        return self._state.clock.now_ms()

    def last_price(self, market: str) -> Decimal:
        now = self.now_ms()
        bar = self._state.market.summary("upbit", market, now - 86_400_000, now + 1, now)
        if bar is None:
            raise ValueError(f"no {market} candles to price an order")
        return Decimal(str(bar.c))

    def reached(self, market: str, since_ms: int) -> tuple[Decimal, Decimal] | None:
        # From the minute after the order's: what traded before it arrived cannot fill it.
        now = self.now_ms()
        bar = self._state.market.summary("upbit", market, since_ms - since_ms % MINUTE_MS + MINUTE_MS, now + 1, now)
        return None if bar is None else (Decimal(str(bar.low)), Decimal(str(bar.h)))


class EmulatorState:
    """Everything the handler threads share: market data, scenario, clock, limiters and counters."""

    def __init__(self, scenario: Scenario | None = None, upbit_keys: dict[str, str] | None = None,
                 symbols: ServedSymbols | None = None) -> None:
        self.market = MarketReplay()
        self.clock = EmulatorClock()
        self.symbols = symbols or ServedSymbols()
        self.lock = threading.Lock()
        self.exchange = UpbitExchange(market_view=_UpbitMarketView(self), markets=self.symbols.upbit,
                                      keys=dict(upbit_keys or DEFAULT_KEYS))
        self.set_scenario(scenario or Scenario())

    def set_scenario(self, scenario: Scenario) -> None:
        self.exchange.scenario = scenario.upbit_exchange
        self.exchange.reset()
        with self.lock:
            self.scenario = scenario
            self.by_route: Counter[str] = Counter()
            self.news = NewsReplay(scenario.news)
            self.market_requests = 0
            self.by_status: Counter[str] = Counter()
            self.limiters = {"binance": Limiter(), "upbit": Limiter()}

    @property
    def weight_used(self) -> int:
        return self.limiters["binance"].weight_used

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

    # -- faults and limits of the market endpoints ------------------------------------------
    def admit(self, flavor: str, weight: int, connection: int,
              group: str = "candles") -> tuple[Reply | None, dict[str, str], int]:
        """Count the request, which came on ``connection``, against its exchange's limits and decide
        whether a fault answers it instead of the data. Binance's used weight is reported on every
        answer, refusals too."""
        scenario = self.scenario
        now = self.clock.now_ms()
        with self.lock:
            self.market_requests += 1
            number = self.market_requests
            limiter = self.limiters[flavor]
            refused = self._limited(flavor, limiter, scenario, weight, now, number, connection)
            headers = {WEIGHT_HEADER: str(limiter.weight_used)} if flavor == "binance" else {}
            if refused is None and flavor == "upbit":
                headers["Remaining-Req"] = f"group={group}; min=600; sec={max(UPBIT_REQUESTS_PER_SECOND - limiter.in_second, 0)}"
            if refused is None and scenario.server_errors.active(number):
                status = scenario.server_errors.status
                refused = (binance_error(status, -1001, "Internal error; unable to process your request.")
                           if flavor == "binance" else upbit_error(status, "server_error", "Internal server error."))
        return refused, headers, number

    def _limited(self, flavor: str, limiter: Limiter, scenario: Scenario, weight: int, now: int,
                 number: int, connection: int) -> Reply | None:
        if flavor == "binance":
            window = now // int(scenario.weight_window_s * 1000)
            if window != limiter.weight_window:
                limiter.weight_window, limiter.weight_used = window, 0
        if now < limiter.banned_until_ms:
            remaining_s = -(-(limiter.banned_until_ms - now) // 1000)
            if connection not in limiter.answered:
                # Possibly sent before the client could have read the 429: limited, not banned.
                limiter.answered.add(connection)
                return self._refuse(flavor, limiter, 429, remaining_s)
            # This connection was told to wait and sent again: banned, for longer.
            ban_s = max(2, 2 * remaining_s)
            limiter.banned_until_ms = now + ban_s * 1000
            return self._refuse(flavor, limiter, 418, ban_s)
        if scenario.rate_limit_storm.active(number):
            retry_s = scenario.rate_limit_storm.retry_after_s
            self._begin_limit(limiter, now + int(retry_s * 1000), connection)
            return self._refuse(flavor, limiter, 429, retry_s)
        if flavor == "binance":
            if limiter.weight_used + weight > scenario.weight_limit:
                window_end = (limiter.weight_window + 1) * int(scenario.weight_window_s * 1000)
                self._begin_limit(limiter, window_end, connection)
                return self._refuse(flavor, limiter, 429, -(-(window_end - now) // 1000))
            limiter.weight_used += weight
            return None
        second = now // 1000
        if second != limiter.second:
            limiter.second, limiter.in_second = second, 0
        limiter.in_second += 1
        if limiter.in_second > UPBIT_REQUESTS_PER_SECOND:
            return self._refuse(flavor, limiter, 429, None)
        return None

    @staticmethod
    def _begin_limit(limiter: Limiter, until_ms: int, connection: int) -> None:
        limiter.banned_until_ms = until_ms
        limiter.answered = {connection}

    def _refuse(self, flavor: str, limiter: Limiter, status: int, retry_after_s: float | None) -> Reply:
        headers = {} if retry_after_s is None else {"Retry-After": str(int(-(-retry_after_s // 1)))}
        if flavor == "binance":
            text = ("Too many requests; current limit of IP(127.0.0.1) request weight per minute is "
                    f"{self.scenario.weight_limit}." if status == 429 else
                    f"Way too much request weight used; IP banned until {limiter.banned_until_ms}. "
                    "Please use WebSocket Streams for live updates to avoid bans.")
            reply = binance_error(status, -1003, text)
        else:
            reply = upbit_error(status, "too_many_requests", "Too many API requests.")
        reply.headers.update(headers)
        return reply

    # -- which bars a response may show -------------------------------------------------------
    def visible(self, symbol: str, grid: Grid, times: np.ndarray, now: int) -> np.ndarray:
        keep = times <= now  # bars that have opened; the current one is still open
        for outage in self.scenario.outages:
            keep &= ~_window_mask(outage, symbol, times)
        if self.scenario.late:
            ends = grid.nexts(times)
            for late in self.scenario.late:
                keep &= ~(_window_mask(late.window, symbol, times) & (now < ends + late.delay_s * 1000))
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

    def select(self, fetch: Callable[[int, int], tuple[np.ndarray, list[str]]], symbol: str, grid: Grid,
               lo: int, hi: int, limit: int, span: int, now: int, *, newest: bool) -> tuple[np.ndarray, list[str]]:
        """Up to ``limit`` visible bars in ``[lo, hi)``, oldest-first from ``lo`` or newest-first from
        ``hi``. Fetches ``span`` of time at a time and keeps going while bars are missing, as an
        exchange walking its index would."""
        times_out: list[int] = []
        rows_out: list[str] = []
        cursor_lo, cursor_hi = (max(lo, hi - span), hi) if newest else (lo, min(hi, lo + span))
        while len(rows_out) < limit and cursor_lo < cursor_hi:
            times, rows = fetch(cursor_lo, cursor_hi)
            chosen = np.flatnonzero(self.visible(symbol, grid, times, now))
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


def _window_mask(window, symbol: str, times: np.ndarray) -> np.ndarray:  # noqa: ANN001
    if window.symbol is not None and window.symbol != symbol:
        return np.zeros(len(times), bool)
    return (times >= window.start_ms) & (times < window.end_ms)


def _request_params(query: str, body: bytes, content_type: str) -> tuple[dict[str, list[str]], str]:
    """Parameters from the query string and the body (form or JSON), and the query string as the
    client would have hashed it: the URL's, else the form body, else the JSON body urlencoded."""
    params = parse_qs(query, keep_blank_values=True)
    sent = query
    if body:
        text = body.decode("utf-8", "replace")
        if "json" in content_type or text.lstrip().startswith("{"):
            doc = json.loads(text)
            if not isinstance(doc, dict):
                raise ValueError("request body is not a JSON object")
            from_body = {k: [str(x) for x in v] if isinstance(v, list) else [str(v)] for k, v in doc.items()}
            body_query = urlencode([(k, x) for k, v in from_body.items() for x in v])
        else:
            from_body, body_query = parse_qs(text, keep_blank_values=True), text
        params = {**from_body, **params}  # a parameter in both: the query string's, as on the exchanges
        sent = sent or body_query
    return params, sent


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _EmulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and the
        # client's delayed ACK add about 40 ms to every response on a kept-alive connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connection_number = next(self.server.connection_numbers)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("emulator: " + format, *args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        truncate = False
        if not url.path.startswith("/_emulator/"):
            with state.lock:
                state.by_route[f"{method} {url.path}"] += 1
        try:
            if url.path.startswith("/_emulator/"):
                reply = self._admin(method, url.path, body)
            elif url.path.startswith("/api/"):
                reply, truncate = self._binance(method, url.path, url.query)
            elif url.path in UPBIT_EXCHANGE_PATHS:
                reply = self._upbit_exchange(method, url.path, url.query, body)
            elif url.path.startswith("/v1/"):
                reply, truncate = self._upbit_quotation(method, url.path, url.query)
            elif method == "GET" and url.path.rstrip("/") == "/rss":
                reply = json_reply(200, {"sources": state.news.sources()})
            elif method == "GET" and (match := re.fullmatch(r"/rss/([^/]+)", url.path)):
                reply = self._news(match.group(1))
            else:
                reply = binance_error(404, -1000, f"Unknown route {method} {url.path}.")
        except ScenarioError as exc:
            reply = json_reply(400, {"error": str(exc)})
        except Exception:  # a fault of the emulator itself: answer it as the exchange would, never hang up
            log.exception("emulator: %s %s failed", method, self.path)
            reply = (upbit_error(500, "server_error", "Internal server error.") if url.path.startswith("/v1/")
                     else binance_error(500, -1000, "An unknown error occurred while processing the request."))
        try:
            self._send(reply, truncate)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up waiting (a slow-feed scenario); there is no one left to answer.
            self.close_connection = True

    def _binance(self, method: str, path: str, query: str) -> tuple[Reply, bool]:
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        if method != "GET":  # still counted and answered with the used weight, as every Binance answer
            return self._market("binance", 1, lambda: binance_error(404, -1000, f"Unknown route {method} {path}."))
        return self._market("binance", binance_api.request_weight(path, params),
                            lambda: binance_api.handle(self.server.state, path, params))

    def _upbit_quotation(self, method: str, path: str, query: str) -> tuple[Reply, bool]:
        if method != "GET":
            return upbit_error(405, "method_not_allowed", f"{method} {path} is not supported"), False
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        return self._market("upbit", 1, lambda: upbit_api.handle(self.server.state, path, params),
                            group=upbit_api.rate_group(path))

    def _market(self, flavor: str, weight: int, handler: Callable[[], Reply], group: str = "candles") -> tuple[Reply, bool]:
        state = self.server.state
        if state.scenario.latency_s:
            time.sleep(state.scenario.latency_s)
        refused, headers, number = state.admit(flavor, weight, self.connection_number, group)
        if refused is None and state.scenario.slow_responses.active(number):
            time.sleep(state.scenario.slow_responses.delay_s)
        reply = refused or handler()
        reply.headers.update(headers)
        with state.lock:
            state.by_status[str(reply.status)] += 1
        return reply, refused is None and state.scenario.truncated_bodies.active(number)

    def _news(self, source: str) -> Reply:
        news = self.server.state.news
        if source not in news.sources():
            return json_reply(404, {"error": f"no feed {source!r}; known: {', '.join(news.sources())}"})
        if news.slow_s(source):
            time.sleep(news.slow_s(source))
        status, body, headers = news.respond(
            source, if_none_match=self.headers.get("If-None-Match"),
            if_modified_since=self.headers.get("If-Modified-Since"), now_ms=self.server.state.clock.now_ms(),
        )
        return Reply(status, body, headers)

    # -- Upbit exchange ----------------------------------------------------------------------
    def _upbit_exchange(self, method: str, path: str, query: str, body: bytes) -> Reply:
        exchange = self.server.state.exchange
        now = self.server.state.clock.now_ms()
        try:
            params, sent = _request_params(query, body, self.headers.get("Content-Type", ""))
        except ValueError as exc:
            return upbit_error(400, "invalid_json", f"request body is not understood: {exc}")
        refused, remaining = exchange.remaining("order" if method in ("POST", "DELETE") else "default", now)
        answer = refused or exchange.authenticate(self.headers.get("Authorization"), sent, params)
        if answer is None:
            answer = exchange.route(method, path, params, now)
        status, payload = answer
        return json_reply(status, payload, {"Remaining-Req": remaining})

    # -- admin -----------------------------------------------------------------------------
    def _admin(self, method: str, path: str, body: bytes) -> Reply:
        state = self.server.state
        if path == "/_emulator/health":
            return json_reply(200, {"ok": True})
        if path == "/_emulator/stats":
            return json_reply(200, state.stats())
        if path == "/_emulator/scenario" and method == "PUT":
            state.set_scenario(Scenario.from_dict(json.loads(body or b"{}")))
            return json_reply(200, {"ok": True})
        if path == "/_emulator/reset" and method == "POST":
            state.set_scenario(Scenario())
            state.clock.freeze(None)
            return json_reply(200, {"ok": True})
        if path == "/_emulator/clock" and method == "PUT":
            doc = json.loads(body or b"{}")
            if "advance_s" in doc:
                state.clock.advance(float(doc["advance_s"]))
            else:
                now = doc.get("now")
                state.clock.freeze(None if now is None else parse_time_ms(now, "now"))
            return json_reply(200, {"now": state.clock.now_ms()})
        return json_reply(404, {"error": f"no admin route {method} {path}"})

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


class _EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: EmulatorState) -> None:
        super().__init__(address, _Handler)
        self.state = state
        self.connection_numbers = itertools.count()  # next() on a count is atomic: safe across handler threads


class Emulator:
    """The emulator on a background thread: ``with Emulator() as emu: ... emu.url``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, scenario: Scenario | None = None,
                 upbit_keys: dict[str, str] | None = None, symbols: ServedSymbols | None = None) -> None:
        self.state = EmulatorState(scenario, upbit_keys, symbols)
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
