"""Upbit quotation API: ``GET /v1/candles/minutes/{unit}``.

Upbit answers newest first,
at most 200 candles per call, before an exclusive ``to``; the open time is
``candle_date_time_utc``. ``timestamp`` is the time of the candle's last trade, which can fall
after the candle ended, so it is never used as a time key.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime

import httpx
import numpy as np
import pandas as pd

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
    CandleBatch,
    CandleReject,
    build_candle_frame,
    closed_in_window,
    epoch_ms,
    invalid_decimal_mask,
)
from coinpilot_pipelines.market.intervals import Interval, from_ms, to_ms

log = logging.getLogger(__name__)

MAX_CANDLES_PER_PAGE = 200
MINUTE_UNITS = (1, 3, 5, 10, 15, 30, 60, 240)
_FIELDS = {
    "open": "opening_price",
    "high": "high_price",
    "low": "low_price",
    "close": "trade_price",
    "volume": "candle_acc_trade_volume",
    "quote_volume": "candle_acc_trade_price",
}
_REMAINING = re.compile(r"sec=(\d+)")


def pause_when_second_spent(gate: RequestGate, response: httpx.Response) -> None:
    """``Remaining-Req: group=candles; min=1799; sec=N``: at N = 0 this second's allowance is
    spent, so the next request waits for the next second."""
    match = _REMAINING.search(response.headers.get("Remaining-Req", ""))
    if match and int(match.group(1)) <= 0:
        gate.pause_for(1.0)


def minute_unit(interval: Interval) -> int:
    if interval.ms % 60_000 or interval.minutes not in MINUTE_UNITS:
        raise ValueError(f"Upbit has no {interval.code} minute candles (units: {MINUTE_UNITS})")
    return interval.minutes


def decode_exact(body: bytes) -> object:
    """JSON with every non-integer number kept as its literal text, so no float rounding."""
    return json.loads(body, parse_float=str)


class UpbitQuotationClient:
    exchange = "upbit"

    def __init__(
        self,
        base_url: str = "https://api.upbit.com",
        *,
        policy: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        now: Callable[[], datetime] = SYSTEM_CLOCK.now,
        sleep: Callable[[float], None] = time.sleep,
        shared_pause: SharedPause | None = None,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.base_url = base_url.rstrip("/")
        self._now = now
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=self.policy.timeout_s,
            transport=transport,
            verify=tls_context(),
            headers={"Accept": "application/json", "User-Agent": "coinpilot-pipelines"},
        )
        self.gate = RequestGate(sleep=sleep, shared=shared_pause)
        self.stats = RequestStats()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> UpbitQuotationClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _respect_remaining(self, response: httpx.Response) -> None:
        pause_when_second_spent(self.gate, response)

    def fetch_page(self, market: str, interval: Interval, to_ms_exclusive: int) -> list:
        try:
            payload, _ = self._request_page(market, interval, to_ms_exclusive)
        except ExchangeRequestError as exc:
            if exc.status == 404:  # Upbit: {"error": {"name": 404, "message": "Code not found"}}
                raise UnknownSymbolError(f"upbit lists no market {market!r}: {exc}", symbol=market,
                                         status=404) from None
            raise
        if not isinstance(payload, list):
            raise ValueError(f"upbit candles {market}: expected a JSON array, got {type(payload).__name__}")
        return payload

    def _request_page(self, market: str, interval: Interval, to_ms_exclusive: int) -> tuple[object, httpx.Response]:
        return request_json(
            self._http,
            "GET",
            f"/v1/candles/minutes/{minute_unit(interval)}",
            params={
                "market": market,
                "to": from_ms(to_ms_exclusive).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "count": MAX_CANDLES_PER_PAGE,
            },
            what=f"upbit candles {market} {interval.code} before {from_ms(to_ms_exclusive):%Y-%m-%d %H:%M}",
            policy=self.policy,
            gate=self.gate,
            decode=decode_exact,
            on_response=self._respect_remaining,
            stats=self.stats,
            sleep=self._sleep,
        )

    def fetch_candles(
        self,
        market: str,
        interval: Interval,
        start: datetime,
        end: datetime,
        *,
        chunk_rows: int = 50_000,
    ) -> Iterator[CandleBatch]:
        """Closed candles with open time in ``[start, end)``, walking back from ``end``."""
        start_ms, end_ms = interval.ceil_ms(to_ms(start)), interval.ceil_ms(to_ms(end))
        cursor = end_ms
        rows: list = []
        while cursor > start_ms:
            page = self.fetch_page(market, interval, cursor)
            if not page:
                break  # nothing older exists
            rows.extend(page)
            parsed = parse_candles(page, interval, now_ms=None)
            if parsed.frame.empty:
                raise ValueError(
                    f"upbit candles {market}: a page of {len(page)} rows before "
                    f"{from_ms(cursor):%Y-%m-%d %H:%M} has no parsable open time; cannot page on"
                )
            oldest = int(epoch_ms(parsed.frame["open_time"]).min())
            if oldest >= cursor:
                raise ValueError(f"upbit candles {market}: page before {from_ms(cursor)} did not move back in time")
            cursor = oldest
            if len(rows) >= chunk_rows:
                yield parse_candles(rows, interval, now_ms=to_ms(self._now()), window=(start_ms, end_ms))
                rows = []
        if rows:
            yield parse_candles(rows, interval, now_ms=to_ms(self._now()), window=(start_ms, end_ms))


def parse_candles(
    rows: list, interval: Interval, *, now_ms: int | None, window: tuple[int, int] | None = None
) -> CandleBatch:
    """Upbit candle objects (any order) to a `CandleBatch`; same rules as the Binance parser."""
    reasons: dict[int, list[str]] = {}
    records = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            reasons[i] = [f"malformed candle: expected an object, got {type(row).__name__}"]
            continue
        missing = [key for key in ("candle_date_time_utc", *_FIELDS.values()) if key not in row]
        if missing:
            reasons[i] = [f"malformed candle: missing {', '.join(missing)}"]
            continue
        records.append(i)

    index = np.asarray(records, dtype=np.int64)
    stamps = pd.to_datetime(
        pd.Series([rows[i]["candle_date_time_utc"] for i in records], dtype=object),
        format="%Y-%m-%dT%H:%M:%S",
        errors="coerce",
        utc=True,  # the field is UTC wall time without an offset
    )
    bad_time = stamps.isna().to_numpy()
    for position in np.flatnonzero(bad_time):
        i = int(index[position])
        reasons.setdefault(i, []).append(
            f"candle_date_time_utc {rows[i]['candle_date_time_utc']!r} is not yyyy-MM-ddTHH:mm:ss"
        )
    open_ms = np.where(bad_time, 0, stamps.to_numpy("datetime64[ms]", na_value=np.datetime64(0, "ms")).astype(np.int64))

    decimals: dict[str, pd.Series] = {}
    for name, key in _FIELDS.items():
        values = pd.Series([_number_text(rows[i][key]) for i in records], dtype=object)
        invalid = invalid_decimal_mask(values).to_numpy(copy=True)
        for position in np.flatnonzero(invalid):
            i = int(index[position])
            reasons.setdefault(i, []).append(f"{key} {rows[i][key]!r} is not a number")
        decimals[name] = values.astype("str")

    keep = np.array([int(i) not in reasons for i in index], dtype=bool)
    close_ms = open_ms + interval.ms - 1
    keep, open_bars = closed_in_window(keep, open_ms, close_ms, now_ms=now_ms, window=window)

    frame = build_candle_frame(
        open_time_ms=open_ms[keep],
        close_time_ms=close_ms[keep],
        decimals={name: decimals[name][keep] for name in _FIELDS},
        trade_count=[None] * int(keep.sum()),  # Upbit does not report a trade count
        raw_index=index[keep],
    )
    rejects = [
        CandleReject(raw_payload=rows[i], reason="; ".join(texts)) for i, texts in sorted(reasons.items())
    ]
    return CandleBatch(frame=frame, raw_rows=rows, rejects=rejects, open_bars=open_bars)


def _number_text(value: object) -> object:
    # Integers arrive as int (e.g. 11509000), fractions as their literal text via `decode_exact`.
    if type(value) is int:
        return str(value)
    return value
