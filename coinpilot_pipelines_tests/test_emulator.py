"""The emulator speaks the exchanges' APIs as they are, over real HTTP."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import httpx
import pytest

from coinpilot_pipelines.emulator.recordings import binance_recordings, upbit_recordings
from coinpilot_pipelines.emulator.scenarios import ScenarioError, load_scenario
from coinpilot_pipelines.emulator.server import Emulator
from coinpilot_pipelines.emulator.symbols import ServedSymbols

UTC = timezone.utc
MARCH_1_2023 = 1677628800000


def klines(emulator, client: httpx.Client | None = None, **params) -> httpx.Response:  # noqa: ANN001
    """A klines request: on ``client``'s kept-alive connection, or on a connection of its own."""
    return (client or httpx).get(f"{emulator.url}/api/v3/klines", params=params)


def test_binance_klines_replay_the_recording_field_for_field(emulator) -> None:  # noqa: ANN001
    response = klines(emulator, symbol="BTCUSDT", interval="1m", startTime=MARCH_1_2023, limit=1000)
    assert response.status_code == 200
    assert response.headers["X-MBX-USED-WEIGHT-1M"] == "2"  # klines weigh 2 at any limit
    rows = response.json()
    assert len(rows) == 1000
    assert rows[0] == binance_recordings()["BTCUSDT"].rows[MARCH_1_2023]
    assert rows[0][:6] == [MARCH_1_2023, "23140.48000000", "23150.77000000", "23128.52000000", "23142.31000000", "2.13177700"]
    assert all(len(r) == 12 and r[6] == r[0] + 59_999 for r in rows)
    assert [r[0] for r in rows] == list(range(MARCH_1_2023, MARCH_1_2023 + 1000 * 60_000, 60_000))


def test_binance_klines_bounds_and_errors(emulator) -> None:  # noqa: ANN001
    bounded = klines(emulator, symbol="BTCUSDT", interval="1m", startTime=MARCH_1_2023,
                     endTime=MARCH_1_2023 + 4 * 60_000, limit=1000).json()
    assert [r[0] for r in bounded] == [MARCH_1_2023 + i * 60_000 for i in range(5)]  # endTime is inclusive
    newest = klines(emulator, symbol="BTCUSDT", interval="1m", endTime=MARCH_1_2023 + 9 * 60_000, limit=3).json()
    assert [r[0] for r in newest] == [MARCH_1_2023 + i * 60_000 for i in (7, 8, 9)]
    assert klines(emulator, symbol="BTCUSDT", interval="1m", limit=1001).json()["code"] == -1130
    assert klines(emulator, symbol="BTCUSDT", interval="7m").json() == {"code": -1120, "msg": "Invalid interval."}
    assert klines(emulator, symbol="btc/usdt", interval="1m").json()["code"] == -1121
    assert klines(emulator, interval="1m").status_code == 400


def test_binance_klines_roll_up_to_longer_intervals(emulator) -> None:  # noqa: ANN001
    hour = klines(emulator, symbol="BTCUSDT", interval="1h", startTime=MARCH_1_2023, limit=1).json()[0]
    minutes = klines(emulator, symbol="BTCUSDT", interval="1m", startTime=MARCH_1_2023, limit=60).json()
    assert hour[1] == minutes[0][1] and hour[4] == minutes[-1][4]
    assert float(hour[2]) == max(float(m[2]) for m in minutes)
    assert float(hour[3]) == min(float(m[3]) for m in minutes)
    assert hour[6] == MARCH_1_2023 + 3_600_000 - 1


def test_only_opened_bars_exist_and_the_current_one_is_still_open(emulator) -> None:  # noqa: ANN001
    now = datetime(2024, 6, 1, 12, 30, 30, tzinfo=UTC)
    emulator.clock.freeze(int(now.timestamp() * 1000))
    rows = klines(emulator, symbol="XRPUSDT", interval="1m", limit=2).json()
    assert rows[-1][0] == int(datetime(2024, 6, 1, 12, 30, tzinfo=UTC).timestamp() * 1000)
    assert rows[-1][6] > now.timestamp() * 1000  # not closed yet
    later = klines(emulator, symbol="XRPUSDT", interval="1m", startTime=rows[-1][0] + 60_000, limit=10).json()
    assert later == []


def test_synthetic_market_is_deterministic_and_has_quiet_minutes(emulator) -> None:  # noqa: ANN001
    params = dict(symbol="SOLUSDT", interval="1m", startTime=int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000), limit=1000)
    first, second = klines(emulator, **params).json(), klines(emulator, **params).json()
    assert first == second and len(first) == 1000
    assert any(r[5] == "0.00000000" and r[8] == 0 for r in first)  # zero-volume bars, not gaps
    assert all(float(r[2]) >= max(float(r[1]), float(r[4])) and float(r[3]) <= min(float(r[1]), float(r[4])) for r in first)


def test_upbit_candles_newest_first_before_an_exclusive_to(emulator) -> None:  # noqa: ANN001
    response = httpx.get(f"{emulator.url}/v1/candles/minutes/1",
                         params={"market": "KRW-BTC", "to": "2020-02-20T11:20:00Z", "count": 200})
    assert response.status_code == 200
    assert response.headers["Remaining-Req"].startswith("group=candles; min=")
    candles = response.json()
    recorded = next(r for r in upbit_recordings() if r.unit == 1 and r.start_ms == 1582185600000)
    assert candles == [recorded.candles[t] for t in sorted(recorded.candles, reverse=True)]
    assert candles[0]["candle_date_time_utc"] == "2020-02-20T11:19:00"


def test_upbit_errors(emulator) -> None:  # noqa: ANN001
    base = f"{emulator.url}/v1/candles/minutes"
    assert httpx.get(f"{base}/1", params={"market": "KRW-BTC", "count": 201}).status_code == 400
    assert httpx.get(f"{base}/2", params={"market": "KRW-BTC"}).status_code == 400
    assert "error" in httpx.get(f"{base}/1", params={"market": "nope"}).json()


def test_rate_limit_storm_answers_429_then_418_when_ignored(emulator) -> None:  # noqa: ANN001
    emulator.set_scenario({"rate_limit_storm": {"after_requests": 0, "count": 1, "retry_after_s": 30}})
    emulator.clock.freeze(MARCH_1_2023 + 10 * 86_400_000)
    with httpx.Client() as told:
        first = klines(emulator, told, symbol="BTCUSDT", interval="1m", limit=1)
        assert first.status_code == 429 and first.headers["Retry-After"] == "30"
        in_flight = klines(emulator, symbol="BTCUSDT", interval="1m", limit=1)  # may have left before the 429 was read
        assert in_flight.status_code == 429
        emulator.clock.advance(5)
        late = klines(emulator, symbol="BTCUSDT", interval="1m", limit=1)  # late, but on a connection never told
        assert late.status_code == 429
        ignored = klines(emulator, told, symbol="BTCUSDT", interval="1m", limit=1)  # read the 429, sent anyway
        assert ignored.status_code == 418 and int(ignored.headers["Retry-After"]) >= 50
    assert emulator.stats()["by_status"] == {"429": 3, "418": 1}


def test_truncated_body_and_server_errors(emulator) -> None:  # noqa: ANN001
    emulator.set_scenario({"truncated_bodies": {"count": 1}, "server_errors": {"after_requests": 1, "count": 1, "status": 502}})
    with pytest.raises(httpx.RemoteProtocolError):
        klines(emulator, symbol="BTCUSDT", interval="1m", startTime=MARCH_1_2023, limit=1000)
    assert klines(emulator, symbol="BTCUSDT", interval="1m", limit=1).status_code == 502
    assert klines(emulator, symbol="BTCUSDT", interval="1m", limit=1).status_code == 200


def test_admin_endpoints_switch_scenario_and_clock(emulator) -> None:  # noqa: ANN001
    assert httpx.put(f"{emulator.url}/_emulator/scenario", content=json.dumps({"latency_s": 0.01})).status_code == 200
    assert emulator.state.scenario.latency_s == 0.01
    bad = httpx.put(f"{emulator.url}/_emulator/scenario", content=json.dumps({"outages": [{"start": "x", "end": 1}]}))
    assert bad.status_code == 400 and "outages[0].start" in bad.json()["error"]
    frozen = httpx.put(f"{emulator.url}/_emulator/clock", content=json.dumps({"now": "2024-01-01T00:00:00Z"})).json()
    assert frozen["now"] == 1704067200000


def test_scenario_documents_are_checked() -> None:
    assert load_scenario("rate-limit-storm").rate_limit_storm.count == 4
    with pytest.raises(ScenarioError, match="unknown scenario fields: bogus"):
        load_scenario('{"bogus": 1}')
    with pytest.raises(ScenarioError, match="not a preset"):
        load_scenario("no-such-preset")
    with pytest.raises(ScenarioError, match="kind"):
        load_scenario('{"malformed": [{"open_time": 0, "kind": "weird"}]}')


# -- every documented interval, and a start long before the first bar -------------------------------
FIRST_BAR = int(datetime(2017, 1, 1, tzinfo=UTC).timestamp() * 1000)
DAY = 86_400_000
MONDAY = int(datetime(2016, 12, 26, tzinfo=UTC).timestamp() * 1000)  # weeks open on Mondays
FIRST_BARS = {  # interval: (open, close) of the first bar
    "1s": (FIRST_BAR, FIRST_BAR + 999), "1m": (FIRST_BAR, FIRST_BAR + 59_999), "8h": (FIRST_BAR, FIRST_BAR + DAY // 3 - 1),
    "1d": (FIRST_BAR, FIRST_BAR + DAY - 1),
    "3d": (FIRST_BAR - DAY, FIRST_BAR + 2 * DAY - 1),  # 3-day bars count from the epoch
    "1w": (MONDAY, MONDAY + 7 * DAY - 1), "1M": (FIRST_BAR, int(datetime(2017, 2, 1, tzinfo=UTC).timestamp() * 1000) - 1),
}


@pytest.mark.parametrize("interval", list(FIRST_BARS))
def test_a_start_in_1970_answers_at_once_with_the_first_bars(emulator, interval: str) -> None:  # noqa: ANN001
    began = time.perf_counter()
    response = klines(emulator, symbol="ETHUSDT", interval=interval, startTime=0, limit=1)
    elapsed = time.perf_counter() - began
    assert response.status_code == 200 and elapsed < 2  # a bound for a busy machine; it takes milliseconds
    (bar,) = response.json()
    assert (bar[0], bar[6]) == FIRST_BARS[interval]


def test_longer_and_shorter_intervals_add_up_to_the_1m_source(emulator) -> None:  # noqa: ANN001
    start = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)  # a Monday
    minutes = klines(emulator, symbol="ETHUSDT", interval="1m", startTime=start, limit=480).json()
    (eight,) = klines(emulator, symbol="ETHUSDT", interval="8h", startTime=start, limit=1).json()
    assert eight[1] == minutes[0][1] and eight[4] == minutes[-1][4]
    assert float(eight[2]) == max(float(m[2]) for m in minutes) and float(eight[3]) == min(float(m[3]) for m in minutes)
    assert float(eight[5]) == pytest.approx(sum(float(m[5]) for m in minutes)) and eight[8] == sum(m[8] for m in minutes)
    seconds = klines(emulator, symbol="ETHUSDT", interval="1s", startTime=start, limit=60).json()
    assert [s[0] for s in seconds] == list(range(start, start + 60_000, 1000))
    assert seconds[0][1] == minutes[0][1] and seconds[-1][4] == minutes[0][4]
    assert max(float(s[2]) for s in seconds) == float(minutes[0][2]) and min(float(s[3]) for s in seconds) == float(minutes[0][3])
    assert sum(float(s[5]) for s in seconds) == pytest.approx(float(minutes[0][5]))
    days = klines(emulator, symbol="ETHUSDT", interval="1d", startTime=start, limit=7).json()
    (week,) = klines(emulator, symbol="ETHUSDT", interval="1w", startTime=start, limit=1).json()
    assert week[1] == days[0][1] and week[4] == days[-1][4] and week[8] == sum(d[8] for d in days)
    assert float(week[2]) == max(float(d[2]) for d in days)


# -- the open bar is the bar as of now --------------------------------------------------------------
def test_the_open_bar_shows_only_what_has_traded_up_to_now(emulator) -> None:  # noqa: ANN001
    day = int(datetime(2024, 6, 1, tzinfo=UTC).timestamp() * 1000)
    now = day + 12 * 3_600_000 + 30 * 60_000 + 30_000  # 12:30:30
    emulator.clock.freeze(now)
    minutes = klines(emulator, symbol="XRPUSDT", interval="1m", startTime=day, limit=1000).json()
    minutes += klines(emulator, symbol="XRPUSDT", interval="1m", startTime=day + 1000 * 60_000, limit=1000).json()
    assert minutes[-1][0] == now - 30_000  # the minute in progress is the last one ...
    (today,) = klines(emulator, symbol="XRPUSDT", interval="1d", startTime=day, limit=1).json()
    assert today[6] == day + 86_400_000 - 1  # ... and the day bar, still open, is the day so far:
    assert today[1] == minutes[0][1] and today[4] == minutes[-1][4]
    assert float(today[2]) == max(float(m[2]) for m in minutes) and float(today[3]) == min(float(m[3]) for m in minutes)
    assert float(today[5]) == pytest.approx(sum(float(m[5]) for m in minutes)) and today[8] == sum(m[8] for m in minutes)
    emulator.clock.freeze(day + 86_400_000 + 60_000)  # the next day: the whole day, closed
    (closed,) = klines(emulator, symbol="XRPUSDT", interval="1d", startTime=day, limit=1).json()
    assert float(closed[5]) > float(today[5])
    emulator.clock.freeze(now - 30_000 + 59_999)
    (whole_minute,) = klines(emulator, symbol="XRPUSDT", interval="1m", startTime=now - 30_000, limit=1).json()
    emulator.clock.freeze(now)
    (part,) = klines(emulator, symbol="XRPUSDT", interval="1m", startTime=now - 30_000, limit=1).json()
    assert float(part[5]) < float(whole_minute[5])  # half a minute has traded about half its volume
    assert float(part[3]) >= float(whole_minute[3]) and float(part[2]) <= float(whole_minute[2])
    candle = httpx.get(f"{emulator.url}/v1/candles/minutes/1", params={"market": "KRW-XRP", "count": 1}).json()[0]
    assert candle["candle_date_time_utc"] == "2024-06-01T12:30:00"


# -- recordings and synthetic data meet without a jump ----------------------------------------------
def test_the_recordings_meet_the_synthetic_market_without_a_jump(emulator) -> None:  # noqa: ANN001
    btc = binance_recordings()["BTCUSDT"]
    xrp = binance_recordings()["XRPETH"]
    for symbol, seam in (("BTCUSDT", btc.start_ms), ("BTCUSDT", btc.end_ms), ("XRPETH", xrp.start_ms), ("XRPETH", xrp.end_ms)):
        before, after = klines(emulator, symbol=symbol, interval="1m", startTime=seam - 60_000, limit=2).json()
        assert after[0] == seam and before[4] == after[1], (symbol, seam)  # the close before is the open after
    upbit_start, upbit_end = 1582185600000, 1582200000000  # KRW-BTC 1m recorded 08:00 .. 12:00 UTC
    for seam in (upbit_start, upbit_end):
        after, before = httpx.get(f"{emulator.url}/v1/candles/minutes/1", params={
            "market": "KRW-BTC", "to": datetime.fromtimestamp((seam + 60_000) / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "count": 2}).json()
        assert abs(after["opening_price"] / before["trade_price"] - 1) < 0.002, seam  # within a few price units


def test_upbit_hours_of_recorded_minutes_are_those_minutes_rolled_up(emulator) -> None:  # noqa: ANN001
    recorded = {t: c for r in upbit_recordings() if r.unit == 1 for t, c in r.candles.items()}
    hour = 1582189200000  # 2020-02-20 09:00 UTC
    (candle,) = httpx.get(f"{emulator.url}/v1/candles/minutes/60",
                          params={"market": "KRW-BTC", "to": "2020-02-20T10:00:00Z", "count": 1}).json()
    inside = [recorded[t] for t in sorted(recorded) if hour <= t < hour + 3_600_000]
    assert candle["candle_date_time_utc"] == "2020-02-20T09:00:00" and len(inside) > 50
    assert candle["opening_price"] == inside[0]["opening_price"] and candle["trade_price"] == inside[-1]["trade_price"]
    assert candle["high_price"] == max(c["high_price"] for c in inside)
    assert candle["candle_acc_trade_volume"] == pytest.approx(sum(c["candle_acc_trade_volume"] for c in inside))


# -- errors, weights and limits ---------------------------------------------------------------------
def test_malformed_and_unknown_requests_get_each_exchanges_error(emulator) -> None:  # noqa: ANN001
    bad = klines(emulator, symbol="BTCUSDT", interval="1m", limit="abc")
    assert bad.status_code == 400 and bad.json()["code"] == -1100 and "'limit'" in bad.json()["msg"]
    assert klines(emulator, symbol="NOSUCHCOIN", interval="1m").json() == {"code": -1121, "msg": "Invalid symbol."}
    for interval in ("1s", "8h", "3d", "1w", "1M"):
        assert klines(emulator, symbol="BTCUSDT", interval=interval, limit=1).status_code == 200
    for unknown in (httpx.get(f"{emulator.url}/api/v3/nosuch"), httpx.post(f"{emulator.url}/api/v3/klines")):
        assert unknown.status_code == 404 and set(unknown.json()) == {"code", "msg"} and "X-MBX-USED-WEIGHT-1M" in unknown.headers
    upbit = httpx.get(f"{emulator.url}/v1/nosuch")
    assert upbit.status_code == 404 and set(upbit.json()["error"]) == {"name", "message"}
    assert httpx.get(f"{emulator.url}/v1/ticker", params={"markets": "KRW-NOSUCH"}).json() == {
        "error": {"name": 404, "message": "Code not found"}}


@pytest.mark.parametrize(("path", "params", "weight"), [
    ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 1000}, 2),
    ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 10}, 2),
    ("/api/v3/exchangeInfo", {}, 20),
    ("/api/v3/depth", {"symbol": "BTCUSDT", "limit": 500}, 25),
    ("/api/v3/ticker/24hr", {"symbol": "BTCUSDT"}, 2),
    ("/api/v3/ticker/24hr", {}, 80),
    ("/api/v3/ticker/price", {}, 4),
    ("/api/v3/avgPrice", {"symbol": "BTCUSDT"}, 2),
    ("/api/v3/ping", {}, 1),
])
def test_request_weights_are_the_documented_ones(emulator, path: str, params: dict, weight: int) -> None:  # noqa: ANN001
    emulator.clock.freeze(MARCH_1_2023 + 30_000)  # one weight minute for the whole test
    response = httpx.get(f"{emulator.url}{path}", params=params)
    assert response.status_code == 200 and response.headers["X-MBX-USED-WEIGHT-1M"] == str(weight)


def test_a_binance_ban_leaves_upbit_answering_and_the_weight_is_on_every_refusal(emulator) -> None:  # noqa: ANN001
    emulator.set_scenario({"weight_limit": 4})
    emulator.clock.freeze(MARCH_1_2023 + 10_000)
    with httpx.Client() as client:
        assert [klines(emulator, client, symbol="BTCUSDT", interval="1m", limit=1).status_code
                for _ in range(2)] == [200, 200]
        limited = klines(emulator, client, symbol="BTCUSDT", interval="1m", limit=1)
        assert limited.status_code == 429 and limited.headers["X-MBX-USED-WEIGHT-1M"] == "4"
        emulator.clock.advance(2)
        banned = klines(emulator, client, symbol="BTCUSDT", interval="1m", limit=1)  # kept sending after the 429
    assert banned.status_code == 418 and banned.json()["code"] == -1003 and banned.headers["X-MBX-USED-WEIGHT-1M"] == "4"
    upbit = httpx.get(f"{emulator.url}/v1/candles/minutes/1", params={"market": "KRW-BTC", "count": 1})
    assert upbit.status_code == 200 and len(upbit.json()) == 1


# -- market data endpoints agree with the bars -------------------------------------------------------
def test_exchange_info_ticker_and_book_describe_the_same_market(emulator) -> None:  # noqa: ANN001
    now = int(datetime(2024, 6, 1, 12, 0, 30, tzinfo=UTC).timestamp() * 1000)
    emulator.clock.freeze(now)
    info = httpx.get(f"{emulator.url}/api/v3/exchangeInfo", params={"symbol": "BTCUSDT"}).json()
    assert info["serverTime"] == now and {r["rateLimitType"] for r in info["rateLimits"]} == {"REQUEST_WEIGHT", "ORDERS", "RAW_REQUESTS"}
    (symbol,) = info["symbols"]
    filters = {f["filterType"]: f for f in symbol["filters"]}
    assert (symbol["baseAsset"], symbol["quoteAsset"], symbol["status"]) == ("BTC", "USDT", "TRADING")
    tick = float(filters["PRICE_FILTER"]["tickSize"])
    assert httpx.get(f"{emulator.url}/api/v3/exchangeInfo", params={"symbol": "NOSUCHCOIN"}).json()["code"] == -1121
    ticker = httpx.get(f"{emulator.url}/api/v3/ticker/24hr", params={"symbol": "BTCUSDT"}).json()
    book = httpx.get(f"{emulator.url}/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 5}).json()
    (last,) = klines(emulator, symbol="BTCUSDT", interval="1m", limit=1).json()
    assert ticker["lastPrice"] == last[4] == book["bids"][0][0] == ticker["bidPrice"]
    assert float(book["asks"][0][0]) == pytest.approx(float(book["bids"][0][0]) + tick) and len(book["asks"]) == 5
    assert float(ticker["lowPrice"]) <= float(ticker["lastPrice"]) <= float(ticker["highPrice"])
    assert ticker["closeTime"] == now and ticker["openTime"] == now - 86_400_000
    day = klines(emulator, symbol="BTCUSDT", interval="1m", startTime=now - 86_400_000, limit=1000).json()
    assert float(ticker["highPrice"]) >= max(float(b[2]) for b in day)
    price = httpx.get(f"{emulator.url}/api/v3/ticker/price", params={"symbol": "BTCUSDT"}).json()
    assert price == {"symbol": "BTCUSDT", "price": last[4]}
    assert set(httpx.get(f"{emulator.url}/api/v3/avgPrice", params={"symbol": "BTCUSDT"}).json()) == {"mins", "price", "closeTime"}


def test_the_symbol_list_is_configurable_and_anything_else_is_unknown() -> None:
    with Emulator(symbols=ServedSymbols.parse("AAAUSDT,KRW-AAA")) as other:
        assert httpx.get(f"{other.url}/api/v3/klines", params={"symbol": "AAAUSDT", "interval": "1h", "limit": 2}).status_code == 200
        assert httpx.get(f"{other.url}/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1h"}).json()["code"] == -1121
        assert [s["symbol"] for s in httpx.get(f"{other.url}/api/v3/exchangeInfo").json()["symbols"]] == ["AAAUSDT"]
        assert [m["market"] for m in httpx.get(f"{other.url}/v1/market/all").json()] == ["KRW-AAA"]
        assert httpx.get(f"{other.url}/v1/candles/minutes/1", params={"market": "KRW-BTC"}).status_code == 404
    with pytest.raises(ValueError, match="not a Binance symbol"):
        ServedSymbols.parse("btc/usdt")
