"""Which symbols the emulator serves: anything else is an unknown symbol, as on an exchange.

The default serves every symbol the project's tests, demo and benchmarks use. ``Emulator(symbols=...)``
or ``coinpilot emulator --symbols BTCUSDT,KRW-BTC,...`` serve another list: a name with a dash is
an Upbit market (``QUOTE-BASE``), any other a Binance spot symbol.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

BINANCE_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH", "BNB")
DEFAULT_BINANCE = ("BTCUSDT", "ETHUSDT", "XRPUSDT", "SOLUSDT", "BNBUSDT", "ADAUSDT", "DOGEUSDT", "DOTUSDT",
                   "LTCUSDT", "LINKUSDT", "XRPETH")
DEFAULT_UPBIT = ("KRW-BTC", "KRW-ETH", "KRW-XRP")
_BINANCE = re.compile(r"^[A-Z0-9]{2,20}$")
_UPBIT = re.compile(r"^(KRW|BTC|USDT)-[A-Z0-9]{1,15}$")


def binance_assets(symbol: str) -> tuple[str, str]:
    """(base, quote) of a Binance symbol, by its quote asset's suffix."""
    for quote in BINANCE_QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise ValueError(f"{symbol!r} does not end in a quote asset the emulator knows ({', '.join(BINANCE_QUOTES)})")


@dataclass(frozen=True)
class ServedSymbols:
    binance: tuple[str, ...] = DEFAULT_BINANCE
    upbit: tuple[str, ...] = DEFAULT_UPBIT

    @classmethod
    def of(cls, names: Iterable[str]) -> ServedSymbols:
        binance: list[str] = []
        upbit: list[str] = []
        for raw in names:
            name = raw.strip()
            if "-" in name:
                if not _UPBIT.match(name):
                    raise ValueError(f"symbols: {name!r} is not an Upbit market (QUOTE-BASE, quote KRW, BTC or USDT)")
                upbit.append(name)
            else:
                if not _BINANCE.match(name):
                    raise ValueError(f"symbols: {name!r} is not a Binance symbol (upper-case letters and digits)")
                binance_assets(name)
                binance.append(name)
        if not binance and not upbit:
            raise ValueError("symbols: the list is empty")
        return cls(tuple(dict.fromkeys(binance)), tuple(dict.fromkeys(upbit)))

    @classmethod
    def parse(cls, text: str) -> ServedSymbols:
        """A comma-separated list, e.g. ``BTCUSDT,ETHUSDT,KRW-BTC``."""
        return cls.of(part for part in text.split(",") if part.strip())
