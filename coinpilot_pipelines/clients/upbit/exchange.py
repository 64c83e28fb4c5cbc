"""Upbit exchange API: accounts, orders, and the JWT every call is signed with.

Each request carries a fresh HS512 JWT with the access key, a new UUID4 nonce and, when the call
has parameters, the SHA-512 of their unencoded query string. Reads are retried with backoff.
Order creation is sent once: after a timeout the order may or may not exist, and only a lookup
by its identifier can tell (`OrderOutcomeUnknown`), never a second POST.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode

import httpx
import jwt
from jwt.warnings import InsecureKeyLengthWarning

from coinpilot_pipelines.clients.http import (
    ExchangeError,
    ExchangeRequestError,
    RequestGate,
    RequestStats,
    ResponseTooLarge,
    RetryPolicy,
    read_capped,
    request_json,
    tls_context,
)
from coinpilot_pipelines.clients.upbit.quotation import pause_when_second_spent

ORDERS_PATH = "/v1/orders"
TEST_ORDERS_PATH = "/v1/orders/test"
ORDER_PATH = "/v1/order"
ACCOUNTS_PATH = "/v1/accounts"
class UpbitAuthError(ExchangeRequestError):
    """Upbit refused the credentials or the signature; the message carries Upbit's reason."""


class OrderOutcomeUnknown(ExchangeError):
    """An order request got no answer: the order may exist. Look it up by identifier."""


def unencoded_query(params: Mapping[str, Any]) -> str:
    """The query string Upbit hashes: ``urlencode`` then unquoted (``key=value&...``)."""
    return unquote(urlencode(params, doseq=True))


def sign(access_key: str, secret_key: str, params: Mapping[str, Any] | None = None) -> str:
    payload: dict[str, str] = {"access_key": access_key, "nonce": str(uuid.uuid4())}
    if params:
        payload["query_hash"] = hashlib.sha512(unencoded_query(params).encode()).hexdigest()
        payload["query_hash_alg"] = "SHA512"
    with warnings.catch_warnings():
        # Upbit issues 40-character secrets; PyJWT would warn about every signature.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(payload, secret_key, algorithm="HS512")


@dataclass(frozen=True)
class OrderResponse:
    status: int
    payload: Any
    latency_ms: int
    remaining_req: str | None

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


class UpbitExchangeClient:
    def __init__(
        self,
        base_url: str,
        access_key: str,
        secret_key: str,
        *,
        policy: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not access_key or not secret_key:
            raise ValueError("the Upbit exchange API needs UPBIT_ACCESS_KEY and UPBIT_SECRET_KEY")
        self._access_key = access_key
        self._secret_key = secret_key
        self.policy = policy or RetryPolicy(max_attempts=4, timeout_s=10.0)
        self._sleep = sleep
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=self.policy.timeout_s, transport=transport, verify=tls_context(),
                                  headers={"Accept": "application/json", "User-Agent": "coinpilot-pipelines"})
        self.gate = RequestGate(sleep=sleep)
        self.stats = RequestStats()

    def __repr__(self) -> str:  # the keys stay out of any log or error that prints the client
        return f"UpbitExchangeClient({self._http.base_url})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> UpbitExchangeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _authorization(self, params: Mapping[str, Any] | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {sign(self._access_key, self._secret_key, params)}"}

    def _respect_remaining(self, response: httpx.Response) -> None:
        pause_when_second_spent(self.gate, response)

    def _get(self, path: str, params: Mapping[str, Any] | None, what: str) -> Any:
        try:
            payload, _ = request_json(
                self._http, "GET", path, params=params, headers=lambda: self._authorization(params), what=what,
                policy=self.policy, gate=self.gate, on_response=self._respect_remaining, stats=self.stats,
                sleep=self._sleep,
            )
        except ExchangeRequestError as exc:
            if exc.status == 401:
                raise UpbitAuthError(f"{exc} (check UPBIT_ACCESS_KEY / UPBIT_SECRET_KEY and the key's permissions)",
                                     status=401) from None
            raise
        return payload

    def accounts(self) -> list[dict]:
        return self._get(ACCOUNTS_PATH, None, "upbit accounts")

    def order(self, *, uuid_: str | None = None, identifier: str | None = None) -> dict | None:
        """One order by uuid or identifier; None when Upbit has no such order."""
        params = {"uuid": uuid_} if uuid_ else {"identifier": identifier}
        try:
            return self._get(ORDER_PATH, params, f"upbit order {params}")
        except ExchangeRequestError as exc:
            if exc.status == 404:
                return None
            raise

    def create_order(self, body: Mapping[str, Any], *, test: bool) -> OrderResponse:
        """POST once to ``/v1/orders`` (or ``/v1/orders/test``). Raises `OrderOutcomeUnknown` when
        no answer came back; any answer (accepted or refused) is returned with its status."""
        self.gate.wait()
        path = TEST_ORDERS_PATH if test else ORDERS_PATH
        started = time.monotonic()
        try:
            with self._http.stream("POST", path, content=json.dumps(dict(body)),
                                   headers={"Content-Type": "application/json", **self._authorization(body)}) as response:
                raw = read_capped(response, self.policy.max_body_bytes)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise OrderOutcomeUnknown(
                f"upbit {path} {body.get('identifier')}: no answer ({exc.__class__.__name__}); the order may exist"
            ) from None
        except ResponseTooLarge as exc:
            raise OrderOutcomeUnknown(f"upbit {path} {body.get('identifier')}: {exc}; the order may exist") from None
        self._respect_remaining(response)
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = {"unparsed_body": raw[:500].decode("utf-8", errors="replace")}
        if response.status_code == 401:
            raise UpbitAuthError(f"upbit {path}: HTTP 401 {payload}", status=401)
        return OrderResponse(response.status_code, payload, int((time.monotonic() - started) * 1000),
                             response.headers.get("Remaining-Req"))
