"""Third-party clients against the emulator over HTTP: ccxt (binance, upbit), python-binance, pyupbit.

Nothing in the libraries is changed but where they connect: ccxt's ``urls`` (and, for binance, the
market types to load: spot only, since the emulator serves no futures), python-binance's
``API_URL``, and for pyupbit, which spells ``https://api.upbit.com`` inside every URL it builds
(0.2.34 has no host setting), its requests are sent to the emulator's host instead, restored
after. Every call runs under a time cap; pytest prints the slowest of each kind at the end.

Budget: the whole module runs in well under 60 s on a 2-core machine (most of it paging 30,240
bars of March 2023 through ccxt and one python-binance pause between pages).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import ccxt
import pytest
import pyupbit
import requests
from binance.client import Client
from binance.exceptions import BinanceAPIException

from coinpilot_pipelines.emulator.recordings import binance_recordings, upbit_recordings
from coinpilot_pipelines.emulator.upbit_exchange import DEFAULT_KEYS
from coinpilot_pipelines_tests.conftest import CONFORMANCE_LATENCIES

pytestmark = pytest.mark.conformance

UTC = timezone.utc
MARCH_1_2023 = 1677628800000
MARCH_22_2023 = MARCH_1_2023 + 21 * 86_400_000
ACCESS_KEY, SECRET_KEY = next(iter(DEFAULT_KEYS.items()))
CAP_S = 5.0  # a single call; paging loops get one cap per page


_latencies: dict[str, float] = {}  # the slowest call of each kind in the running test


@pytest.fixture(autouse=True)
def _report_latencies(request: pytest.FixtureRequest) -> Iterator[None]:
    _latencies.clear()
    yield
    request.node.user_properties.append((CONFORMANCE_LATENCIES, dict(_latencies)))


def timed(name: str, call: Callable[[], Any], cap_s: float = CAP_S) -> Any:
    started = time.perf_counter()
    result = call()
    elapsed = time.perf_counter() - started
    _latencies[name] = max(_latencies.get(name, 0.0), elapsed)
    assert elapsed < cap_s, f"{name} took {elapsed:.2f} s (cap {cap_s} s)"
    return result


@pytest.fixture
def frozen(emulator):  # noqa: ANN001, ANN201
    emulator.clock.freeze(int(datetime(2024, 6, 1, 12, 0, 30, tzinfo=UTC).timestamp() * 1000))
    return emulator


def ccxt_binance(url: str) -> ccxt.binance:
    return ccxt.binance({"urls": {"api": {"public": f"{url}/api/v3"}},
                         "options": {"fetchMarkets": {"types": ["spot"]}}})


def ccxt_upbit(url: str, **keys: str) -> ccxt.upbit:
    return ccxt.upbit({"urls": {"api": {"public": url, "private": url}}, **keys})


@pytest.fixture
def upbit_host(emulator, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN001, ANN201
    """pyupbit's requests go to the emulator (monkeypatch restores requests afterwards)."""
    send = requests.Session.request

    def to_emulator(session: requests.Session, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        return send(session, method, url.replace("https://api.upbit.com", emulator.url, 1), *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", to_emulator)
    return emulator


# -- Binance ------------------------------------------------------------------------------------
def test_ccxt_binance_loads_markets_and_pages_march_2023_equal_to_the_recording(emulator) -> None:  # noqa: ANN001
    exchange = ccxt_binance(emulator.url)
    markets = timed("ccxt.binance load_markets", exchange.load_markets)
    assert "BTC/USDT" in markets and "XRP/ETH" in markets and len(markets) == len(emulator.state.symbols.binance)
    btc = markets["BTC/USDT"]
    assert btc["spot"] and btc["precision"]["price"] > 0 and btc["limits"]["cost"]["min"] == 5.0
    bars: list[list] = []
    since = MARCH_1_2023
    while since < MARCH_22_2023:
        page = timed("ccxt.binance fetch_ohlcv (1000 bars)",
                     lambda s=since: exchange.fetch_ohlcv("BTC/USDT", "1m", since=s, limit=1000))
        assert page, f"no bars from {since}"
        bars.extend(row for row in page if row[0] < MARCH_22_2023)
        since = page[-1][0] + 60_000
    recording = binance_recordings()["BTCUSDT"].rows
    assert len(bars) == len(recording) == 30_240
    for row in bars:
        raw = recording[row[0]]
        assert row[1:] == [float(raw[i]) for i in (1, 2, 3, 4, 5)]


def test_ccxt_binance_ticker_is_the_market_as_of_now(frozen) -> None:  # noqa: ANN001
    exchange = ccxt_binance(frozen.url)
    timed("ccxt.binance load_markets", exchange.load_markets)
    ticker = timed("ccxt.binance fetch_ticker", lambda: exchange.fetch_ticker("ETH/USDT"))
    now = frozen.clock.now_ms()
    assert ticker["timestamp"] == now and ticker["low"] <= ticker["last"] <= ticker["high"]
    assert ticker["bid"] == ticker["last"] < ticker["ask"]
    open_bar = exchange.fetch_ohlcv("ETH/USDT", "1m", limit=1)[-1]
    assert open_bar[0] == now - now % 60_000 and open_bar[4] == ticker["last"]  # the same market, as of now
    with pytest.raises(ccxt.BadSymbol):
        exchange.fetch_ticker("NOSUCH/USDT")


def test_python_binance_history_from_start_time_0_and_documented_errors(emulator) -> None:  # noqa: ANN001
    client = Client(ping=False)
    client.API_URL = f"{emulator.url}/api"
    assert timed("python-binance ping", client.ping) == {}
    assert abs(timed("python-binance get_server_time", client.get_server_time)["serverTime"] - time.time() * 1000) < 5000
    history = timed("python-binance get_historical_klines 1d from 0",
                    lambda: client.get_historical_klines("BTCUSDT", "1d", 0, "2019-01-01"))
    assert history[0][0] == int(datetime(2017, 1, 1, tzinfo=UTC).timestamp() * 1000)  # the first bar there is
    assert len(history) == 731 and all  # endTime is inclusive: 2017-01-01 .. 2019-01-01(b[0] - a[0] == 86_400_000 for a, b in zip(history, history[1:], strict=False))
    assert len(timed("python-binance get_exchange_info", client.get_exchange_info)["symbols"]) == \
        len(emulator.state.symbols.binance)
    with pytest.raises(BinanceAPIException) as unknown:
        client.get_klines(symbol="NOSUCHCOIN", interval="1m")
    assert (unknown.value.status_code, unknown.value.code, unknown.value.message) == (400, -1121, "Invalid symbol.")
    with pytest.raises(BinanceAPIException) as malformed:
        client.get_klines(symbol="BTCUSDT", interval="1m", limit="abc")
    assert (malformed.value.status_code, malformed.value.code) == (400, -1100)


# -- Upbit --------------------------------------------------------------------------------------
def test_ccxt_upbit_markets_ticker_and_the_order_lifecycle(frozen) -> None:  # noqa: ANN001
    public = ccxt_upbit(frozen.url)
    markets = timed("ccxt.upbit load_markets", public.load_markets)
    assert sorted(markets) == ["BTC/KRW", "ETH/KRW", "XRP/KRW"]
    ticker = timed("ccxt.upbit fetch_ticker", lambda: public.fetch_ticker("BTC/KRW"))
    assert ticker["low"] <= ticker["last"] <= ticker["high"]

    exchange = ccxt_upbit(frozen.url, apiKey=ACCESS_KEY, secret=SECRET_KEY)
    exchange.load_markets()
    balance = timed("ccxt.upbit fetch_balance", exchange.fetch_balance)
    assert balance["KRW"]["free"] == 1_000_000 and balance["KRW"]["used"] == 0
    price = int(ticker["last"] * 0.9) // 1000 * 1000  # below the market, on the 1,000 KRW unit: it waits
    identifier = "conformance 1: a/b"  # a space, ':' and '/' in what the query hash covers
    order = timed("ccxt.upbit create_order", lambda: exchange.create_order(
        "BTC/KRW", "limit", "buy", 0.001, price, {"clientOrderId": identifier}))
    fetched = timed("ccxt.upbit fetch_order", lambda: exchange.fetch_order(order["id"]))
    assert fetched["status"] == "open" and fetched["price"] == price and fetched["clientOrderId"] == identifier
    assert [o["id"] for o in timed("ccxt.upbit fetch_open_orders", exchange.fetch_open_orders)] == [order["id"]]
    locked = exchange.fetch_balance()["KRW"]["used"]
    assert locked == pytest.approx(price * 0.001 * 1.0005)  # the order total and its fee, locked
    timed("ccxt.upbit cancel_order", lambda: exchange.cancel_order(order["id"]))
    assert exchange.fetch_order(order["id"])["status"] == "canceled"
    assert exchange.fetch_balance()["KRW"]["free"] == 1_000_000
    with pytest.raises(ccxt.ExchangeError, match="duplicated_identifier"):
        exchange.create_order("BTC/KRW", "limit", "buy", 0.001, price, {"clientOrderId": identifier})


def test_pyupbit_candles_tickers_and_orders(upbit_host) -> None:  # noqa: ANN001
    upbit_host.clock.freeze(int(datetime(2024, 6, 1, 12, 0, 30, tzinfo=UTC).timestamp() * 1000))
    assert timed("pyupbit get_tickers", pyupbit.get_tickers) == ["KRW-BTC", "KRW-ETH", "KRW-XRP"]
    frame = timed("pyupbit get_ohlcv minute1", lambda: pyupbit.get_ohlcv("KRW-BTC", "minute1", count=200,
                                                                          to="2020-02-20 11:20:00"))
    assert len(frame) == 200 and str(frame.index[-1]) == "2020-02-20 20:19:00"  # pyupbit indexes by KST
    recorded = next(r for r in upbit_recordings() if r.unit == 1 and r.start_ms == 1582185600000).candles
    assert frame["open"].iloc[-1] == recorded[1582197540000]["opening_price"]  # 11:19 UTC, as recorded
    days = timed("pyupbit get_ohlcv day", lambda: pyupbit.get_ohlcv("KRW-BTC", "day", count=10))
    assert len(days) == 10 and (days["high"] >= days["low"]).all()
    assert timed("pyupbit get_current_price", lambda: pyupbit.get_current_price("KRW-XRP")) > 0

    upbit = pyupbit.Upbit(ACCESS_KEY, SECRET_KEY)
    assert timed("pyupbit get_balance", lambda: upbit.get_balance("KRW")) == 1_000_000
    chance = timed("pyupbit get_chance", lambda: upbit.get_chance("KRW-XRP"))
    assert chance["market"]["bid"]["min_total"] == "5000" and chance["bid_account"]["balance"] == "1000000"
    price = pyupbit.get_current_price("KRW-XRP")
    limit = float(int(price * 0.8))  # 1 KRW units at this price, below the market
    placed = timed("pyupbit buy_limit_order", lambda: upbit.buy_limit_order("KRW-XRP", limit, 20))
    assert placed["state"] == "wait", placed
    got = timed("pyupbit get_order", lambda: upbit.get_order(placed["uuid"]))
    assert got["uuid"] == placed["uuid"] and got["state"] == "wait" and got["trades"] == []
    assert Decimal(upbit.get_balances()[0]["locked"]) == Decimal(str(limit)) * 20 * Decimal("1.0005")
    cancelled = timed("pyupbit cancel_order", lambda: upbit.cancel_order(placed["uuid"]))
    assert cancelled["uuid"] == placed["uuid"]
    assert upbit.get_order(placed["uuid"])["state"] == "cancel"
    refused = upbit.buy_limit_order("KRW-XRP", limit + 0.5, 20)  # off the 1 KRW unit
    assert refused["error"]["name"] == "invalid_price_bid"
