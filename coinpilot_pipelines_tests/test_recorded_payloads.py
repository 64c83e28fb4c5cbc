"""The real recorded exchange payloads parse to exactly the bars they contain."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

import pandas as pd
import pytest

from coinpilot_pipelines.clients.binance import parse_kline_bodies, parse_kline_rows, parse_ws_kline_message
from coinpilot_pipelines.clients.upbit import decode_exact, parse_candles
from coinpilot_pipelines.emulator.recordings import UPBIT_FILES, upbit_file_bytes
from coinpilot_pipelines.market.intervals import Interval

from .conftest import FIXTURES

UTC = timezone.utc


def _frame_bar(frame: pd.DataFrame, position: int) -> dict:
    row = frame.iloc[position]
    return {
        "open_time": row["open_time"].to_pydatetime(),
        "close_time": row["close_time"].to_pydatetime(),
        **{k: Decimal(row[k]) for k in ("open", "high", "low", "close", "volume", "quote_volume")},
        "trade_count": None if pd.isna(row["trade_count"]) else int(row["trade_count"]),
    }


def test_rest_klines_response_parses_to_its_exact_bars() -> None:
    body = (FIXTURES / "klines_rest_response_BTCUSDT_1m.json").read_bytes()
    rows = json.loads(body)
    compact = json.dumps(rows, separators=(",", ":")).encode()  # the wire form the fast path reads

    for batch in (parse_kline_rows(rows, now_ms=None), parse_kline_bodies([compact], now_ms=None)):
        assert len(batch.frame) == 10 and batch.rejects == [] and batch.open_bars == 0
        for position, raw in enumerate(rows):
            assert _frame_bar(batch.frame, position) == {
                "open_time": datetime.fromtimestamp(raw[0] / 1000, UTC),
                "close_time": datetime.fromtimestamp(raw[6] / 1000, UTC),
                "open": Decimal(raw[1]), "high": Decimal(raw[2]), "low": Decimal(raw[3]),
                "close": Decimal(raw[4]), "volume": Decimal(raw[5]), "quote_volume": Decimal(raw[7]),
                "trade_count": raw[8],
            }
    first = parse_kline_rows(rows, now_ms=None).frame.iloc[0]
    # Exact text survives: no float rounding on the way to the database.
    assert first["quote_volume"] == "1313200.01340410"
    assert first["open_time"] == datetime(2021, 10, 22, 23, 3, tzinfo=UTC)


def test_rest_klines_keep_only_closed_bars() -> None:
    rows = json.loads((FIXTURES / "klines_rest_response_BTCUSDT_1m.json").read_bytes())
    mid_last_bar = rows[-1][0] + 30_000
    batch = parse_kline_rows(rows, now_ms=mid_last_bar)
    assert len(batch.frame) == 9 and batch.open_bars == 1


def test_websocket_kline_messages_parse_to_their_closed_bars() -> None:
    messages = [json.loads(line) for line in (FIXTURES / "ws_kline_messages.jsonl").read_text().splitlines()]
    assert len(messages) == 74
    closed = 0
    for record in messages:
        symbol, interval, is_closed, batch = parse_ws_kline_message(record["msg"])
        k = record["msg"]["data"]["k"]
        assert (symbol, interval, is_closed) == (k["s"], k["i"], k["x"])
        assert batch.rejects == []
        if not is_closed:
            assert batch.frame.empty and batch.open_bars == 1
            continue
        closed += 1
        assert _frame_bar(batch.frame, 0) == {
            "open_time": datetime.fromtimestamp(k["t"] / 1000, UTC),
            "close_time": datetime.fromtimestamp(k["T"] / 1000, UTC),
            "open": Decimal(k["o"]), "high": Decimal(k["h"]), "low": Decimal(k["l"]),
            "close": Decimal(k["c"]), "volume": Decimal(k["v"]), "quote_volume": Decimal(k["q"]),
            "trade_count": k["n"],
        }
        # The closing message arrives after the bar's close time.
        assert record["recv_ts"] * 1000 >= k["T"]
    assert closed == 5


@pytest.mark.parametrize("unit,name", [(u, n) for u, names in UPBIT_FILES.items() for n in names])
def test_upbit_responses_parse_to_their_exact_candles(unit: int, name: str) -> None:
    raw = decode_exact(upbit_file_bytes(name))
    batch = parse_candles(raw, Interval.parse(f"{unit}m"), now_ms=None)
    assert batch.rejects == [] and len(batch.frame) == len(raw)
    for position, candle in enumerate(raw):
        bar = _frame_bar(batch.frame, position)
        opened = datetime.fromisoformat(candle["candle_date_time_utc"]).replace(tzinfo=UTC)
        assert bar["open_time"] == opened  # from candle_date_time_utc ...
        assert datetime.fromisoformat(candle["candle_date_time_kst"]) - opened.replace(tzinfo=None) == pd.Timedelta(hours=9)
        assert bar["close_time"] == opened + pd.Timedelta(minutes=unit) - pd.Timedelta(milliseconds=1)
        assert bar["open"] == Decimal(candle["opening_price"])
        assert bar["high"] == Decimal(candle["high_price"])
        assert bar["low"] == Decimal(candle["low_price"])
        assert bar["close"] == Decimal(candle["trade_price"])
        assert bar["volume"] == Decimal(candle["candle_acc_trade_volume"])
        assert bar["quote_volume"] == Decimal(candle["candle_acc_trade_price"])
    # ... never from `timestamp`, the last trade's time, which can lie after the candle ended.
    late = [c for c in raw if c["timestamp"] > datetime.fromisoformat(c["candle_date_time_utc"]).replace(tzinfo=UTC).timestamp() * 1000 + unit * 60_000]
    assert all(_frame_bar(batch.frame, raw.index(c))["open_time"].timestamp() * 1000 < c["timestamp"] for c in late)


def test_upbit_one_minute_pages_roll_up_to_the_recorded_three_minute_page() -> None:
    one_minute = pd.concat(
        parse_candles(decode_exact(upbit_file_bytes(n)), Interval.parse("1m"), now_ms=None).frame for n in UPBIT_FILES[1]
    ).sort_values("open_time")
    three = parse_candles(decode_exact(upbit_file_bytes(UPBIT_FILES[3][2])), Interval.parse("3m"), now_ms=None).frame
    one_minute["bucket"] = one_minute["open_time"].dt.floor("3min")
    as_decimal = {c: one_minute[c].map(Decimal) for c in ("open", "high", "low", "close", "volume")}
    rolled = pd.DataFrame({"bucket": one_minute["bucket"], **as_decimal}).groupby("bucket").agg(
        open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last"), volume=("volume", "sum")
    )
    expected = three.set_index("open_time")
    rolled = rolled[rolled.index <= expected.index.max()]  # the 1m pages run an hour longer
    assert list(rolled.index) == sorted(expected.index)
    for moment, bar in rolled.iterrows():
        recorded = expected.loc[moment]
        assert (bar["open"], bar["high"], bar["low"], bar["close"], bar["volume"]) == tuple(
            Decimal(recorded[c]) for c in ("open", "high", "low", "close", "volume")
        )
