"""Upbit: the quotation API (candles) and the exchange API (accounts and orders).

The only place that builds Upbit URLs, signs Upbit requests or reads Upbit payloads.
"""

from coinpilot_pipelines.clients.upbit.quotation import (
    MINUTE_UNITS,
    UpbitQuotationClient,
    decode_exact,
    minute_unit,
    parse_candles,
)

__all__ = ["MINUTE_UNITS", "UpbitQuotationClient", "decode_exact", "minute_unit", "parse_candles"]
