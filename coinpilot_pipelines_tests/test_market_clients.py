"""The exchange clients against the emulator over real HTTP: paging, limits, faults, closed bars."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from coinpilot_pipelines.clients.binance import BinanceSpotClient
from coinpilot_pipelines.clients.http import (
    ExchangeRequestError,
    ExchangeUnavailableError,
    RetryPolicy,
    UnknownSymbolError,
)
from coinpilot_pipelines.clients.upbit import UpbitQuotationClient
from coinpilot_pipelines.emulator.recordings import binance_recordings
from coinpilot_pipelines.market.intervals import Interval, to_ms

UTC = timezone.utc
MINUTE = Interval.parse("1m")
FAST_RETRIES = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05)


def fetch_all(client, symbol: str, start: datetime, end: datetime, **kwargs) -> tuple[list, list, int]:  # noqa: ANN001
    frames, rejects, open_bars = [], [], 0
    for batch in client.fetch_candles(symbol, MINUTE, start, end, **kwargs):
        frames.append(batch.frame)
        rejects.extend(batch.rejects)
        open_bars += batch.open_bars
    return frames, rejects, open_bars


def test_multi_page_fetch_equals_the_recording_exactly(emulator) -> None:  # noqa: ANN001
    start, end = datetime(2023, 3, 1, tzinfo=UTC), datetime(2023, 3, 4, 7, tzinfo=UTC)  # 4,740 bars, 5 pages
    with BinanceSpotClient(emulator.url, max_in_flight=3) as client:
        frames, rejects, _ = fetch_all(client, "BTCUSDT", start, end, chunk_rows=2000)
        assert client.stats.requests == 5
    bars = [row for frame in frames for row in frame.itertuples(index=False)]
    recording = binance_recordings()["BTCUSDT"].rows
    expected = [recording[t] for t in range(to_ms(start), to_ms(end), 60_000)]
    assert rejects == [] and len(bars) == len(expected) == 4740
    for bar, raw in zip(bars, expected, strict=True):
        assert to_ms(bar.open_time.to_pydatetime()) == raw[0]
        assert (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.quote_volume) == tuple(raw[i] for i in (1, 2, 3, 4, 5, 7))
        assert int(bar.trade_count) == raw[8]


def test_only_closed_bars_come_out(emulator) -> None:  # noqa: ANN001
    now = datetime(2024, 5, 2, 10, 5, 30, tzinfo=UTC)
    emulator.clock.freeze(to_ms(now))
    with BinanceSpotClient(emulator.url, now=lambda: now) as client:
        frames, _, open_bars = fetch_all(client, "ETHUSDT", now - timedelta(minutes=10), now + timedelta(minutes=5))
    assert open_bars == 1
    assert frames[0]["open_time"].iloc[-1] == datetime(2024, 5, 2, 10, 4, tzinfo=UTC)


def test_rate_limit_storm_is_ridden_out_by_honouring_retry_after(emulator) -> None:  # noqa: ANN001
    emulator.set_scenario({"rate_limit_storm": {"after_requests": 1, "count": 3, "retry_after_s": 1}})
    start = datetime(2023, 3, 1, tzinfo=UTC)
    began = time.monotonic()
    with BinanceSpotClient(emulator.url, max_in_flight=4) as client:
        frames, _, _ = fetch_all(client, "BTCUSDT", start, start + timedelta(days=3))
        assert client.stats.rate_limited >= 3  # the storm, plus pages already in flight when it hit
    assert sum(len(f) for f in frames) == 3 * 1440
    assert time.monotonic() - began >= 1  # it waited as asked ...
    assert "418" not in emulator.stats()["by_status"]  # ... so it was never banned


def test_weight_budget_slows_down_before_the_limit(emulator) -> None:  # noqa: ANN001
    emulator.set_scenario({"weight_limit": 12, "weight_window_s": 2})
    start = datetime(2023, 3, 1, tzinfo=UTC)
    with BinanceSpotClient(emulator.url, weight_limit=12, weight_window_s=2, max_in_flight=2) as client:
        frames, _, _ = fetch_all(client, "BTCUSDT", start, start + timedelta(minutes=12_000))  # 12 pages, weight 24
        assert client.weight.slowdowns >= 1
    assert sum(len(f) for f in frames) == 12_000
    assert emulator.stats()["by_status"] == {"200": 12}  # never a 429


def test_transient_faults_are_retried(emulator) -> None:  # noqa: ANN001
    emulator.set_scenario({"server_errors": {"count": 2, "status": 503}, "truncated_bodies": {"after_requests": 3, "count": 1},
                           "duplicate_rows": 2, "shuffle_rows": True})
    start = datetime(2023, 3, 1, tzinfo=UTC)
    with BinanceSpotClient(emulator.url, policy=FAST_RETRIES, max_in_flight=1) as client:
        frames, rejects, _ = fetch_all(client, "BTCUSDT", start, start + timedelta(minutes=2500))
        assert client.stats.transient_retries == 3
    assert rejects == []
    rows = sum(len(f) for f in frames)
    assert rows == 2500 + 2 * 2  # pages 2 and 3 each repeat two bars of the page before


@pytest.mark.parametrize("fault", ["server_errors", "truncated_bodies"])
def test_persistent_faults_fail_with_a_clear_message(emulator, fault: str) -> None:  # noqa: ANN001
    emulator.set_scenario({fault: {"count": -1, "status": 503}} if fault == "server_errors" else {fault: {"count": -1}})
    with BinanceSpotClient(emulator.url, policy=FAST_RETRIES) as client:
        with pytest.raises(ExchangeUnavailableError, match=r"binance klines BTCUSDT 1m .* gave up after 4 attempts") as error:
            fetch_all(client, "BTCUSDT", datetime(2023, 3, 1, tzinfo=UTC), datetime(2023, 3, 2, tzinfo=UTC))
    assert ("HTTP 503" if fault == "server_errors" else "RemoteProtocolError") in str(error.value)


def test_a_refused_request_is_not_retried(emulator) -> None:  # noqa: ANN001
    with BinanceSpotClient(emulator.url, policy=FAST_RETRIES) as client:
        with pytest.raises(ExchangeRequestError, match=r"HTTP 400 .*Mandatory parameter 'symbol'"):
            fetch_all(client, "", datetime(2023, 3, 1, tzinfo=UTC), datetime(2023, 3, 1, 1, tzinfo=UTC))
        assert client.stats.requests == 1


@pytest.mark.parametrize("symbol", ["NOSUCHCOIN", "BTC_USDT"])
def test_an_unknown_binance_symbol_is_a_specific_error_never_retried(emulator, symbol: str) -> None:  # noqa: ANN001
    with BinanceSpotClient(emulator.url, policy=FAST_RETRIES, max_in_flight=4) as client:
        with pytest.raises(UnknownSymbolError, match=rf"binance lists no symbol '{symbol}'.*Invalid symbol") as error:
            fetch_all(client, symbol, datetime(2023, 3, 1, tzinfo=UTC), datetime(2023, 3, 2, tzinfo=UTC))
        assert error.value.symbol == symbol and error.value.status == 400
        assert client.stats.requests <= client.max_in_flight  # the pages already sent, none of them again
        assert client.stats.transient_retries == 0 and client.stats.rate_limited == 0


def test_an_unknown_upbit_market_is_a_specific_error_never_retried(emulator) -> None:  # noqa: ANN001
    with UpbitQuotationClient(emulator.url, policy=FAST_RETRIES) as client:
        with pytest.raises(UnknownSymbolError, match=r"upbit lists no market 'KRW-NOSUCH'.*Code not found") as error:
            fetch_all(client, "KRW-NOSUCH", datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 2, 1, 1, tzinfo=UTC))
        assert error.value.symbol == "KRW-NOSUCH" and client.stats.requests == 1


def test_malformed_rows_are_quarantined_and_the_rest_kept(emulator) -> None:  # noqa: ANN001
    bad = {"short_row": "2023-03-01T00:10:00Z", "non_numeric": "2023-03-01T00:11:00Z", "null_price": "2023-03-01T00:12:00Z"}
    emulator.set_scenario({"malformed": [{"open_time": t, "kind": k} for k, t in bad.items()]})
    with BinanceSpotClient(emulator.url) as client:
        frames, rejects, _ = fetch_all(client, "BTCUSDT", datetime(2023, 3, 1, tzinfo=UTC), datetime(2023, 3, 1, 1, tzinfo=UTC))
    assert len(frames[0]) == 57
    reasons = sorted(r.reason for r in rejects)
    assert reasons == ["close None is not a decimal string", "malformed kline: expected a 12-element array, got 7 elements",
                       "open 'not-a-price' is not a decimal string"]


def test_upbit_walks_back_with_the_exclusive_to_and_reorders(emulator) -> None:  # noqa: ANN001
    start, end = datetime(2020, 2, 20, 8, tzinfo=UTC), datetime(2020, 2, 20, 12, tzinfo=UTC)
    with UpbitQuotationClient(emulator.url) as client:
        frames, rejects, _ = fetch_all(client, "KRW-BTC", start, end)
        assert client.stats.requests == 2  # 200 newest, then 200 more reaching back past the start
    bars = sorted((row for frame in frames for row in frame.itertuples(index=False)), key=lambda b: b.open_time)
    assert rejects == [] and len(bars) == 240
    assert bars[0].open_time == start and bars[-1].open_time == end - timedelta(minutes=1)
    assert Decimal(bars[-1].open) == Decimal("11471000.0")


def test_upbit_sparse_synthetic_market_has_no_candle_for_a_minute_without_trades(emulator) -> None:  # noqa: ANN001
    start = datetime(2024, 2, 1, tzinfo=UTC)
    with UpbitQuotationClient(emulator.url) as client:
        frames, _, _ = fetch_all(client, "KRW-XRP", start, start + timedelta(hours=12))
    count = sum(len(f) for f in frames)
    assert 0 < count < 720  # quiet minutes are absent, as on Upbit
