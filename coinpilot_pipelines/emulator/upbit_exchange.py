"""The emulated Upbit exchange API: accounts and orders behind Upbit's JWT authentication.

Verified as Upbit does: the HS512 signature against the access key's secret, a nonce used at most
once, and the SHA-512 ``query_hash`` of the unencoded query string whenever a call has
parameters. An identifier is single-use: reusing one is refused even if its first order failed.
Orders start ``wait`` and are filled (``done``) after a number of lookups, at the emulated
market's price. A scenario can make the exchange accept an order and then not answer in time.
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
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlencode

import jwt
from jwt.warnings import InsecureKeyLengthWarning

KST = timezone(timedelta(hours=9))
FEE_RATE = Decimal("0.0005")
# The demo's key pair; tests configure their own. Upbit secrets are 40 characters, like this one.
DEFAULT_KEYS = {"emulator-access-key": "emulator-secret-key-0123456789abcdefghij"}
REQUESTS_PER_SECOND = {"order": 8, "default": 30}


def upbit_error(status: int, name: str, message: str) -> tuple[int, dict]:
    return status, {"error": {"name": name, "message": message}}


@dataclass
class ExchangeScenario:
    fill_after_lookups: int = 1  # lookups of an order before it is filled
    accept_then_stall_s: float = 0.0  # after creating an order, wait this long before answering ...
    stall_count: int = 0  # ... for this many orders


@dataclass
class UpbitExchange:
    price_of: Callable[[str], Decimal]  # the market's last price, from the emulated candles
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
            self.balances: dict[str, Decimal] = {"KRW": Decimal("1000000")}
            self.second, self.in_second = 0, {group: 0 for group in REQUESTS_PER_SECOND}
            self.tokens_seen: list[str] = []  # every JWT received, so tests can hunt for leaks

    # -- authentication ---------------------------------------------------------------------------
    def authenticate(self, authorization: str | None, params: dict[str, Any]) -> tuple[int, dict] | None:
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
            expected = hashlib.sha512(unquote(urlencode(params, doseq=True)).encode()).hexdigest()
            if payload.get("query_hash") != expected or payload.get("query_hash_alg", "SHA512") != "SHA512":
                return upbit_error(401, "invalid_query_payload", "쿼리 오류입니다.")
        return None

    def remaining(self, group: str, now_ms: int) -> tuple[tuple[int, dict] | None, str]:
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
    def accounts(self) -> tuple[int, Any]:
        with self.lock:
            return 200, [
                {"currency": currency, "balance": str(balance), "locked": "0", "avg_buy_price": "0",
                 "avg_buy_price_modified": False, "unit_currency": "KRW"}
                for currency, balance in sorted(self.balances.items())
            ]

    def create(self, body: dict[str, Any], *, test: bool, now_ms: int) -> tuple[int, Any]:
        identifier = body.get("identifier")
        with self.lock:
            if identifier is not None and not test:
                if identifier in self.identifiers:
                    return upbit_error(400, "duplicated_identifier", f"identifier {identifier} 은 이미 사용되었습니다.")
                self.identifiers[identifier] = None  # burnt now, whatever happens next
        problem = self._invalid(body)
        if problem:
            return upbit_error(400, "validation_error", problem)
        order = self._new_order(body, now_ms)
        if test:
            return 201, order
        with self.lock:
            self.orders[order["uuid"]] = order
            if identifier is not None:
                self.identifiers[identifier] = order["uuid"]
            stall = self.scenario.stall_count > 0 and self.scenario.accept_then_stall_s > 0
            if stall:
                self.scenario.stall_count -= 1
        if stall:
            time.sleep(self.scenario.accept_then_stall_s)  # the order exists; the answer comes too late
        return 201, dict(order)

    def lookup(self, params: dict[str, str]) -> tuple[int, Any]:
        with self.lock:
            key = params.get("uuid") or self.identifiers.get(params.get("identifier") or "")
            order = self.orders.get(key or "")
            if order is None:
                return upbit_error(404, "order_not_found", "주문을 찾지 못했습니다.")
            self.lookups[order["uuid"]] = self.lookups.get(order["uuid"], 0) + 1
            if order["state"] == "wait" and self.lookups[order["uuid"]] >= self.scenario.fill_after_lookups:
                self._fill(order)
            return 200, dict(order)

    def order_count(self) -> int:
        with self.lock:
            return len(self.orders)

    # -- order mechanics --------------------------------------------------------------------------
    @staticmethod
    def _invalid(body: dict[str, Any]) -> str | None:
        if not str(body.get("market", "")).startswith("KRW-"):
            return f"market {body.get('market')!r} is not a KRW market"
        if body.get("side") not in ("bid", "ask"):
            return "side must be bid or ask"
        if body.get("ord_type") == "price" and body.get("side") == "bid":
            return None if _positive(body.get("price")) else "price is required for a market buy"
        if body.get("ord_type") == "market" and body.get("side") == "ask":
            return None if _positive(body.get("volume")) else "volume is required for a market sell"
        if body.get("ord_type") == "limit":
            return None if _positive(body.get("price")) and _positive(body.get("volume")) else "limit needs price and volume"
        return f"ord_type {body.get('ord_type')!r} does not fit side {body.get('side')!r}"

    def _new_order(self, body: dict[str, Any], now_ms: int) -> dict[str, Any]:
        created = datetime.fromtimestamp(now_ms / 1000, tz=KST).isoformat(timespec="seconds")
        return {
            "uuid": str(uuid.uuid4()), "side": body["side"], "ord_type": body["ord_type"],
            "price": body.get("price"), "state": "wait", "market": body["market"], "created_at": created,
            "volume": body.get("volume"), "remaining_volume": body.get("volume"), "reserved_fee": "0",
            "remaining_fee": "0", "paid_fee": "0", "locked": "0", "executed_volume": "0", "trades_count": 0,
            "identifier": body.get("identifier"),
        }

    def _fill(self, order: dict[str, Any]) -> None:
        price = self.price_of(order["market"])
        coin = order["market"].split("-", 1)[1]
        if order["side"] == "bid":
            funds = Decimal(order["price"]) if order["ord_type"] == "price" else Decimal(order["price"]) * Decimal(order["volume"])
            volume = (funds / price).quantize(Decimal("0.00000001"))
        else:
            volume = Decimal(order["volume"])
            funds = volume * price
        fee = (funds * FEE_RATE).quantize(Decimal("0.00000001"))
        if order["side"] == "bid":
            self.balances["KRW"] = self.balances.get("KRW", Decimal(0)) - funds - fee
            self.balances[coin] = self.balances.get(coin, Decimal(0)) + volume
        else:
            self.balances[coin] = self.balances.get(coin, Decimal(0)) - volume
            self.balances["KRW"] = self.balances.get("KRW", Decimal(0)) + funds - fee
        order.update(state="done", executed_volume=str(volume), remaining_volume="0", paid_fee=str(fee),
                     avg_price=str(price), trades_count=1)


def _positive(value: Any) -> bool:
    try:
        return Decimal(str(value)) > 0
    except ArithmeticError:
        return False
