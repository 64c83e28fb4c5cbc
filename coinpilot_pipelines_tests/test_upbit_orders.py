"""The emulated Upbit exchange holds orders to Upbit's documented rules, over real HTTP."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from urllib.parse import urlencode

import httpx
import pytest

from coinpilot_pipelines.clients.upbit.exchange import sign
from coinpilot_pipelines.emulator.upbit_exchange import DEFAULT_KEYS
from coinpilot_pipelines.emulator.upbit_rules import krw_price_unit

UTC = timezone.utc
ACCESS_KEY, SECRET_KEY = next(iter(DEFAULT_KEYS.items()))
NOW = int(datetime(2024, 6, 1, 12, 0, 30, tzinfo=UTC).timestamp() * 1000)


def call(emulator, method: str, path: str, params: dict | None = None) -> httpx.Response:  # noqa: ANN001
    headers = {"Authorization": f"Bearer {sign(ACCESS_KEY, SECRET_KEY, params)}"}
    if method == "POST":
        return httpx.post(f"{emulator.url}{path}", content=json.dumps(params),
                          headers={**headers, "Content-Type": "application/json"})
    query = f"?{urlencode(params, doseq=True)}" if params else ""
    return httpx.request(method, f"{emulator.url}{path}{query}", headers=headers)


def krw(emulator) -> dict:  # noqa: ANN001
    return next(a for a in call(emulator, "GET", "/v1/accounts").json() if a["currency"] == "KRW")


def last_price(emulator, market: str) -> Decimal:  # noqa: ANN001
    (ticker,) = httpx.get(f"{emulator.url}/v1/ticker", params={"markets": market}).json()
    return Decimal(str(ticker["trade_price"]))


@pytest.fixture
def market(emulator):  # noqa: ANN001, ANN201
    emulator.clock.freeze(NOW)
    return emulator


@pytest.mark.parametrize(("order", "status", "name"), [
    ({"market": "KRW-NOSUCH", "side": "bid", "ord_type": "limit", "price": "1000", "volume": "10"}, 404, "market_does_not_exist"),
    ({"market": "KRW-BTC", "side": "buy", "ord_type": "limit", "price": "1000", "volume": "10"}, 400, "validation_error"),
    ({"market": "KRW-BTC", "side": "bid", "ord_type": "market", "volume": "1"}, 400, "validation_error"),
    ({"market": "KRW-BTC", "side": "bid", "ord_type": "limit", "price": "50000123", "volume": "0.001"}, 400, "invalid_price_bid"),
    ({"market": "KRW-BTC", "side": "bid", "ord_type": "limit", "price": "1000", "volume": "1"}, 400, "under_min_total_bid"),
    ({"market": "KRW-BTC", "side": "bid", "ord_type": "price", "price": "1"}, 400, "under_min_total_bid"),
    ({"market": "KRW-BTC", "side": "bid", "ord_type": "limit", "price": "100000000", "volume": "100"}, 400, "over_max_total_bid"),
    ({"market": "KRW-BTC", "side": "bid", "ord_type": "limit", "price": "100000000", "volume": "1"}, 400, "insufficient_funds_bid"),
    ({"market": "KRW-BTC", "side": "ask", "ord_type": "limit", "price": "100000000", "volume": "1"}, 400, "insufficient_funds_ask"),
])
def test_orders_are_validated_as_upbit_documents(market, order: dict, status: int, name: str) -> None:  # noqa: ANN001
    refused = call(market, "POST", "/v1/orders", order)
    assert refused.status_code == status and refused.json()["error"]["name"] == name, refused.text
    assert krw(market) == {**krw(market), "balance": "1000000", "locked": "0"}  # nothing was locked
    assert market.stats()["upbit_orders"] == 0


def test_a_waiting_limit_order_locks_its_funds_until_cancelled(market) -> None:  # noqa: ANN001
    price = last_price(market, "KRW-BTC") * Decimal("0.9")
    price -= price % krw_price_unit(price)
    placed = call(market, "POST", "/v1/orders", {"market": "KRW-BTC", "side": "bid", "ord_type": "limit",
                                                 "price": str(price), "volume": "0.001", "identifier": "lock-1"})
    assert placed.status_code == 201 and placed.json()["state"] == "wait"
    locked = price * Decimal("0.001") * Decimal("1.0005")
    assert Decimal(krw(market)["locked"]) == locked and Decimal(krw(market)["balance"]) == 1_000_000 - locked
    chance = call(market, "GET", "/v1/orders/chance", {"market": "KRW-BTC"}).json()
    assert Decimal(chance["bid_account"]["locked"]) == locked and chance["market"]["bid"]["min_total"] == "5000"
    open_orders = call(market, "GET", "/v1/orders/open", {"market": "KRW-BTC"}).json()
    assert [o["uuid"] for o in open_orders] == [placed.json()["uuid"]]
    by_identifier = call(market, "GET", "/v1/orders/uuids", {"identifiers[]": ["lock-1"]}).json()
    assert [o["uuid"] for o in by_identifier] == [placed.json()["uuid"]]
    cancelled = call(market, "DELETE", "/v1/order", {"uuid": placed.json()["uuid"]})
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "wait"  # as it stood when cancelled
    assert krw(market)["balance"] == "1000000" and krw(market)["locked"] == "0"
    closed = call(market, "GET", "/v1/orders/closed", {"market": "KRW-BTC", "states[]": ["cancel"]}).json()
    assert [o["state"] for o in closed] == ["cancel"]
    assert call(market, "DELETE", "/v1/order", {"uuid": placed.json()["uuid"]}).status_code == 400  # nothing left


def test_a_limit_bid_below_the_market_waits_and_fills_at_its_price_when_the_market_comes_down(market) -> None:  # noqa: ANN001
    market.clock.freeze(NOW + 3_600_000)  # a look at the hour ahead: the emulator's market is deterministic
    candles = httpx.get(f"{market.url}/v1/candles/minutes/1", params={"market": "KRW-XRP", "count": 59}).json()
    market.clock.freeze(NOW)
    now_price = last_price(market, "KRW-XRP")
    bottom = Decimal(str(min(c["low_price"] for c in candles)))
    assert bottom + krw_price_unit(bottom) < now_price, "the test needs a market that comes down within the hour"
    price = bottom + krw_price_unit(bottom)  # reached within the hour, below the market now
    placed = call(market, "POST", "/v1/orders", {"market": "KRW-XRP", "side": "bid", "ord_type": "limit",
                                                 "price": str(price), "volume": "100"}).json()
    assert call(market, "GET", "/v1/order", {"uuid": placed["uuid"]}).json()["state"] == "wait"
    market.clock.advance(3600)
    filled = call(market, "GET", "/v1/order", {"uuid": placed["uuid"]}).json()
    assert filled["state"] == "done" and Decimal(filled["trades"][0]["price"]) == price  # its price, never above
    cost = price * 100
    fee = cost * Decimal("0.0005")
    assert Decimal(krw(market)["balance"]) == 1_000_000 - cost - fee and krw(market)["locked"] == "0"
    xrp = next(a for a in call(market, "GET", "/v1/accounts").json() if a["currency"] == "XRP")
    assert Decimal(xrp["balance"]) == 100 and Decimal(xrp["avg_buy_price"]) == price


def test_a_marketable_limit_bid_fills_at_once_at_the_market_price(market) -> None:  # noqa: ANN001
    now_price = last_price(market, "KRW-BTC")
    limit = now_price * Decimal("1.1")
    limit -= limit % krw_price_unit(limit)
    placed = call(market, "POST", "/v1/orders", {"market": "KRW-BTC", "side": "bid", "ord_type": "limit",
                                                 "price": str(limit), "volume": "0.001"}).json()
    assert placed["state"] == "done" and Decimal(placed["avg_price"]) == now_price <= limit


def test_parameters_in_a_get_body_and_identifiers_that_need_encoding(market) -> None:  # noqa: ANN001
    identifier = "batch 7: a/b"
    body = {"market": "KRW-BTC", "side": "bid", "ord_type": "price", "price": "10000", "identifier": identifier}
    assert call(market, "POST", "/v1/orders", body).status_code == 201
    params = {"identifier": identifier}
    found = httpx.request("GET", f"{market.url}/v1/order", content=urlencode(params),  # as pyupbit sends it
                          headers={"Authorization": f"Bearer {sign(ACCESS_KEY, SECRET_KEY, params)}",
                                   "Content-Type": "application/x-www-form-urlencoded"})
    assert found.status_code == 200 and found.json()["identifier"] == identifier
    wrong = {"Authorization": f"Bearer {sign(ACCESS_KEY, SECRET_KEY, {'identifier': 'another'})}"}
    forged = httpx.get(f"{market.url}/v1/order", params=params, headers=wrong)
    assert forged.status_code == 401 and forged.json()["error"]["name"] == "invalid_query_payload"
