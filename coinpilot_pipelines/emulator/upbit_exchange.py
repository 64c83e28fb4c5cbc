"""The emulated Upbit exchange API: accounts and orders behind Upbit's JWT authentication.

Verified as Upbit does: the HS512/HS256 signature against the access key's secret, a nonce used at
most once, and the SHA-512 ``query_hash`` whenever a call has parameters. Clients hash the query
string differently (Upbit's own samples ``unquote(urlencode(...))``, pyupbit ``urlencode`` with
literal ``[]``, ccxt the raw ``key=value`` pairs), so the hash of the query as sent, or of it
decoded either way, verifies.
Parameters may come in the query string, a form body (pyupbit sends GET parameters that way) or
a JSON body.

Orders follow Upbit's documented lifecycle: the market, side, order type, price unit (호가 단위),
the 5,000 KRW minimum total and the available balance are checked; an accepted order locks its
funds (``locked`` in the accounts) until it fills or is cancelled. A limit order fills only when
the emulated market reaches its price: at once at the market price if it is marketable, else at
its own price when the market crosses it later. Market orders fill after a number of lookups
(``fill_after_lookups``), at the market price. An identifier is single-use: reusing one is refused
even if its first order failed. A scenario can make the exchange accept an order and then not
answer in time.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from urllib.parse import unquote, unquote_plus

import jwt
from jwt.warnings import InsecureKeyLengthWarning

from coinpilot_pipelines.emulator.upbit_rules import MIN_ORDER_TOTAL_KRW, on_krw_grid

KST = timezone(timedelta(hours=9))
FEE_RATE = Decimal("0.0005")
MAX_TOTAL_KRW = Decimal("1000000000")
EIGHT_PLACES = Decimal("0.00000001")
# The demo's key pair; tests configure their own. Upbit secrets are 40 characters, like this one.
DEFAULT_KEYS = {"emulator-access-key": "emulator-secret-key-0123456789abcdefghij"}
REQUESTS_PER_SECOND = {"order": 8, "default": 30}
OPEN_STATES = ("wait", "watch")
CLOSED_STATES = ("done", "cancel")
Params = dict[str, list[str]]
Answer = tuple[int, Any]


def upbit_error(status: int, name: str, message: str) -> Answer:
    return status, {"error": {"name": name, "message": message}}


class MarketView(Protocol):
    def last_price(self, market: str) -> Decimal: ...

    def reached(self, market: str, since_ms: int) -> tuple[Decimal, Decimal] | None: ...  # (low, high) since then

    def now_ms(self) -> int: ...


@dataclass
class ExchangeScenario:
    fill_after_lookups: int = 1  # lookups of a market order before it is filled
    accept_then_stall_s: float = 0.0  # after creating an order, wait this long before answering ...
    stall_count: int = 0  # ... for this many orders


@dataclass
class Account:
    balance: Decimal = Decimal(0)
    locked: Decimal = Decimal(0)
    avg_buy_price: Decimal = Decimal(0)


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def _one(params: Params, name: str) -> str | None:
    values = params.get(name)
    return values[-1] if values else None


@dataclass
class UpbitExchange:
    market_view: MarketView
    markets: tuple[str, ...]
    keys: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_KEYS))
    scenario: ExchangeScenario = field(default_factory=ExchangeScenario)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "lock", threading.Lock()):
            self.nonces: set[str] = set()
            self.orders: dict[str, dict] = {}
            self.identifiers: dict[str, str | None] = {}  # identifier -> order uuid (None: the order failed)
            self.lookups: dict[str, int] = {}
            self.accounts_by_currency: dict[str, Account] = {"KRW": Account(Decimal("1000000"))}
            self.second, self.in_second = 0, {group: 0 for group in REQUESTS_PER_SECOND}
            self.tokens_seen: list[str] = []  # every JWT received, so tests can hunt for leaks

    # -- authentication ---------------------------------------------------------------------------
    def authenticate(self, authorization: str | None, query_as_sent: str, params: Params) -> Answer | None:
        if not authorization or not authorization.startswith("Bearer "):
            return upbit_error(401, "jwt_verification", "Jwt 토큰 검증에 실패했습니다.")
        token = authorization[len("Bearer "):]
        self.tokens_seen.append(token)
        try:
            claimed = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return upbit_error(401, "jwt_verification", "Jwt 토큰 검증에 실패했습니다.")
        secret = self.keys.get(str(claimed.get("access_key")))
        if secret is None:
            return upbit_error(401, "invalid_access_key", "잘못된 엑세스 키입니다.")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", InsecureKeyLengthWarning)  # Upbit's secrets are 40 characters
                payload = jwt.decode(token, secret, algorithms=["HS512", "HS256"])
        except jwt.PyJWTError:
            return upbit_error(401, "jwt_verification", "Jwt 토큰 검증에 실패했습니다.")
        nonce = payload.get("nonce")
        with self.lock:
            if not nonce or nonce in self.nonces:
                return upbit_error(401, "nonce_used", "이미 요청한 nonce값이 다시 사용되었습니다.")
            self.nonces.add(nonce)
        if params:
            forms = {query_as_sent, unquote(query_as_sent), unquote_plus(query_as_sent),
                     query_as_sent.replace("%5B%5D=", "[]=")}
            hashes = {hashlib.sha512(form.encode()).hexdigest() for form in forms}
            if payload.get("query_hash") not in hashes or payload.get("query_hash_alg", "SHA512") != "SHA512":
                return upbit_error(401, "invalid_query_payload", "쿼리 오류입니다.")
        return None

    def remaining(self, group: str, now_ms: int) -> tuple[Answer | None, str]:
        """Count a request in its group's per-second allowance: (a 429 or None, Remaining-Req)."""
        with self.lock:
            second = now_ms // 1000
            if second != self.second:
                self.second, self.in_second = second, {g: 0 for g in REQUESTS_PER_SECOND}
            self.in_second[group] += 1
            left = REQUESTS_PER_SECOND[group] - self.in_second[group]
        header = f"group={group}; min=1800; sec={max(left, 0)}"
        if left < 0:
            return upbit_error(429, "too_many_requests", "Too many API requests."), header
        return None, header

    # -- endpoints --------------------------------------------------------------------------------
    def route(self, method: str, path: str, params: Params, now_ms: int) -> Answer:
        routes: dict[tuple[str, str], Callable[[], Answer]] = {
            ("GET", "/v1/accounts"): self.accounts,
            ("GET", "/v1/orders/chance"): lambda: self.chance(params),
            ("POST", "/v1/orders"): lambda: self.create(params, test=False, now_ms=now_ms),
            ("POST", "/v1/orders/test"): lambda: self.create(params, test=True, now_ms=now_ms),
            ("GET", "/v1/order"): lambda: self.lookup(params),
            ("DELETE", "/v1/order"): lambda: self.cancel(params),
            ("GET", "/v1/orders/open"): lambda: self.listing(params, OPEN_STATES, "wait"),
            ("GET", "/v1/orders/closed"): lambda: self.listing(params, CLOSED_STATES, None),
            ("GET", "/v1/orders/uuids"): lambda: self.by_ids(params),
        }
        handler = routes.get((method, path))
        if handler is None:
            return upbit_error(405, "method_not_allowed", f"{method} {path} is not supported")
        return handler()

    def accounts(self) -> Answer:
        with self.lock:
            self._settle_all()
            return 200, [self._account(currency) for currency in sorted(self.accounts_by_currency)]

    def _account(self, currency: str) -> dict:
        account = self.accounts_by_currency.setdefault(currency, Account())
        return {"currency": currency, "balance": _text(account.balance), "locked": _text(account.locked),
                "avg_buy_price": _text(account.avg_buy_price), "avg_buy_price_modified": False, "unit_currency": "KRW"}

    def chance(self, params: Params) -> Answer:
        market = _one(params, "market")
        if market not in self.markets:
            return upbit_error(404, "market_does_not_exist", f"마켓이 존재하지 않습니다. ({market})")
        quote, base = market.split("-", 1)
        fee = _text(FEE_RATE)
        with self.lock:
            self._settle_all()
            return 200, {
                "bid_fee": fee, "ask_fee": fee, "maker_bid_fee": fee, "maker_ask_fee": fee,
                "market": {
                    "id": market, "name": f"{base}/{quote}", "order_types": ["limit"], "order_sides": ["ask", "bid"],
                    "bid_types": ["limit", "price"], "ask_types": ["limit", "market"],
                    "bid": {"currency": quote, "min_total": _text(MIN_ORDER_TOTAL_KRW)},
                    "ask": {"currency": quote, "min_total": _text(MIN_ORDER_TOTAL_KRW)},
                    "max_total": _text(MAX_TOTAL_KRW), "state": "active",
                },
                "bid_account": self._account(quote), "ask_account": self._account(base),
            }

    def create(self, params: Params, *, test: bool, now_ms: int) -> Answer:
        body = {name: values[-1] for name, values in params.items()}
        identifier = body.get("identifier")
        with self.lock:
            if identifier is not None and not test:
                if identifier in self.identifiers:
                    return upbit_error(400, "duplicated_identifier", f"identifier {identifier} 은 이미 사용되었습니다.")
                self.identifiers[identifier] = None  # burnt now, whatever happens next
            refused, order = self._validated(body, now_ms)
            if refused is not None:
                return refused
            if test:
                return 201, self._public(order)
            self._lock_funds(order)
            self.orders[order["uuid"]] = order
            if identifier is not None:
                self.identifiers[identifier] = order["uuid"]
            if order["ord_type"] == "limit":
                self._try_fill(order, at_creation=True)
            answer = self._public(order)
            stall = self.scenario.stall_count > 0 and self.scenario.accept_then_stall_s > 0
            if stall:
                self.scenario.stall_count -= 1
        if stall:
            time.sleep(self.scenario.accept_then_stall_s)  # the order exists; the answer comes too late
        return 201, answer

    def lookup(self, params: Params) -> Answer:
        with self.lock:
            order = self._find(params)
            if order is None:
                return upbit_error(404, "order_not_found", "주문을 찾지 못했습니다.")
            self.lookups[order["uuid"]] = self.lookups.get(order["uuid"], 0) + 1
            if order["state"] == "wait" and order["ord_type"] != "limit" and \
                    self.lookups[order["uuid"]] >= self.scenario.fill_after_lookups:
                self._fill(order, self.market_view.last_price(order["market"]))
            self._settle_all()
            return 200, self._public(order, with_trades=True)

    def cancel(self, params: Params) -> Answer:
        with self.lock:
            self._settle_all()
            order = self._find(params)
            if order is None:
                return upbit_error(404, "order_not_found", "주문을 찾지 못했습니다.")
            if order["state"] not in OPEN_STATES:
                return upbit_error(400, "order_not_found", "주문을 찾지 못했습니다.")  # nothing left to cancel
            answer = self._public(order)  # Upbit answers with the order as it stood: still "wait"
            self._release(order)
            order["state"] = "cancel"
            return 200, answer

    def listing(self, params: Params, allowed: tuple[str, ...], default: str | None) -> Answer:
        states = params.get("states[]") or params.get("state") or ([default] if default else list(allowed))
        if any(state not in allowed for state in states):
            return upbit_error(400, "validation_error", f"state must be one of {', '.join(allowed)}")
        market = _one(params, "market")
        limit = _one(params, "limit") or "100"
        if not limit.isdigit() or not 1 <= int(limit) <= (100 if default else 1000):
            return upbit_error(400, "validation_error", "limit is out of range")
        page = _one(params, "page") or "1"
        if not page.isdigit() or int(page) < 1:
            return upbit_error(400, "validation_error", "page must be a positive integer")
        with self.lock:
            self._settle_all()
            chosen = [o for o in self.orders.values() if o["state"] in states and market in (None, o["market"])]
            start, end = _int_or(_one(params, "start_time")), _int_or(_one(params, "end_time"))
            chosen = [o for o in chosen if (start is None or o["created_ms"] >= start) and (end is None or o["created_ms"] <= end)]
            chosen.sort(key=lambda o: o["created_ms"], reverse=(_one(params, "order_by") or "desc") == "desc")
            first = (int(page) - 1) * int(limit)
            return 200, [self._public(o) for o in chosen[first:first + int(limit)]]

    def by_ids(self, params: Params) -> Answer:
        uuids, identifiers = params.get("uuids[]", []), params.get("identifiers[]", [])
        if bool(uuids) == bool(identifiers):
            return upbit_error(400, "validation_error", "send either uuids[] or identifiers[]")
        market = _one(params, "market")
        with self.lock:
            self._settle_all()
            keys = uuids or [self.identifiers.get(i) for i in identifiers]
            found = [self.orders[k] for k in keys if k in self.orders and market in (None, self.orders[k]["market"])]
            found.sort(key=lambda o: o["created_ms"], reverse=(_one(params, "order_by") or "desc") == "desc")
            return 200, [self._public(o) for o in found]

    def order_count(self) -> int:
        with self.lock:
            return len(self.orders)

    # -- order mechanics (called with the lock held) ------------------------------------------------
    def _find(self, params: Params) -> dict | None:
        key = _one(params, "uuid") or self.identifiers.get(_one(params, "identifier") or "")
        return self.orders.get(key or "")

    def _validated(self, body: dict[str, str], now_ms: int) -> tuple[Answer | None, dict]:
        market, side, ord_type = body.get("market"), body.get("side"), body.get("ord_type")
        if market not in self.markets:
            return upbit_error(404, "market_does_not_exist", f"마켓이 존재하지 않습니다. ({market})"), {}
        if side not in ("bid", "ask"):
            return upbit_error(400, "validation_error", "side is missing, side does not have a valid value"), {}
        shapes = {("limit", "bid"): ("price", "volume"), ("limit", "ask"): ("price", "volume"),
                  ("price", "bid"): ("price",), ("market", "ask"): ("volume",)}
        needed = shapes.get((ord_type, side))
        if needed is None:
            return upbit_error(400, "validation_error", f"ord_type {ord_type!r} does not fit side {side!r}"), {}
        values: dict[str, Decimal] = {}
        for name in needed:
            try:
                values[name] = Decimal(str(body.get(name)))
            except InvalidOperation:
                values[name] = Decimal(0)
            if not values[name].is_finite() or values[name] <= 0:
                return upbit_error(400, "validation_error", f"{name} is missing or not a positive number"), {}
        price, volume = values.get("price"), values.get("volume")
        if ord_type == "limit" and not on_krw_grid(price):
            return upbit_error(400, f"invalid_price_{side}", "주문가격 단위를 잘못 입력하셨습니다. 확인 후 시도해주세요."), {}
        total = price * volume if ord_type == "limit" else price if ord_type == "price" else \
            volume * self.market_view.last_price(market)
        if total < MIN_ORDER_TOTAL_KRW:
            return upbit_error(400, f"under_min_total_{side}", "최소주문금액 이상으로 주문해주세요"), {}
        if total > MAX_TOTAL_KRW:
            return upbit_error(400, f"over_max_total_{side}", "최대주문금액 이하로 주문해주세요"), {}
        quote, base = market.split("-", 1)
        reserved_fee = (total * FEE_RATE).quantize(EIGHT_PLACES) if side == "bid" else Decimal(0)
        lock_currency, lock_amount = (quote, total + reserved_fee) if side == "bid" else (base, volume)
        available = self.accounts_by_currency.get(lock_currency, Account()).balance
        if available < lock_amount:
            return upbit_error(400, f"insufficient_funds_{side}", f"주문가능한 금액({lock_currency})이 부족합니다."), {}
        return None, {
            "uuid": str(uuid.uuid4()), "side": side, "ord_type": ord_type, "price": price, "state": "wait",
            "market": market, "created_ms": now_ms, "volume": volume, "remaining_volume": volume,
            "reserved_fee": reserved_fee, "remaining_fee": reserved_fee, "paid_fee": Decimal(0),
            "locked": lock_amount, "lock_currency": lock_currency, "executed_volume": Decimal(0), "trades": [],
            "identifier": body.get("identifier"),
        }

    def _lock_funds(self, order: dict) -> None:
        account = self.accounts_by_currency.setdefault(order["lock_currency"], Account())
        account.balance -= order["locked"]
        account.locked += order["locked"]

    def _release(self, order: dict) -> None:
        account = self.accounts_by_currency[order["lock_currency"]]
        account.locked -= order["locked"]
        account.balance += order["locked"]
        order.update(locked=Decimal(0), remaining_fee=Decimal(0))

    def _settle_all(self) -> None:
        for order in self.orders.values():
            if order["state"] == "wait" and order["ord_type"] == "limit":
                self._try_fill(order, at_creation=False)

    def _try_fill(self, order: dict, *, at_creation: bool) -> None:
        """A limit order fills when the market reaches its price: at the market price if it already
        has when the order arrives, else at the order's own price."""
        limit = order["price"]
        if at_creation:
            last = self.market_view.last_price(order["market"])
            if (order["side"] == "bid" and last <= limit) or (order["side"] == "ask" and last >= limit):
                self._fill(order, last)
            return
        reached = self.market_view.reached(order["market"], order["created_ms"])
        if reached is not None and (reached[0] <= limit if order["side"] == "bid" else reached[1] >= limit):
            self._fill(order, limit)

    def _fill(self, order: dict, price: Decimal) -> None:
        quote, base = order["market"].split("-", 1)
        if order["ord_type"] == "price":
            funds = order["price"]
            volume = (funds / price).quantize(EIGHT_PLACES)
        else:
            volume = order["volume"]
            funds = (volume * price).quantize(EIGHT_PLACES)
        fee = (funds * FEE_RATE).quantize(EIGHT_PLACES)
        self._release(order)
        quote_account = self.accounts_by_currency.setdefault(quote, Account())
        base_account = self.accounts_by_currency.setdefault(base, Account())
        if order["side"] == "bid":
            quote_account.balance -= funds + fee
            held = base_account.balance + base_account.locked
            base_account.avg_buy_price = ((base_account.avg_buy_price * held + funds) / (held + volume)).quantize(EIGHT_PLACES)
            base_account.balance += volume
        else:
            base_account.balance -= volume
            quote_account.balance += funds - fee
        when = datetime.fromtimestamp(self.market_view.now_ms() / 1000, tz=KST).isoformat(timespec="seconds")
        order["trades"].append({"market": order["market"], "uuid": str(uuid.uuid4()), "price": _text(price),
                                "volume": _text(volume), "funds": _text(funds),
                                "trend": "up" if order["side"] == "bid" else "down", "created_at": when,
                                "side": order["side"]})
        order.update(state="done", executed_volume=volume, remaining_volume=Decimal(0), paid_fee=fee, avg_price=price)

    @staticmethod
    def _public(order: dict, *, with_trades: bool = False) -> dict:
        created = datetime.fromtimestamp(order["created_ms"] / 1000, tz=KST).isoformat(timespec="seconds")
        shown = {
            "uuid": order["uuid"], "side": order["side"], "ord_type": order["ord_type"],
            "price": _text(order["price"]) if order.get("price") is not None else None, "state": order["state"],
            "market": order["market"], "created_at": created,
            "volume": _text(order["volume"]) if order.get("volume") is not None else None,
            "remaining_volume": _text(order["remaining_volume"]) if order.get("remaining_volume") is not None else None,
            "reserved_fee": _text(order["reserved_fee"]), "remaining_fee": _text(order["remaining_fee"]),
            "paid_fee": _text(order["paid_fee"]), "locked": _text(order["locked"]),
            "executed_volume": _text(order["executed_volume"]), "trades_count": len(order["trades"]),
        }
        if order.get("avg_price") is not None:
            shown["avg_price"] = _text(order["avg_price"])
        if order.get("identifier") is not None:
            shown["identifier"] = order["identifier"]
        if with_trades:
            shown["trades"] = list(order["trades"])
        return shown


def _int_or(raw: str | None) -> int | None:
    return int(raw) if raw and raw.lstrip("-").isdigit() else None
