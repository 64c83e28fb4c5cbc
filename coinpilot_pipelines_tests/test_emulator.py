"""The emulator speaks the exchanges' APIs as they are, over real HTTP."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import httpx
import pytest

from coinpilot_pipelines.emulator.recordings import binance_recordings, upbit_recordings
from coinpilot_pipelines.emulator.scenarios import ScenarioError, load_scenario

UTC = timezone.utc
MARCH_1_2023 = 1677628800000


def klines(emulator, **params) -> httpx.Response:  # noqa: ANN001
    return httpx.get(f"{emulator.url}/api/v3/klines", params=params)


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
    first = klines(emulator, symbol="BTCUSDT", interval="1m", limit=1)
    assert first.status_code == 429 and first.headers["Retry-After"] == "30"
    in_flight = klines(emulator, symbol="BTCUSDT", interval="1m", limit=1)  # sent before the 429 was read
    assert in_flight.status_code == 429
    emulator.clock.advance(5)
    ignored = klines(emulator, symbol="BTCUSDT", interval="1m", limit=1)
    assert ignored.status_code == 418 and int(ignored.headers["Retry-After"]) >= 50
    assert emulator.stats()["by_status"] == {"429": 2, "418": 1}


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
