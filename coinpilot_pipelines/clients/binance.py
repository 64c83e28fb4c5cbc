"""Binance spot market data: ``GET /api/v3/klines`` and the kline stream payload.

The only module that builds Binance URLs or reads Binance payloads. Exchange times (epoch ms)
become UTC datetimes here, decimal strings stay exact text, and only closed bars come out.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from coinpilot_pipelines.clients.http import (
    ExchangeRequestError,
    RequestGate,
    RequestStats,
    RetryPolicy,
    SharedPause,
    UnknownSymbolError,
    request_json,
    tls_context,
)
from coinpilot_pipelines.clock import SYSTEM_CLOCK
from coinpilot_pipelines.market.candles import (
    DECIMAL_COLUMNS,
    DECIMAL_TEXT_PATTERN,
    CandleBatch,
    CandleReject,
    build_candle_frame,
    closed_in_window,
    invalid_decimal_mask,
)
from coinpilot_pipelines.market.intervals import Interval, from_ms, to_ms

log = logging.getLogger(__name__)

KLINES_PATH = "/api/v3/klines"
MAX_KLINES_PER_PAGE = 1000
WEIGHT_LIMIT_PER_MINUTE = 6000
WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
KLINE_FIELDS = 12
# Positions in a kline array: [openTime, open, high, low, close, volume, closeTime,
# quoteAssetVolume, numberOfTrades, takerBuyBaseVolume, takerBuyQuoteVolume, ignore].
_DECIMAL_POSITIONS = {"open": 1, "high": 2, "low": 3, "close": 4, "volume": 5, "quote_volume": 7}


# Binance's published weight of one spot klines request: 2 at any limit (since 2023-08-25; the
# 1/2/5/10-by-limit table is the futures API's).
KLINES_REQUEST_WEIGHT = 2
UNKNOWN_SYMBOL_CODE = -1121


class WeightBudget:
    """Keeps used request weight below the per-minute limit.

    Binance reports the weight used in the current minute on every response. Before the budget
    runs out (leaving room for the requests already in flight) every thread pauses until the
    minute window rolls over, so the client never walks into a 429 on its own.
    """

    def __init__(self, gate: RequestGate, *, limit: int, reserve: int, window_s: float,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._gate = gate
        self._limit = limit
        self._reserve = reserve
        self._window_s = window_s
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self.last_used = 0
        self.slowdowns = 0

    def observe(self, response: httpx.Response) -> None:
        raw = response.headers.get(WEIGHT_HEADER)
        if raw is None or not raw.strip().isdigit():
            return
        used = int(raw)
        with self._lock:
            self.last_used = used
            if used + self._reserve < self._limit:
                return
            self.slowdowns += 1
        until_window_end = self._window_s - (self._wall_clock() % self._window_s) + 0.05
        log.info("binance: weight %d of %d used this window; pausing %.1f s", used, self._limit,
                 until_window_end)
        self._gate.pause_for(until_window_end, f"request weight {used} of {self._limit} used")


class BinanceSpotClient:
    """Closed klines for ``[start, end)`` in pages of up to 1000, fetched a few at a time."""

    exchange = "binance"
    max_page_bars = MAX_KLINES_PER_PAGE

    def __init__(
        self,
        base_url: str = "https://api.binance.com",
        *,
        policy: RetryPolicy | None = None,
        weight_limit: int = WEIGHT_LIMIT_PER_MINUTE,
        weight_window_s: float = 60.0,
        max_in_flight: int = 4,
        transport: httpx.BaseTransport | None = None,
        now: Callable[[], datetime] = SYSTEM_CLOCK.now,
        sleep: Callable[[float], None] = time.sleep,
        shared_pause: SharedPause | None = None,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.base_url = base_url.rstrip("/")
        self.max_in_flight = max(1, max_in_flight)
        self._now = now
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=self.policy.timeout_s,
            transport=transport,
            verify=tls_context(),
            limits=httpx.Limits(max_connections=self.max_in_flight + 1),
            headers={"Accept": "application/json", "User-Agent": "coinpilot-pipelines"},
        )
        self.gate = RequestGate(sleep=sleep, shared=shared_pause)
        self.weight = WeightBudget(
            self.gate,
            limit=weight_limit,
            reserve=self.max_in_flight * KLINES_REQUEST_WEIGHT,
            window_s=weight_window_s,
        )
        self.stats = RequestStats()
        self._stats_lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BinanceSpotClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch_page(self, symbol: str, interval: Interval, start_ms: int, end_ms: int) -> bytes:
        """The raw klines body for open times in ``[start_ms, end_ms)`` (at most 1000 slots)."""
        stats = RequestStats()
        try:
            payload, _ = request_json(
                self._http,
                "GET",
                KLINES_PATH,
                params={
                    "symbol": symbol,
                    "interval": interval.code,
                    "startTime": start_ms,
                    "endTime": end_ms - 1,
                    "limit": MAX_KLINES_PER_PAGE,
                },
                what=f"binance klines {symbol} {interval.code} [{from_ms(start_ms):%Y-%m-%d %H:%M}, "
                f"{from_ms(end_ms):%Y-%m-%d %H:%M})",
                policy=self.policy,
                gate=self.gate,
                decode=whole_json_array,
                on_response=self.weight.observe,
                stats=stats,
                sleep=self._sleep,
            )
        except ExchangeRequestError as exc:
            if _error_code(exc.body) == UNKNOWN_SYMBOL_CODE:
                raise UnknownSymbolError(f"binance lists no symbol {symbol!r}: {exc}", symbol=symbol,
                                         status=exc.status) from None
            raise
        finally:
            with self._stats_lock:
                self.stats.merge(stats)
        return payload

    def parse_page(self, body: bytes, interval: Interval, start_ms: int, end_ms: int) -> CandleBatch:
        """The closed bars of a body `fetch_page` returned for ``[start_ms, end_ms)``."""
        return parse_kline_bodies([body], now_ms=to_ms(self._now()), window=(start_ms, end_ms), interval_ms=interval.ms)

    def fetch_candles(
        self,
        symbol: str,
        interval: Interval,
        start: datetime,
        end: datetime,
        *,
        chunk_rows: int = 50_000,
    ) -> Iterator[CandleBatch]:
        """Closed bars with open time in ``[start, end)``, in batches of about ``chunk_rows``.

        Page windows are fixed in advance (1000 grid slots each), so pages can be fetched in
        parallel and a missing stretch of bars cannot shift the paging.
        """
        start_ms, end_ms = interval.ceil_ms(to_ms(start)), interval.ceil_ms(to_ms(end))
        step = MAX_KLINES_PER_PAGE * interval.ms
        windows = [(s, min(s + step, end_ms)) for s in range(start_ms, end_ms, step)]
        bodies: list[bytes] = []
        for body in self._pages_in_order(symbol, interval, windows):
            bodies.append(body)
            if len(bodies) * MAX_KLINES_PER_PAGE >= chunk_rows:
                yield parse_kline_bodies(bodies, now_ms=to_ms(self._now()), window=(start_ms, end_ms),
                                         interval_ms=interval.ms)
                bodies = []
        if bodies:
            yield parse_kline_bodies(bodies, now_ms=to_ms(self._now()), window=(start_ms, end_ms),
                                     interval_ms=interval.ms)

    def _pages_in_order(self, symbol: str, interval: Interval, windows: list[tuple[int, int]]) -> Iterator[bytes]:
        if self.max_in_flight == 1 or len(windows) <= 1:
            for start_ms, end_ms in windows:
                yield self.fetch_page(symbol, interval, start_ms, end_ms)
            return
        with ThreadPoolExecutor(max_workers=self.max_in_flight, thread_name_prefix="binance-page") as pool:
            pending: deque[Future[bytes]] = deque()
            remaining = iter(windows)
            try:
                for start_ms, end_ms in remaining:
                    pending.append(pool.submit(self.fetch_page, symbol, interval, start_ms, end_ms))
                    if len(pending) >= self.max_in_flight:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:
                for future in pending:
                    future.cancel()


def _error_code(body: bytes) -> int | None:
    """The ``code`` of a Binance error body ``{"code": -1121, "msg": "..."}``, if it is one."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc.get("code") if isinstance(doc, dict) else None


def whole_json_array(body: bytes) -> bytes:
    """Accept a body only if it is exactly one complete JSON array of klines.

    A cut-off body is retried, not parsed. Bytes after the array (``[[...]] [[1]]``) make the
    body invalid as JSON: the fast path's shape test cannot see that, so any body with a second
    ``]]`` is checked by the JSON parser itself.
    """
    stripped = body.strip()
    if stripped == b"[]":
        return stripped
    if stripped.startswith(b"[[") and stripped.endswith(b"]]"):
        if stripped.find(b"]]") != len(stripped) - 2:
            json.loads(stripped)  # raises "Extra data" for a trailing document; else nested arrays, fine
        return stripped
    if stripped.startswith(b"["):
        raise ValueError("the JSON array is not closed (body cut short?)")
    raise ValueError(f"expected a JSON array of klines, got {stripped[:80]!r}")


class LazyRows(Sequence):
    """The decoded rows of some pages, decoded only if a refused row needs quarantining."""

    def __init__(self, bodies: list[bytes]) -> None:
        self._bodies = bodies
        self._rows: list | None = None

    def _decoded(self) -> list:
        if self._rows is None:
            self._rows = [row for body in self._bodies for row in json.loads(body)]
        return self._rows

    def __getitem__(self, index):  # noqa: ANN001, ANN204 - Sequence protocol
        return self._decoded()[index]

    def __len__(self) -> int:
        return len(self._decoded())


_CSV_NAMES = ["t", "o", "h", "l", "c", "v", "T", "q", "n", "bv", "bq", "ignore"]
_CSV_READ = pacsv.ReadOptions(column_names=_CSV_NAMES, use_threads=False, block_size=1 << 24)
_CSV_PARSE = pacsv.ParseOptions(quote_char='"', double_quote=False, escape_char=False, newlines_in_values=False)
_CSV_CONVERT = pacsv.ConvertOptions(
    column_types={"t": pa.int64(), "T": pa.int64(), "n": pa.int64(),
                  **{name: pa.string() for name in ("o", "h", "l", "c", "v", "q")}},
    include_columns=["t", "o", "h", "l", "c", "v", "T", "q", "n"],
    strings_can_be_null=False,
    quoted_strings_can_be_null=False,
)
_CSV_DECIMALS = {"open": "o", "high": "h", "low": "l", "close": "c", "volume": "v", "quote_volume": "q"}


def _columnar_klines(bodies: list[bytes]) -> pa.Table | None:
    """Well-formed pages straight to Arrow columns, without a Python object per field.

    Compact kline JSON is CSV once the row brackets become line breaks. Anything unusual (a
    field too many or too few, a non-integer time, text that is not a plain decimal) returns
    None and the caller takes the row-by-row path, which names each bad row's fault.
    """
    parts = [body[2:-2].replace(b"],[", b"\n") for body in bodies if body != b"[]"]
    if not parts:
        return None
    try:
        table = pacsv.read_csv(io.BytesIO(b"\n".join(parts)), read_options=_CSV_READ,
                               parse_options=_CSV_PARSE, convert_options=_CSV_CONVERT)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    for column in _CSV_DECIMALS.values():
        if not pc.all(pc.match_substring_regex(table[column], DECIMAL_TEXT_PATTERN)).as_py():
            return None
    return table


def parse_kline_bodies(bodies: list[bytes], *, now_ms: int | None, window: tuple[int, int] | None = None,
                       interval_ms: int | None = None) -> CandleBatch:
    """Whole klines response bodies to one `CandleBatch` (see `parse_kline_rows` for the rules)."""
    table = _columnar_klines(bodies)
    if table is None:
        rows: list = []
        for body in bodies:
            rows.extend(json.loads(body))
        return parse_kline_rows(rows, now_ms=now_ms, window=window, interval_ms=interval_ms)
    open_ms = table["t"].to_numpy()
    close_ms = table["T"].to_numpy()
    keep, open_bars = closed_in_window(np.ones(len(open_ms), dtype=bool), open_ms, close_ms, now_ms=now_ms,
                                       window=window, interval_ms=interval_ms)
    selection = pa.array(keep)
    frame = build_candle_frame(
        open_time_ms=open_ms[keep],
        close_time_ms=close_ms[keep],
        decimals={name: table[column].filter(selection) for name, column in _CSV_DECIMALS.items()},
        trade_count=table["n"].filter(selection).to_numpy(),
        raw_index=np.flatnonzero(keep),
    )
    return CandleBatch(frame=frame, raw_rows=LazyRows(bodies), open_bars=open_bars)


def parse_kline_rows(rows: list, *, now_ms: int | None, window: tuple[int, int] | None = None,
                     interval_ms: int | None = None) -> CandleBatch:
    """Kline arrays to a `CandleBatch`.

    Rows that are not well-formed klines become rejects with the reason. A row with fields after
    the twelve documented ones keeps its first twelve (an exchange may add fields; the extras
    are counted). Bars not yet closed at ``now_ms`` are counted and left out (``None``: the
    caller knows they are closed); with ``window``, bars outside it are ignored (they belong to
    another fetch).
    """
    reasons: dict[int, list[str]] = {}
    shaped = [i for i, row in enumerate(rows) if type(row) is list and len(row) >= KLINE_FIELDS]
    if len(shaped) != len(rows):
        for i in set(range(len(rows))).difference(shaped):
            reasons[i] = [f"malformed kline: expected a {KLINE_FIELDS}-element array, got {_describe(rows[i])}"]
    extra_fields = sum(len(rows[i]) > KLINE_FIELDS for i in shaped)
    good = [rows[i][:KLINE_FIELDS] for i in shaped] if extra_fields or len(shaped) != len(rows) else rows
    columns = list(zip(*good, strict=True)) if good else [()] * KLINE_FIELDS
    index = np.asarray(shaped, dtype=np.int64)

    def note(mask: np.ndarray, reason: Callable[[int], str]) -> None:
        for position in np.flatnonzero(mask):
            reasons.setdefault(int(index[position]), []).append(reason(int(index[position])))

    open_ms, bad_open = _int_column(columns[0])
    note(bad_open, lambda i: f"open time {rows[i][0]!r} is not an integer epoch-ms")
    close_ms, bad_close = _int_column(columns[6])
    note(bad_close, lambda i: f"close time {rows[i][6]!r} is not an integer epoch-ms")
    trades, bad_trades = _int_column(columns[8])
    note(bad_trades, lambda i: f"number of trades {rows[i][8]!r} is not an integer")
    decimals: dict[str, pd.Series] = {}
    for name in DECIMAL_COLUMNS:
        position = _DECIMAL_POSITIONS[name]
        values = pd.Series(columns[position])  # infers the str dtype when every value is text
        invalid = invalid_decimal_mask(values).to_numpy(copy=True)
        if values.dtype != "str":
            invalid |= ~values.map(type).eq(str).to_numpy()
        note(invalid, lambda i, p=position, n=name: f"{n} {rows[i][p]!r} is not a decimal string")
        decimals[name] = values

    keep = np.array([int(i) not in reasons for i in index], dtype=bool) if reasons else np.ones(len(index), bool)
    keep, open_bars = closed_in_window(keep, open_ms, close_ms, now_ms=now_ms, window=window, interval_ms=interval_ms)

    frame = build_candle_frame(
        open_time_ms=open_ms[keep],
        close_time_ms=close_ms[keep],
        decimals={name: decimals[name][keep] for name in DECIMAL_COLUMNS},
        trade_count=trades[keep],
        raw_index=index[keep],
    )
    rejects = [
        CandleReject(raw_payload=rows[i], reason="; ".join(texts), open_time=_open_time_or_none(rows[i]))
        for i, texts in sorted(reasons.items())
    ]
    return CandleBatch(frame=frame, raw_rows=rows, rejects=rejects, open_bars=open_bars, extra_fields=extra_fields)


def parse_ws_kline_message(message: dict) -> tuple[str, str, bool, CandleBatch]:
    """A kline stream event (``{"stream", "data": {"e": "kline", "k": {...}}}`` or bare ``data``).

    Returns ``(symbol, interval code, is_closed, batch)``. The batch holds the bar only when it is
    closed (``k.x``); an unfinished bar is counted in ``open_bars``.
    """
    data = message.get("data", message)
    if not isinstance(data, dict) or data.get("e") != "kline" or not isinstance(data.get("k"), dict):
        raise ValueError(f"not a kline event: {json.dumps(message)[:200]}")
    k = data["k"]
    row = [k.get(f) for f in ("t", "o", "h", "l", "c", "v", "T", "q", "n", "V", "Q", "B")]
    closed = k.get("x") is True
    batch = parse_kline_rows([row], now_ms=None)
    batch.raw_rows = [message]
    if not closed:
        batch.open_bars, batch.frame = len(batch.frame), batch.frame.iloc[0:0]
    return str(k.get("s")), str(k.get("i")), closed, batch


def _int_column(values: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Integers, and a mask of entries that are not JSON integers (floats, strings, bools)."""
    exact = np.fromiter((type(v) is int for v in values), dtype=bool, count=len(values))
    if exact.all():
        return np.array(values, dtype=np.int64), ~exact
    return np.array([v if type(v) is int else 0 for v in values], dtype=np.int64), ~exact


def _open_time_or_none(row: object) -> datetime | None:
    if isinstance(row, list) and row and type(row[0]) is int:
        return from_ms(row[0])
    return None


def _describe(row: object) -> str:
    if isinstance(row, list):
        return f"{len(row)} elements"
    return type(row).__name__
