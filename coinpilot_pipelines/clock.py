"""The one clock every time-dependent decision reads, and strict parsing of UTC times.

Production reads real UTC time (`SystemClock`); a simulation or a test hands the same code a
`SimulatedClock` it advances itself, so the same code runs live and on simulated time.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Protocol

UTC = timezone.utc


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """Real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


# On simulated time, how long after a bar closes the daemon looks at it (a live sensor polls every few seconds).
TICK_AFTER_CLOSE = timedelta(seconds=2)


class SimulatedClock:
    """Time that moves only when told to (thread-safe)."""

    def __init__(self, start: datetime) -> None:
        self._now = _require_utc(start, "start")
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = _require_utc(moment, "moment")

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now


SYSTEM_CLOCK = SystemClock()


def _require_utc(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{what} {moment!r} has no UTC offset")
    return moment.astimezone(UTC)


def parse_utc_time(text: str, what: str) -> datetime:
    """An ISO-8601 time with an offset (``Z`` allowed), as UTC; ``what`` names it in errors."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an ISO-8601 time (e.g. 2024-03-05T12:00:00Z)") from None
    return _require_utc(moment, what)
