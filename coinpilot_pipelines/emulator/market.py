"""The emulated market's bars, before any fault is applied.

Every series has one 1-minute source: the bundled recordings where they exist, the synthetic
generator elsewhere, scaled so the two meet without a jump (see `_continuity_knots`). Every
other interval is aggregated from that source: minutes and hours per UTC day (pre-rendered to
JSON text, so serving a page is a slice and a join), days, weeks and months from daily
summaries, and 1-second bars from a path through each minute's open, high, low and close.

The bar open at the emulator's "now" is never shown whole: `partial_summary` aggregates only what
has happened up to now, down to the fraction of the current minute.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache

import numpy as np

from coinpilot_pipelines.emulator import synthetic
from coinpilot_pipelines.emulator.recordings import binance_recordings, upbit_recordings
from coinpilot_pipelines.emulator.upbit_rules import round_to_krw_units

SECOND_MS = 1000
MINUTE_MS = 60_000
DAY_MS = 86_400_000
_EPOCH = date(1970, 1, 1)
FIRST_BAR_MS = (synthetic.LISTING_DATE - _EPOCH).days * DAY_MS  # no series has a bar before this


@dataclass(frozen=True)
class Grid:
    """A candle interval: fixed-length (``fixed_ms``, aligned ``offset_ms`` after the epoch) or
    calendar months (``fixed_ms == 0``)."""

    code: str
    fixed_ms: int
    offset_ms: int = 0

    def floor(self, t: int) -> int:
        if self.fixed_ms:
            return t - (t - self.offset_ms) % self.fixed_ms
        day = day_of(t)
        return _day_start_ms(day.replace(day=1))

    def next(self, opened: int) -> int:
        if self.fixed_ms:
            return opened + self.fixed_ms
        first = day_of(opened).replace(day=1)
        return _day_start_ms(first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1))

    def ceil(self, t: int) -> int:
        opened = self.floor(t)
        return opened if opened == t else self.next(opened)

    def nexts(self, opens: np.ndarray) -> np.ndarray:
        if self.fixed_ms:
            return opens + self.fixed_ms
        return np.array([self.next(int(t)) for t in opens], dtype=np.int64)

    @property
    def intraday(self) -> bool:
        """Bars that tile a UTC day (1m .. 12h): served from the per-day rendering."""
        return MINUTE_MS <= self.fixed_ms < DAY_MS and DAY_MS % self.fixed_ms == 0


def fixed(code: str, ms: int, offset_ms: int = 0) -> Grid:
    return Grid(code, ms, offset_ms)


WEEK = fixed("1w", 7 * DAY_MS, 4 * DAY_MS)  # 1970-01-05, the first Monday after the epoch
MONTH = Grid("1M", 0)


@dataclass(frozen=True)
class Minutes:
    """One UTC day of a series' 1m source: columns, plus the recorded bars' JSON served verbatim."""

    open_ms: np.ndarray
    o: np.ndarray
    h: np.ndarray
    low: np.ndarray
    c: np.ndarray
    v: np.ndarray
    q: np.ndarray
    n: np.ndarray
    verbatim: dict[int, str]
    price_decimals: int
    volume_decimals: int
    krw_units: bool = False  # prices on Upbit's KRW price units rather than to a number of decimals

    def round_price(self, x: float) -> float:
        return float(round_to_krw_units(np.array(x))) if self.krw_units else round(x, self.price_decimals)


@dataclass(frozen=True)
class Summary:
    """One bar aggregated from the source: open, high, low, close, volumes, trades."""

    o: float
    h: float
    low: float
    c: float
    v: float
    q: float
    n: int

    def then(self, later: Summary | None) -> Summary:
        if later is None:
            return self
        return Summary(self.o, max(self.h, later.h), min(self.low, later.low), later.c, self.v + later.v,
                       self.q + later.q, self.n + later.n)


@dataclass(frozen=True)
class RenderedDay:
    """One UTC day of one series at one interval: ascending open times and each bar's JSON text."""

    open_ms: np.ndarray
    rows: list[str]


def day_of(epoch_ms: int) -> date:
    return _EPOCH + timedelta(days=epoch_ms // DAY_MS)


def _day_start_ms(day: date) -> int:
    return (day - _EPOCH).days * DAY_MS


def _binance_row(t: int, o: str, h: str, low: str, c: str, v: str, close_ms: int, q: str, n: int) -> str:
    # Taker buys are not modelled: half of each bar's volume, in base and in quote.
    half_v, half_q = f"{float(v) / 2:.8f}", f"{float(q) / 2:.8f}"
    return f'[{t},"{o}","{h}","{low}","{c}","{v}",{close_ms},"{q}",{n},"{half_v}","{half_q}","0"]'


def binance_kline(t: int, close_ms: int, bar: Summary, decimals: int) -> str:
    def price(x: float) -> str:
        return f"{round(x, decimals):.8f}"

    return _binance_row(t, price(bar.o), price(bar.h), price(bar.low), price(bar.c), f"{bar.v:.8f}", close_ms,
                        f"{bar.q:.8f}", int(bar.n))


def _aggregate(open_ms: np.ndarray, o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray,
               v: np.ndarray, q: np.ndarray, n: np.ndarray, interval_ms: int) -> tuple[np.ndarray, ...]:
    """Roll 1m bars up to a longer interval (bars present only; a missing minute is skipped)."""
    bucket = open_ms - open_ms % interval_ms
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(bucket)]
    return (
        bucket[starts], o[starts], np.maximum.reduceat(h, starts), np.minimum.reduceat(low, starts),
        c[ends - 1], np.add.reduceat(v, starts), np.add.reduceat(q, starts), np.add.reduceat(n, starts),
    )


def _path(o: float, h: float, low: float, c: float, seconds: np.ndarray | float) -> np.ndarray:
    """The price inside a minute: open, then the extreme away from the close, the other extreme,
    the close (at 0, 20, 40 and 60 s), straight lines in between."""
    first, second = (low, h) if c >= o else (h, low)
    return np.interp(seconds, (0.0, 20.0, 40.0, 60.0), (o, first, second, c))


def partial_minute(m: Minutes, i: int, elapsed_ms: int) -> Summary:
    """Minute ``i`` as it stands ``elapsed_ms`` after it opened: only what has traded so far."""
    x = elapsed_ms / 1000
    nodes = [s for s in (20.0, 40.0) if s <= x]
    prices = _path(m.o[i], m.h[i], m.low[i], m.c[i], np.array([0.0, *nodes, x]))
    close, high, lowest = (m.round_price(float(p)) for p in (prices[-1], prices.max(), prices.min()))
    lot = 10 ** m.volume_decimals
    volume = math.floor(m.v[i] * x / 60 * lot) / lot
    return Summary(float(m.o[i]), high, lowest, close, volume, round(volume * (high + lowest + close) / 3, 8),
                   int(m.n[i] * x // 60))


def _continuity_knots(spans: list[tuple[int, float, int, float]], raw_open: Callable[[int], float | None]
                      ) -> tuple[np.ndarray, np.ndarray] | None:
    """Log price factors that make the synthetic series meet each recorded span ``[A, B)``: before
    ``A`` it is scaled to open at the recording's first open, from ``B`` on to open at its last
    close, and between two recordings the factor moves linearly from one to the next."""
    knots_t: list[int] = []
    knots_v: list[float] = []
    for start, first_open, end, last_close in sorted(spans):
        for t, price in ((start, first_open), (end, last_close)):
            raw = raw_open(t)
            if raw is not None and raw > 0 and price > 0:
                knots_t.append(t)
                knots_v.append(math.log(price / raw))
    return (np.array(knots_t, dtype=np.float64), np.array(knots_v)) if knots_t else None


def _merged(spans: list[tuple[int, float, int, float]]) -> list[tuple[int, float, int, float]]:
    """Adjacent recordings (one ends where the next starts) are one span."""
    merged: list[tuple[int, float, int, float]] = []
    for span in sorted(spans):
        if merged and merged[-1][2] == span[0]:
            merged[-1] = (merged[-1][0], merged[-1][1], span[2], span[3])
        else:
            merged.append(span)
    return merged


class MarketReplay:
    """Recorded and synthetic bars for the Binance and Upbit endpoints (thread-safe, LRU-cached)."""

    def __init__(self, cache_days: int = 800) -> None:
        self._cache: OrderedDict[tuple, object] = OrderedDict()
        self._cache_days = cache_days
        self._lock = threading.Lock()
        self._daily: dict[tuple, Summary | None] = {}  # small and reused by every long interval: never evicted

    # -- the 1m source -----------------------------------------------------------------------
    def minutes(self, flavor: str, symbol: str, day: date) -> Minutes | None:
        return self._cached(("minutes", flavor, symbol, day),
                            lambda: (self._binance_minutes if flavor == "binance" else self._upbit_minutes)(symbol, day))

    def _cached(self, key: tuple, make: Callable[[], object]):  # noqa: ANN202 - whatever make returns
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        value = make()
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > self._cache_days * 4:
                self._cache.popitem(last=False)
        return value

    def _scaled_synthetic(self, flavor: str, symbol: str, day: date, keep: Callable[[np.ndarray], np.ndarray]
                          ) -> tuple[list[np.ndarray], int, int] | None:
        """The day's synthetic minutes where ``keep`` holds, scaled to meet the recordings: columns
        (open time, o, h, l, c, volume, quote volume, trades), price decimals, lot decimals."""
        bars = synthetic.day_bars(symbol, day)
        if bars is None:
            return None
        chosen = keep(bars.open_ms)
        knots = _knots(flavor, symbol)
        factor = np.exp(np.interp(bars.open_ms[chosen], *knots)) if knots is not None else 1.0
        prices = [a[chosen] * factor for a in (bars.open, bars.high, bars.low, bars.close)]
        decimals = synthetic.price_decimals(float(np.mean(prices[3]))) if chosen.any() else bars.price_decimals
        if flavor == "upbit" and _split(symbol)[0] == "KRW":
            prices = [round_to_krw_units(p) for p in prices]
        else:
            prices = [np.round(p, decimals) for p in prices]
        o, h, low, c = prices
        v = bars.volume[chosen]
        q = np.round(v * (h + low + c) / 3, 8)
        return [bars.open_ms[chosen], o, h, low, c, v, q, bars.trades[chosen]], decimals, bars.volume_decimals

    def _binance_minutes(self, symbol: str, day: date) -> Minutes | None:
        start, end = _day_start_ms(day), _day_start_ms(day) + DAY_MS
        recording = binance_recordings().get(symbol)
        recorded = {}
        if recording is not None and recording.start_ms < end and start < recording.end_ms:
            recorded = {t: row for t, row in recording.rows.items() if start <= t < end}
        outside = (lambda t: np.ones(len(t), bool)) if recording is None else (
            lambda t: (t < recording.start_ms) | (t >= recording.end_ms))
        made = self._scaled_synthetic("binance", symbol, day, outside)
        rows = [(r[0], *(float(r[i]) for i in (1, 2, 3, 4, 5, 7)), r[8]) for r in recorded.values()]
        decimals = max((_decimals(r[4]) for r in list(recorded.values())[:50]), default=8)
        verbatim = {t: json.dumps(r, separators=(",", ":")) for t, r in recorded.items()}
        return _minutes(made, rows, verbatim, decimals)

    def _upbit_minutes(self, market: str, day: date) -> Minutes | None:
        start, end = _day_start_ms(day), _day_start_ms(day) + DAY_MS
        spans = [r for r in upbit_recordings() if r.unit == 1 and market == "KRW-BTC"]
        recorded: dict[int, dict] = {}
        for recording in spans:
            recorded.update({t: c for t, c in recording.candles.items() if start <= t < end})

        def outside(t: np.ndarray) -> np.ndarray:
            keep = np.ones(len(t), bool)
            for recording in spans:
                keep &= (t < recording.start_ms) | (t >= recording.end_ms)
            return keep

        made = self._scaled_synthetic("upbit", market, day, outside)
        if made is not None:
            columns, _, lots = made
            traded = columns[5] > 0  # Upbit makes no candle for a minute without trades
            made = [a[traded] for a in columns], 0, max(lots, 8)
        rows = [(t, float(c["opening_price"]), float(c["high_price"]), float(c["low_price"]), float(c["trade_price"]),
                 float(c["candle_acc_trade_volume"]), float(c["candle_acc_trade_price"]), 0) for t, c in recorded.items()]
        verbatim = {t: json.dumps(c, separators=(",", ":"), ensure_ascii=False) for t, c in recorded.items()}
        return _minutes(made, rows, verbatim, 0, krw_units=_split(market)[0] == "KRW")

    # -- summaries: a day, or any stretch up to now ------------------------------------------
    def daily(self, flavor: str, symbol: str, day: date) -> Summary | None:
        key = (flavor, symbol, day)
        if key not in self._daily:
            m = self.minutes(flavor, symbol, day)
            self._daily[key] = None if m is None or not len(m.open_ms) else _summary_of(m, slice(None))
        return self._daily[key]

    def summary(self, flavor: str, symbol: str, lo: int, hi: int, now: int | None = None) -> Summary | None:
        """The bar aggregated over ``[lo, hi)``; with ``now`` inside it, only up to ``now``."""
        cut = hi if now is None else min(hi, now - now % MINUTE_MS)  # the open minute comes last, in part
        result: Summary | None = None
        t = lo
        while t < cut:
            day_start = t - t % DAY_MS
            day_end = day_start + DAY_MS
            if t == day_start and day_end <= cut:
                piece = self.daily(flavor, symbol, day_of(t))
            else:
                piece = self._minutes_summary(flavor, symbol, t, min(day_end, cut))
            result = piece if result is None else result.then(piece)
            t = day_end
        if now is not None and lo <= now < hi:
            result = _then(result, self._open_minute(flavor, symbol, now))
        return result

    def _minutes_summary(self, flavor: str, symbol: str, lo: int, hi: int) -> Summary | None:
        m = self.minutes(flavor, symbol, day_of(lo))
        if m is None:
            return None
        a, b = np.searchsorted(m.open_ms, [lo, hi], side="left")
        return _summary_of(m, slice(a, b)) if b > a else None

    def _open_minute(self, flavor: str, symbol: str, now: int) -> Summary | None:
        opened = now - now % MINUTE_MS
        m = self.minutes(flavor, symbol, day_of(opened))
        if m is None or now == opened:
            return None
        i = int(np.searchsorted(m.open_ms, opened))
        if i >= len(m.open_ms) or m.open_ms[i] != opened:
            return None
        return partial_minute(m, i, now - opened)

    # -- Binance ---------------------------------------------------------------------------
    def binance_rows(self, symbol: str, grid: Grid, start_ms: int, end_ms: int) -> tuple[np.ndarray, list[str]]:
        """Open times and kline JSON of every bar with open time in ``[start_ms, end_ms)``."""
        if grid.intraday:
            return self._range(lambda day: self._binance_day(symbol, grid, day), start_ms, end_ms)
        if grid.fixed_ms == SECOND_MS:
            return self._seconds(symbol, start_ms, end_ms)
        return self._long(symbol, grid, start_ms, end_ms,
                          lambda t, bar, decimals: binance_kline(t, grid.next(t) - 1, bar, decimals))

    def binance_price_decimals(self, symbol: str, at_ms: int) -> int:
        m = self.minutes("binance", symbol, day_of(at_ms))
        return 8 if m is None else m.price_decimals

    def _range(self, render: Callable[[date], RenderedDay], start_ms: int, end_ms: int) -> tuple[np.ndarray, list[str]]:
        times: list[np.ndarray] = []
        rows: list[str] = []
        day = day_of(max(start_ms, FIRST_BAR_MS))
        while _day_start_ms(day) < end_ms:
            rendered = render(day)
            lo, hi = np.searchsorted(rendered.open_ms, [start_ms, end_ms], side="left")
            times.append(rendered.open_ms[lo:hi])
            rows.extend(rendered.rows[lo:hi])
            day += timedelta(days=1)
        return (np.concatenate(times) if times else np.empty(0, np.int64)), rows

    def _binance_day(self, symbol: str, grid: Grid, day: date) -> RenderedDay:
        def make() -> RenderedDay:
            m = self.minutes("binance", symbol, day)
            if m is None or not len(m.open_ms):
                return RenderedDay(np.empty(0, np.int64), [])
            if grid.fixed_ms == MINUTE_MS:
                rows = [m.verbatim.get(int(t)) or _binance_row(
                    int(t), f"{m.o[i]:.8f}", f"{m.h[i]:.8f}", f"{m.low[i]:.8f}", f"{m.c[i]:.8f}", f"{m.v[i]:.8f}",
                    int(t) + MINUTE_MS - 1, f"{m.q[i]:.8f}", int(m.n[i])) for i, t in enumerate(m.open_ms)]
                return RenderedDay(m.open_ms, rows)
            t, o, h, low, c, v, q, n = _aggregate(m.open_ms, m.o, m.h, m.low, m.c, m.v, m.q, m.n, grid.fixed_ms)
            rows = [binance_kline(int(t[i]), int(t[i]) + grid.fixed_ms - 1,
                                  Summary(o[i], h[i], low[i], c[i], v[i], q[i], int(n[i])), m.price_decimals)
                    for i in range(len(t))]
            return RenderedDay(t.astype(np.int64), rows)
        return self._cached(("binance", symbol, grid.code, day), make)

    def _seconds(self, symbol: str, start_ms: int, end_ms: int) -> tuple[np.ndarray, list[str]]:
        """1s klines: each minute's 60 seconds along its path; they add up to the minute."""
        times: list[int] = []
        rows: list[str] = []
        minute = max(start_ms, FIRST_BAR_MS) - max(start_ms, FIRST_BAR_MS) % MINUTE_MS
        while minute < end_ms:
            m = self.minutes("binance", symbol, day_of(minute))
            i = -1 if m is None else int(np.searchsorted(m.open_ms, minute))
            if m is not None and i < len(m.open_ms) and m.open_ms[i] == minute:
                for t, row in _second_rows(m, i):
                    if start_ms <= t < end_ms:
                        times.append(t)
                        rows.append(row)
            minute += MINUTE_MS
        return np.asarray(times, dtype=np.int64), rows

    def _long(self, symbol: str, grid: Grid, start_ms: int, end_ms: int,
              render: Callable[[int, Summary, int], str], flavor: str = "binance") -> tuple[np.ndarray, list[str]]:
        """Bars of a day or longer, each aggregated from daily summaries."""
        times: list[int] = []
        rows: list[str] = []
        t = grid.ceil(max(start_ms, FIRST_BAR_MS)) if start_ms > FIRST_BAR_MS else grid.floor(FIRST_BAR_MS)
        while t < end_ms:
            bar = self.summary(flavor, symbol, t, grid.next(t))
            if bar is not None:
                times.append(t)
                m = self.minutes(flavor, symbol, day_of(max(t, FIRST_BAR_MS)))
                rows.append(render(t, bar, 8 if m is None else m.price_decimals))
            t = grid.next(t)
        return np.asarray(times, dtype=np.int64), rows

    # -- Upbit -----------------------------------------------------------------------------
    def upbit_candles(self, market: str, unit: int, start_ms: int, end_ms: int) -> tuple[np.ndarray, list[str]]:
        """Open times and minute-candle JSON with open time in ``[start_ms, end_ms)``; trade-less minutes absent."""
        return self._range(lambda day: self._upbit_day(market, unit, day), start_ms, end_ms)

    def upbit_long(self, market: str, grid: Grid, start_ms: int, end_ms: int,
                   render: Callable[[int, Summary, int], str]) -> tuple[np.ndarray, list[str]]:
        return self._long(market, grid, start_ms, end_ms, render, flavor="upbit")

    def _upbit_day(self, market: str, unit: int, day: date) -> RenderedDay:
        def make() -> RenderedDay:
            start, end = _day_start_ms(day), _day_start_ms(day) + DAY_MS
            m = self.minutes("upbit", market, day)
            merged: dict[int, str] = {}
            if m is not None and len(m.open_ms):
                if unit == 1:
                    merged = {int(t): m.verbatim.get(int(t)) or upbit_minute_candle(
                        market, unit, int(t), Summary(m.o[i], m.h[i], m.low[i], m.c[i], m.v[i], m.q[i], int(m.n[i])))
                        for i, t in enumerate(m.open_ms)}
                else:
                    t, o, h, low, c, v, q, n = _aggregate(m.open_ms, m.o, m.h, m.low, m.c, m.v, m.q, m.n,
                                                          unit * MINUTE_MS)
                    merged = {int(t[i]): upbit_minute_candle(market, unit, int(t[i]),
                                                             Summary(o[i], h[i], low[i], c[i], v[i], q[i], int(n[i])))
                              for i in range(len(t))}
            # Where a real response of this unit was recorded, it is served as recorded (where 1m
            # candles are recorded too, rolling them up gives the same candles).
            for recording in upbit_recordings():
                if recording.unit == unit != 1 and market == "KRW-BTC" and recording.start_ms < end and start < recording.end_ms:
                    merged = {t: row for t, row in merged.items() if not recording.start_ms <= t < recording.end_ms}
                    merged.update({t: json.dumps(c, separators=(",", ":"), ensure_ascii=False)
                                   for t, c in recording.candles.items() if start <= t < end})
            order = sorted(merged)
            return RenderedDay(np.asarray(order, dtype=np.int64), [merged[t] for t in order])
        return self._cached(("upbit", market, unit, day), make)


def _then(first: Summary | None, later: Summary | None) -> Summary | None:
    return later if first is None else first.then(later)


def _summary_of(m: Minutes, part: slice) -> Summary:
    return Summary(float(m.o[part][0]), float(m.h[part].max()), float(m.low[part].min()), float(m.c[part][-1]),
                   float(m.v[part].sum()), float(m.q[part].sum()), int(m.n[part].sum()))


def _minutes(made: tuple[list[np.ndarray], int, int] | None, recorded: list[tuple], verbatim: dict[int, str],
             recorded_decimals: int, *, krw_units: bool = False) -> Minutes | None:
    """Synthetic columns and recorded rows ``(t, o, h, l, c, v, q, n)`` as one day, in time order."""
    if made is None and not recorded:
        return None
    parts = [np.array([row[k] for row in recorded], dtype=np.int64 if k in (0, 7) else np.float64)
             for k in range(8)]
    decimals, lots = recorded_decimals, 8
    if made is not None:
        columns, decimals, lots = made
        decimals = max(decimals, recorded_decimals) if recorded else decimals
        parts = [np.concatenate([p, col]) for p, col in zip(parts, columns, strict=True)]
    order = np.argsort(parts[0], kind="stable")
    t, o, h, low, c, v, q, n = (p[order] for p in parts)
    return Minutes(t.astype(np.int64), o, h, low, c, v, q, n.astype(np.int64), verbatim, decimals, lots, krw_units)


def _decimals(text: str) -> int:
    """Places after the point that carry digits: "23140.48000000" has 2."""
    fraction = text.partition(".")[2].rstrip("0")
    return len(fraction)


def _second_rows(m: Minutes, i: int) -> list[tuple[int, str]]:
    prices = np.round(_path(m.o[i], m.h[i], m.low[i], m.c[i], np.arange(61, dtype=np.float64)), m.price_decimals)
    step = 10 ** -m.volume_decimals
    volumes = np.full(60, math.floor(m.v[i] / 60 / step) * step)
    volumes[-1] = round(m.v[i] - volumes[:-1].sum(), m.volume_decimals)  # the seconds add up to the minute
    trades = np.full(60, int(m.n[i]) // 60) + (np.arange(60) < int(m.n[i]) % 60)
    opened = int(m.open_ms[i])
    rows = []
    for s in range(60):
        o, c = prices[s], prices[s + 1]
        bar = Summary(o, max(o, c), min(o, c), c, volumes[s], volumes[s] * (max(o, c) + min(o, c) + c) / 3, int(trades[s]))
        t = opened + s * SECOND_MS
        rows.append((t, binance_kline(t, t + SECOND_MS - 1, bar, m.price_decimals)))
    return rows


def _split(symbol: str) -> tuple[str, str]:
    """(quote, base) of an Upbit market ``QUOTE-BASE``."""
    quote, _, base = symbol.partition("-")
    return quote, base


@lru_cache(maxsize=64)
def _knots(flavor: str, symbol: str) -> tuple[np.ndarray, np.ndarray] | None:
    if flavor == "binance":
        recording = binance_recordings().get(symbol)
        if recording is None:
            return None
        first, last = min(recording.rows), max(recording.rows)
        spans = [(recording.start_ms, float(recording.rows[first][1]), recording.end_ms, float(recording.rows[last][4]))]
    else:
        spans = [(r.start_ms, float(r.candles[min(r.candles)]["opening_price"]), r.end_ms,
                  float(r.candles[max(r.candles)]["trade_price"]))
                 for r in upbit_recordings() if r.unit == 1 and symbol == "KRW-BTC"]
        if not spans:
            return None
    return _continuity_knots(_merged(spans), lambda t: _raw_open(symbol, t))


def _raw_open(symbol: str, t: int) -> float | None:
    bars = synthetic.day_bars(symbol, day_of(t))
    return None if bars is None else float(bars.open[(t % DAY_MS) // MINUTE_MS])


def upbit_minute_candle(market: str, unit: int, t: int, bar: Summary) -> str:
    # Upbit stamps a candle with its latest write, sometimes after the bar ended (see the recordings).
    last_trade = t + (t // MINUTE_MS % 90) * 1000 + 317
    return json.dumps({**_upbit_candle_head(market, t, bar), "timestamp": last_trade,
                       "candle_acc_trade_price": round(bar.q, 5), "candle_acc_trade_volume": round(bar.v, 8),
                       "unit": unit}, separators=(",", ":"))


def _upbit_candle_head(market: str, t: int, bar: Summary) -> dict:
    opened = datetime.fromtimestamp(t / 1000, tz=timezone.utc)
    return {
        "market": market,
        "candle_date_time_utc": opened.strftime("%Y-%m-%dT%H:%M:%S"),
        "candle_date_time_kst": (opened + timedelta(hours=9)).strftime("%Y-%m-%dT%H:%M:%S"),
        "opening_price": upbit_number(bar.o), "high_price": upbit_number(bar.h),
        "low_price": upbit_number(bar.low), "trade_price": upbit_number(bar.c),
    }


def upbit_number(x: float) -> float | int:
    """Upbit prints whole KRW prices as integers-valued numbers (11471000.0) and keeps fractions."""
    return float(round(x, 8))


def upbit_period_candle(market: str, t: int, bar: Summary, previous_close: float | None, *, period: str | None,
                        last_trade_ms: int) -> str:
    """A day, week or month candle (``period`` names the field that gives its first day)."""
    doc = {**_upbit_candle_head(market, t, bar), "timestamp": last_trade_ms,
           "candle_acc_trade_price": round(bar.q, 5), "candle_acc_trade_volume": round(bar.v, 8)}
    if period is None:
        prev = bar.o if previous_close is None else previous_close
        doc.update(prev_closing_price=upbit_number(prev), change_price=upbit_number(bar.c - prev),
                   change_rate=round((bar.c - prev) / prev, 10) if prev else 0.0)
    else:
        doc[period] = datetime.fromtimestamp(t / 1000, tz=timezone.utc).strftime("%Y-%m-%d")
    return json.dumps(doc, separators=(",", ":"))
