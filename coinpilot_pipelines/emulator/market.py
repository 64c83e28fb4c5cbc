"""The emulated market's bars, before any fault is applied.

Binance klines and Upbit candles come from the bundled recordings where they exist and from the
synthetic generator elsewhere, pre-rendered to JSON text per UTC day so that serving a page is
a slice and a join.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from coinpilot_pipelines.emulator import synthetic
from coinpilot_pipelines.emulator.recordings import binance_recordings, upbit_recordings

MINUTE_MS = 60_000
DAY_MS = 86_400_000
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class RenderedDay:
    """One UTC day of one series: ascending open times and each bar's JSON text."""

    open_ms: np.ndarray
    rows: list[str]


def _day_of(epoch_ms: int) -> date:
    return _EPOCH + timedelta(days=epoch_ms // DAY_MS)


def _day_start_ms(day: date) -> int:
    return (day - _EPOCH).days * DAY_MS


def _binance_row(t: int, o: str, h: str, low: str, c: str, v: str, interval_ms: int, q: str, n: int,
                 taker_v: str, taker_q: str) -> str:
    return (f'[{t},"{o}","{h}","{low}","{c}","{v}",{t + interval_ms - 1},"{q}",{n},'
            f'"{taker_v}","{taker_q}","0"]')


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


class MarketReplay:
    """Recorded and synthetic bars for the Binance and Upbit endpoints (thread-safe, LRU-cached)."""

    def __init__(self, cache_days: int = 800) -> None:
        self._cache: OrderedDict[tuple, RenderedDay] = OrderedDict()
        self._cache_days = cache_days
        self._lock = threading.Lock()

    # -- Binance ---------------------------------------------------------------------------
    def binance_rows(self, symbol: str, interval_ms: int, start_ms: int, end_ms: int) -> tuple[np.ndarray, list[str]]:
        """Open times and kline JSON of every bar with open time in ``[start_ms, end_ms)``."""
        return self._range("binance", symbol, interval_ms, start_ms, end_ms)

    # -- Upbit -----------------------------------------------------------------------------
    def upbit_candles(self, market: str, unit: int, start_ms: int, end_ms: int) -> tuple[np.ndarray, list[str]]:
        """Open times and candle JSON with open time in ``[start_ms, end_ms)``; trade-less minutes absent."""
        return self._range("upbit", market, unit * MINUTE_MS, start_ms, end_ms)

    def _range(self, flavor: str, symbol: str, interval_ms: int, start_ms: int, end_ms: int) -> tuple[np.ndarray, list[str]]:
        times: list[np.ndarray] = []
        rows: list[str] = []
        day = _day_of(max(start_ms, 0))
        while _day_start_ms(day) < end_ms:
            rendered = self._day(flavor, symbol, interval_ms, day)
            lo, hi = np.searchsorted(rendered.open_ms, [start_ms, end_ms], side="left")
            times.append(rendered.open_ms[lo:hi])
            rows.extend(rendered.rows[lo:hi])
            day += timedelta(days=1)
        return (np.concatenate(times) if times else np.empty(0, np.int64)), rows

    def _day(self, flavor: str, symbol: str, interval_ms: int, day: date) -> RenderedDay:
        key = (flavor, symbol, interval_ms, day)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        rendered = (self._render_binance if flavor == "binance" else self._render_upbit)(symbol, interval_ms, day)
        with self._lock:
            self._cache[key] = rendered
            while len(self._cache) > self._cache_days:
                self._cache.popitem(last=False)
        return rendered

    def _render_binance(self, symbol: str, interval_ms: int, day: date) -> RenderedDay:
        start, end = _day_start_ms(day), _day_start_ms(day) + DAY_MS
        recording = binance_recordings().get(symbol)
        recorded = {}
        if recording is not None and recording.start_ms < end and start < recording.end_ms:
            recorded = {t: row for t, row in recording.rows.items() if start <= t < end}
        bars = synthetic.day_bars(symbol, day)
        synthetic_part = []
        if bars is not None:
            in_recording = (
                (bars.open_ms >= recording.start_ms) & (bars.open_ms < recording.end_ms)
                if recording is not None else np.zeros(len(bars.open_ms), bool)
            )
            synthetic_part = np.flatnonzero(~in_recording)
        if interval_ms == MINUTE_MS:
            merged: dict[int, str] = {t: json.dumps(row, separators=(",", ":")) for t, row in recorded.items()}
            if bars is not None:
                for i in synthetic_part:
                    t = int(bars.open_ms[i])
                    merged[t] = _binance_row(
                        t, f"{bars.open[i]:.8f}", f"{bars.high[i]:.8f}", f"{bars.low[i]:.8f}",
                        f"{bars.close[i]:.8f}", f"{bars.volume[i]:.8f}", MINUTE_MS,
                        f"{bars.quote_volume[i]:.8f}", int(bars.trades[i]),
                        f"{bars.volume[i] / 2:.8f}", f"{bars.quote_volume[i] / 2:.8f}",
                    )
            order = sorted(merged)
            return RenderedDay(np.asarray(order, dtype=np.int64), [merged[t] for t in order])
        return self._rollup_binance(recorded, bars, synthetic_part, interval_ms)

    def _rollup_binance(self, recorded: dict[int, list], bars, synthetic_part, interval_ms: int) -> RenderedDay:  # noqa: ANN001
        columns: dict[int, tuple[float, ...]] = {
            t: (float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5]), float(r[7]), r[8])
            for t, r in recorded.items()
        }
        if bars is not None:
            for i in synthetic_part:
                columns[int(bars.open_ms[i])] = (
                    bars.open[i], bars.high[i], bars.low[i], bars.close[i], bars.volume[i],
                    bars.quote_volume[i], int(bars.trades[i]),
                )
        if not columns:
            return RenderedDay(np.empty(0, np.int64), [])
        order = np.array(sorted(columns), dtype=np.int64)
        table = np.array([columns[int(t)] for t in order], dtype=np.float64)
        t, o, h, low, c, v, q, n = _aggregate(order, *table.T, interval_ms=interval_ms)
        decimals = synthetic.price_decimals(float(np.mean(c)))
        rows = [
            _binance_row(int(t[i]), f"{round(o[i], decimals):.8f}", f"{round(h[i], decimals):.8f}",
                         f"{round(low[i], decimals):.8f}", f"{round(c[i], decimals):.8f}", f"{v[i]:.8f}",
                         interval_ms, f"{q[i]:.8f}", int(n[i]), f"{v[i] / 2:.8f}", f"{q[i] / 2:.8f}")
            for i in range(len(t))
        ]
        return RenderedDay(t.astype(np.int64), rows)

    def _render_upbit(self, market: str, interval_ms: int, day: date) -> RenderedDay:
        unit = interval_ms // MINUTE_MS
        start, end = _day_start_ms(day), _day_start_ms(day) + DAY_MS
        covered = [r for r in upbit_recordings()
                   if r.unit == unit and market == "KRW-BTC" and r.start_ms < end and start < r.end_ms]
        merged: dict[int, str] = {}
        for recording in covered:
            merged.update({t: json.dumps(c, separators=(",", ":")) for t, c in recording.candles.items()
                           if start <= t < end})
        bars = synthetic.day_bars(market, day)
        if bars is not None:
            outside = np.ones(len(bars.open_ms), bool)
            for recording in covered:
                outside &= ~((bars.open_ms >= recording.start_ms) & (bars.open_ms < recording.end_ms))
            t, o, h, low, c, v, q, _ = _aggregate(
                bars.open_ms[outside], bars.open[outside], bars.high[outside], bars.low[outside],
                bars.close[outside], bars.volume[outside], bars.quote_volume[outside],
                bars.trades[outside].astype(np.float64), interval_ms=interval_ms,
            )
            for i in np.flatnonzero(v > 0):  # Upbit makes no candle for a minute without trades
                merged[int(t[i])] = _upbit_candle(market, unit, int(t[i]), o[i], h[i], low[i], c[i], v[i], q[i],
                                                  bars.price_decimals, bars.volume_decimals)
        order = sorted(merged)
        return RenderedDay(np.asarray(order, dtype=np.int64), [merged[t] for t in order])


def _upbit_candle(market: str, unit: int, t: int, o: float, h: float, low: float, c: float, v: float, q: float,
                  price_decimals: int, volume_decimals: int) -> str:
    opened = np.datetime64(t, "ms")
    kst = opened + np.timedelta64(9, "h")
    # Upbit stamps a candle with its latest write, sometimes after the bar ended (see the recordings).
    last_trade = t + (t // MINUTE_MS % 90) * 1000 + 317

    def price(x: float) -> float:
        return float(round(x, price_decimals)) if price_decimals else float(math.floor(x + 0.5))

    return json.dumps(
        {
            "market": market,
            "candle_date_time_utc": str(opened.astype("datetime64[s]")),
            "candle_date_time_kst": str(kst.astype("datetime64[s]")),
            "opening_price": price(o),
            "high_price": price(h),
            "low_price": price(low),
            "trade_price": price(c),
            "timestamp": last_trade,
            "candle_acc_trade_price": round(q, 5),
            "candle_acc_trade_volume": round(v, max(volume_decimals, 8)),
            "unit": unit,
        },
        separators=(",", ":"),
    )
