"""Bounded retries and shared pauses for the exchange REST clients.

Each exchange client module owns its URLs and payload parsing; this module only knows HTTP:
which failures are worth another try (timeouts, dropped connections, bodies cut mid-way, 5xx),
how long to wait (exponential backoff with jitter, or the server's ``Retry-After``), and when
to give up with a message that says what was asked and what went wrong.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import random
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

log = logging.getLogger(__name__)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every client: httpx otherwise loads the CA bundle for each new client
    (about 30 ms), and the live sensor opens its clients at every tick."""
    return httpx.create_ssl_context()


class ExchangeError(RuntimeError):
    """A request to an exchange failed for good; the message names the request and the cause."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ExchangeRequestError(ExchangeError):
    """The exchange refused the request itself (4xx): retrying the same request cannot help."""

    def __init__(self, message: str, *, status: int | None = None, body: bytes = b"") -> None:
        super().__init__(message, status=status)
        self.body = body  # the exchange's error body, for the client module to read its code


class UnknownSymbolError(ExchangeRequestError):
    """The exchange does not list this symbol or market: a typo or a delisting, never retried."""

    def __init__(self, message: str, *, symbol: str, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.symbol = symbol


class ExchangeUnavailableError(ExchangeError):
    """Transient failures (5xx, timeouts, cut bodies) outlasted the retry budget."""


class RateLimitError(ExchangeError):
    """The exchange kept rate-limiting, or asked for a pause longer than a run may wait."""


class ResponseTooLarge(ValueError):
    """A response body is larger than the client accepts."""


# A klines page of 1,000 bars is about 150 kB; anything near this is not an answer to use.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5  # tries per request for transient failures
    base_delay_s: float = 0.5
    max_delay_s: float = 15.0
    max_rate_limit_waits: int = 20  # Retry-After pauses per request before giving up
    max_retry_after_s: float = 300.0  # a longer requested pause fails the run instead of stalling it
    timeout_s: float = 20.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random, capped."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


class SharedPause(Protocol):
    """A pause visible to every process using one exchange from one address (see storage.backoff)."""

    def until(self) -> float: ...  # epoch seconds

    def extend(self, until: float, reason: str) -> None: ...


class RequestGate:
    """A pause shared by every thread of one client -- and, with ``shared``, by every run.

    A ``Retry-After`` or an exhausted weight budget seen by one request holds back all the
    others, so parallel page fetches cannot keep hammering an exchange that asked us to stop. An
    exchange bans the address, not the process: with ``shared`` set, a 429 seen by one run pauses
    the other runs too. The shared pause is read before every request, not cached: a run that
    sent on a stale view would arrive after the exchange's grace for in-flight requests, and be banned.
    """

    def __init__(self, *, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
                 shared: SharedPause | None = None) -> None:
        self._sleep = sleep
        self._clock = clock
        self._shared = shared
        self._lock = threading.Lock()
        self._paused_until = 0.0

    def pause_for(self, seconds: float, reason: str = "") -> None:
        until = self._clock() + max(0.0, seconds)
        with self._lock:
            self._paused_until = max(self._paused_until, until)
        if self._shared is not None:
            self._shared.extend(until, reason)

    def wait(self) -> None:
        while True:
            shared_until = self._shared.until() if self._shared is not None else 0.0
            now = self._clock()
            with self._lock:
                remaining = max(self._paused_until, shared_until) - now
            if remaining <= 0:
                return
            self._sleep(remaining)


@dataclass
class RequestStats:
    """What retries cost, reported in materialization metadata."""

    requests: int = 0
    transient_retries: int = 0
    rate_limited: int = 0

    def merge(self, other: RequestStats) -> None:
        self.requests += other.requests
        self.transient_retries += other.transient_retries
        self.rate_limited += other.rate_limited


def retry_after_s(response: httpx.Response) -> float | None:
    """Seconds the server asks us to wait; None (so the caller's backoff applies) unless the
    header is a finite number >= 0: "nan", "inf" or "-5" must never mean "do not wait"."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def read_capped(response: httpx.Response, max_bytes: int, *, deadline: float | None = None) -> bytes:
    """A streamed response's body, refused once it passes ``max_bytes`` (or ``deadline``, monotonic)."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge(f"response of {int(declared)} bytes exceeds the {max_bytes}-byte cap")
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise ResponseTooLarge(f"response exceeds the {max_bytes}-byte cap")
        if deadline is not None and time.monotonic() > deadline:
            raise httpx.ReadTimeout("no complete response before the deadline", request=response.request)
    return bytes(body)


def request_json(
    http: httpx.Client,
    method: str,
    url: str,
    *,
    what: str,
    policy: RetryPolicy,
    gate: RequestGate,
    params: Mapping[str, Any] | None = None,
    json_body: Any = None,
    headers: Callable[[], Mapping[str, str]] | None = None,
    decode: Callable[[bytes], Any] = json.loads,
    on_response: Callable[[httpx.Response], None] | None = None,
    stats: RequestStats | None = None,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Any, httpx.Response]:
    """Send one request with bounded retries and return the decoded JSON body and the response.

    ``what`` describes the request in errors and logs (never include secrets in it). ``headers``
    is called before every attempt, so signed requests get a fresh signature (and nonce) each try.
    """
    rng = rng or random.Random()
    stats = stats if stats is not None else RequestStats()
    failures = 0
    rate_limit_waits = 0
    last_error = ""
    while True:
        gate.wait()
        stats.requests += 1
        try:
            with http.stream(method, url, params=params, json=json_body,
                             headers=headers() if headers else None) as response:
                body = read_capped(response, policy.max_body_bytes)
        except ResponseTooLarge as exc:
            raise ExchangeError(f"{what}: {exc}; refused, not retried") from None
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            # TransportError covers refused connections and bodies cut short (RemoteProtocolError).
            last_error = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
        else:
            if on_response is not None:
                on_response(response)
            status = response.status_code
            if status in (418, 429):
                rate_limit_waits += 1
                stats.rate_limited += 1
                wait_s = retry_after_s(response)
                if wait_s is None:
                    wait_s = policy.backoff_s(rate_limit_waits, rng)
                if wait_s > policy.max_retry_after_s:
                    raise RateLimitError(
                        f"{what}: HTTP {status} asks to wait {wait_s:.0f} s, more than the "
                        f"{policy.max_retry_after_s:.0f} s a run may wait"
                    )
                if rate_limit_waits > policy.max_rate_limit_waits:
                    raise RateLimitError(
                        f"{what}: still rate-limited (HTTP {status}) after {policy.max_rate_limit_waits} waits"
                    )
                # Publish the pause before anything slower (logging may write to Dagster's event log).
                gate.pause_for(wait_s, f"HTTP {status} on {what}")
                log.warning("%s: HTTP %s, waiting %.1f s as Retry-After asks", what, status, wait_s)
                continue
            if status >= 500:
                last_error = f"HTTP {status} {body_excerpt(body)}"
            elif status >= 400:
                raise ExchangeRequestError(f"{what}: HTTP {status} {body_excerpt(body)}", status=status, body=body)
            else:
                try:
                    return decode(body), response
                except ValueError as exc:
                    last_error = f"body is not valid JSON ({exc}); {len(body)} bytes received"

        failures += 1
        if failures >= policy.max_attempts:
            raise ExchangeUnavailableError(f"{what}: gave up after {failures} attempts; last error: {last_error}")
        stats.transient_retries += 1
        delay = policy.backoff_s(failures, rng)
        log.warning("%s: %s; retry %d/%d in %.2f s", what, last_error, failures,
                    policy.max_attempts - 1, delay)
        sleep(delay)


def body_excerpt(body: bytes) -> str:
    text = " ".join(body[:400].decode("utf-8", errors="replace").split())
    return text[:200] if text else "(empty body)"
