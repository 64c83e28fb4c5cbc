"""The bundled real recordings (see data/PROVENANCE.md), loaded once and served verbatim."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from importlib import resources

import pandas as pd

DATA = resources.files("coinpilot_pipelines.emulator") / "data"


@dataclass(frozen=True)
class BinanceRecording:
    """A recorded 1m series served as Binance klines.

    ``rows`` maps open time (epoch ms) to the 12-element kline the emulator serves; the recorded
    open, high, low, close and volume are exact, the other fields are derived (see PROVENANCE.md).
    """

    symbol: str
    start_ms: int
    end_ms: int  # exclusive: the recording's last minute + 1 minute
    rows: dict[int, list]


def read_bundled_csv(name: str) -> pd.DataFrame:
    """A bundled CSV recording as text columns, exactly as recorded."""
    with (DATA / name).open("rb") as handle:
        return pd.read_csv(handle, compression="gzip", dtype=str, keep_default_na=False)


def _eight_places(text: str) -> str:
    return f"{Decimal(text):.8f}"


def _kline_rows(open_ms: pd.Series, frame: pd.DataFrame, trades_per_unit: Decimal, divide: bool) -> dict[int, list]:
    rows: dict[int, list] = {}
    for t, o, h, low, c, v in zip(open_ms, frame["open"], frame["high"], frame["low"], frame["close"],
                                  frame["volume"], strict=True):
        volume = Decimal(v)
        quote = volume * (Decimal(h) + Decimal(low) + Decimal(c)) / 3
        if volume == 0:
            trades = 0
        else:
            scaled = volume / trades_per_unit if divide else volume * trades_per_unit
            trades = max(1, int(scaled.to_integral_value()))
        rows[int(t)] = [
            int(t), _eight_places(o), _eight_places(h), _eight_places(low), _eight_places(c),
            _eight_places(v), int(t) + 59_999, f"{quote:.8f}", trades,
            f"{volume / 2:.8f}", f"{quote / 2:.8f}", "0",
        ]
    return rows


@lru_cache(maxsize=1)
def binance_recordings() -> dict[str, BinanceRecording]:
    btc = read_bundled_csv("binance_us_BTCUSDT_1m_20230301_20230321.csv.gz")
    btc_ms = pd.to_datetime(btc["open_time"], utc=True).map(lambda t: int(t.timestamp() * 1000))
    xrp = read_bundled_csv("binance_spot_XRPETH_1m_2019-10-11_2019-10-13_sparse.csv.gz")
    xrp_ms = xrp["open_time_ms"].astype("int64")
    return {
        "BTCUSDT": BinanceRecording(
            symbol="BTCUSDT",
            start_ms=int(btc_ms.min()),
            end_ms=int(btc_ms.max()) + 60_000,
            rows=_kline_rows(btc_ms, btc, Decimal(10), divide=False),
        ),
        "XRPETH": BinanceRecording(
            symbol="XRPETH",
            # The sparse file's span is its whole days: minutes missing inside it are real gaps.
            start_ms=int(xrp_ms.min()),
            end_ms=int(xrp_ms.max()) + 60_000,
            rows=_kline_rows(xrp_ms, xrp, Decimal(100), divide=True),
        ),
    }


UPBIT_FILES = {
    1: ("upbit_1m_20200220_170000-20200220_202000.json.gz", "upbit_1m_20200220_202000-20200220_210000.json.gz"),
    3: (
        "upbit_3m_20200220_000000-20200220_100000.json.gz",
        "upbit_3m_20200220_100000-20200220_120000.json.gz",
        "upbit_3m_20200220_170000-20200220_200000.json.gz",
    ),
}


def upbit_file_bytes(name: str) -> bytes:
    """One recorded Upbit response body, exactly as recorded."""
    with (DATA / "upbit" / name).open("rb") as handle:
        return gzip.decompress(handle.read())


@dataclass(frozen=True)
class UpbitRecording:
    """One recorded KRW-BTC response: the span it covers and its candles by open time.

    Inside the span a missing minute is real (no trades); outside it the emulator synthesizes.
    """

    unit: int
    start_ms: int
    end_ms: int
    candles: dict[int, dict]


@lru_cache(maxsize=1)
def upbit_recordings() -> tuple[UpbitRecording, ...]:
    recorded = []
    for unit, names in UPBIT_FILES.items():
        for name in names:
            candles = {
                int(pd.Timestamp(c["candle_date_time_utc"], tz="UTC").timestamp() * 1000): c
                for c in json.loads(upbit_file_bytes(name))
            }
            recorded.append(UpbitRecording(unit, min(candles), max(candles) + unit * 60_000, candles))
    return tuple(recorded)
