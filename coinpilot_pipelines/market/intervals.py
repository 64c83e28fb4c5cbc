"""Candle intervals: the grid every open time must sit on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}
_SUPPORTED = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")


@dataclass(frozen=True)
class Interval:
    """A fixed-length candle interval such as ``1m`` or ``4h`` (exchange spelling)."""

    code: str
    ms: int

    @classmethod
    def parse(cls, code: str) -> Interval:
        match = re.fullmatch(r"(\d+)([mhd])", code.strip())
        if not match or code.strip() not in _SUPPORTED:
            raise ValueError(f"{code!r} is not a supported interval (one of {', '.join(_SUPPORTED)})")
        return cls(code=code.strip(), ms=int(match.group(1)) * _UNIT_MS[match.group(2)])

    @property
    def minutes(self) -> int:
        return self.ms // 60_000

    @property
    def delta(self) -> timedelta:
        return timedelta(milliseconds=self.ms)

    def floor_ms(self, epoch_ms: int) -> int:
        return epoch_ms - epoch_ms % self.ms

    def ceil_ms(self, epoch_ms: int) -> int:
        return -(-epoch_ms // self.ms) * self.ms

    def bars_between(self, start_ms: int, end_ms: int) -> int:
        """Grid slots whose open time lies in ``[start_ms, end_ms)``."""
        if end_ms <= start_ms:
            return 0
        return (self.ceil_ms(end_ms) - self.ceil_ms(start_ms)) // self.ms

    def __str__(self) -> str:
        return self.code


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime; naive datetimes are refused, never guessed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: times must be timezone-aware UTC")
    return (moment - EPOCH) // timedelta(milliseconds=1)


def from_ms(epoch_ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=int(epoch_ms))
