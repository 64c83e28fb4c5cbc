"""Source health from deterministic emulator poll sequences: stall, low-ratio streak, volatility,
the health score, and broken sources that never stop the others."""

from __future__ import annotations

from datetime import timedelta

import pytest

from coinpilot_pipelines.news.dedup import ItemKind
from coinpilot_pipelines.news.health import HealthCarry, HealthThresholds, PollRecord, evaluate_polls, health_score
from coinpilot_pipelines.storage.database import get_engine
from coinpilot_pipelines.storage.news import poll_history, prepare_sources
from coinpilot_pipelines_tests.news_helpers import T0, Poller, feeds_on

# decrypt's 58 items revealed five at a time, newest last: a source that keeps publishing.
STEADY = [{"feed": "decrypt", "items": list(range(50 - 5 * k, 58 - 5 * k))} for k in range(10)]


def test_a_source_that_stops_publishing_is_stalled_after_the_threshold(db_url: str, emulator) -> None:  # noqa: ANN001
    emulator.set_scenario({"news": {"stalled": ["cointelegraph"], "polls": {"decrypt": STEADY}}})
    poller = Poller(emulator, get_engine(db_url), feeds_on(emulator, "cointelegraph", "decrypt"))
    statuses = [poller.poll()["cointelegraph"].status for _ in range(12)]
    assert statuses == ["ok"] + ["not_modified"] * 11  # the stalled feed never changes again
    stalled = poller.health("cointelegraph")
    # Polls every 90 s: the last new article is 900 s old at poll 10 (not yet) and 990 s at poll 11.
    assert [h.seconds_since_new for h in stalled][-2:] == [900.0, 990.0]
    assert [h.stalled for h in stalled] == [False] * 11 + [True]
    assert stalled[-1].last_new_article_at == T0
    assert stalled[-1].health_score == 0.65 and stalled[-1].problems == ["stalled"]
    assert not any(h.stalled for h in poller.health("decrypt"))
    assert poller.health("decrypt")[-1].health_score == 1.0
    poller.close()


def test_stall_threshold_is_configurable(sqlite_url: str, emulator) -> None:  # noqa: ANN001
    poller = Poller(emulator, get_engine(sqlite_url), feeds_on(emulator, "coindesk"),
                    thresholds=HealthThresholds(stall_after_s=100))
    for _ in range(3):
        poller.poll()
    assert [h.stalled for h in poller.health("coindesk")] == [False, False, True]
    poller.close()


def test_a_source_repeating_its_items_trips_the_low_ratio_streak(db_url: str, emulator) -> None:  # noqa: ANN001
    """The Block serving the same 19 items with a fresh pubDate every poll: updates, never news."""
    emulator.set_scenario({"news": {"repeating": ["theblock"]}})
    poller = Poller(emulator, get_engine(db_url), feeds_on(emulator, "theblock"))
    polls = [poller.poll()["theblock"] for _ in range(5)]
    assert [(p.raw_count, p.counts[ItemKind.NEW], p.dedup_ratio) for p in polls] == \
        [(19, 19, 1.0)] + [(19, 0, 0.0)] * 4
    health = poller.health("theblock")
    assert [h.low_ratio_streak for h in health] == [0, 1, 2, 3, 4]
    assert [h.low_ratio for h in health] == [False, False, False, True, True]  # NEWS_DEDUP_RATIO_STREAK = 3
    assert health[3].rolling_ratio == pytest.approx(19 / 76)
    assert health[3].problems == ["low dedup ratio", "volatile dedup ratio"]
    assert health[3].health_score == 0.6
    poller.close()


def test_a_swinging_ratio_is_volatile_without_being_low(db_url: str, emulator) -> None:  # noqa: ANN001
    """Coindesk alternating four new items with the same four re-dated plus one new: 1.0, 0.2, ..."""
    swing = []
    for start in (0, 5, 10):
        fresh = list(range(start, start + 4))
        swing += [{"feed": "coindesk", "items": fresh},
                  {"feed": "coindesk", "items": [*fresh, start + 4], "restamp": fresh}]
    emulator.set_scenario({"news": {"polls": {"coindesk": swing, "decrypt": STEADY}}})
    poller = Poller(emulator, get_engine(db_url), feeds_on(emulator, "coindesk", "decrypt"))
    ratios = [poller.poll()["coindesk"].dedup_ratio for _ in range(6)]
    assert ratios == [1.0, 0.2, 1.0, 0.2, 1.0, 0.2]
    health = poller.health("coindesk")
    assert [h.ratio_std is not None and round(h.ratio_std, 3) for h in health] == \
        [False, False, 0.377, 0.4, 0.392, 0.4]  # a spread needs three ratios
    assert [h.volatile for h in health] == [False, False, True, True, True, True]
    assert not any(h.low_ratio for h in health)
    assert health[-1].health_score == 0.85
    assert not any(h.volatile for h in poller.health("decrypt"))
    poller.close()


@pytest.mark.parametrize("fault,message", [
    ({"kind": "html_page"}, "an HTML page instead of a feed (text/html; charset=utf-8): "
                            "'503 Service Temporarily Unavailable'"),
    ({"kind": "malformed_xml"}, "malformed XML:"),
    ({"kind": "http_error", "status": 502}, "HTTP 502: upstream feed unavailable"),
    ({"kind": "empty_feed"}, "the feed has no items"),
])
def test_a_broken_source_is_recorded_backs_off_and_never_stops_the_others(
        db_url: str, emulator, fault: dict, message: str) -> None:  # noqa: ANN001
    emulator.set_scenario({"news": {"broken": {"theblock": fault}}})
    engine = get_engine(db_url)
    poller = Poller(emulator, engine, feeds_on(emulator, "coindesk", "theblock", "decrypt"))
    rounds = [poller.poll() for _ in range(3)]
    first = rounds[0]
    assert first["theblock"].status == "error" and first["theblock"].error.startswith(message)
    assert (first["coindesk"].counts, first["decrypt"].counts) == ({ItemKind.NEW: 25}, {ItemKind.NEW: 58})
    # 1st failure: retry after 60 s, so the next poll (90 s later) tries again; the 2nd failure
    # backs off 120 s, so the poll after that skips the source.
    assert [r["theblock"].status for r in rounds] == ["error", "error", "backoff"]
    assert rounds[2]["theblock"].error == "backing off after 2 failed polls until 2026-02-20 12:03:30 UTC"
    state = prepare_sources(engine, poller.feeds, poller.now)["theblock"]
    assert (state.consecutive_errors, state.backoff_until) == (2, T0 + timedelta(seconds=90 + 120))
    health = poller.health("theblock")[-1]
    assert (health.error_share, health.health_score, health.problems) == (1.0, 0.6, ["failing"])
    assert [poller.health(s)[-1].health_score for s in ("coindesk", "decrypt")] == [1.0, 1.0]
    poller.close()


def test_a_slow_source_times_out_alone(sqlite_url: str, emulator) -> None:  # noqa: ANN001
    emulator.set_scenario({"news": {"slow": {"prnewswire": 2.0}}})
    poller = Poller(emulator, get_engine(sqlite_url), feeds_on(emulator, "prnewswire", "coindesk"), timeout_s=0.5)
    polls = poller.poll()
    assert (polls["prnewswire"].status, polls["prnewswire"].error) == ("error", "no complete response within 0.5 s")
    assert polls["coindesk"].counts == {ItemKind.NEW: 25}
    assert polls["coindesk"].elapsed_ms < 500  # fetched alongside, not after, the slow source
    poller.close()


def test_a_source_recovers_and_its_error_state_clears(sqlite_url: str, emulator) -> None:  # noqa: ANN001
    emulator.set_scenario({"news": {"broken": {"theblock": {"kind": "html_page", "count": 1}}}})
    engine = get_engine(sqlite_url)
    poller = Poller(emulator, engine, feeds_on(emulator, "theblock"))
    assert [poller.poll()["theblock"].status for _ in range(2)] == ["error", "ok"]
    state = prepare_sources(engine, poller.feeds, poller.now)["theblock"]
    assert (state.consecutive_errors, state.backoff_until) == (0, None)
    assert [h.error_share for h in poller.health("theblock")] == [1.0, 0.5]
    history = poll_history(engine, ["theblock"], limit=10)
    assert [entry.poll.unique_count for entry in history] == [0, 19]
    poller.close()


def test_health_score_penalizes_stall_anomalies_and_errors() -> None:
    assert health_score(stalled=False, low_ratio=False, volatile=False, error_share=0.0) == 1.0
    assert health_score(stalled=True, low_ratio=False, volatile=False, error_share=0.0) == 0.65
    assert health_score(stalled=False, low_ratio=True, volatile=True, error_share=0.0) == 0.6
    assert health_score(stalled=False, low_ratio=False, volatile=False, error_share=0.5) == 0.8
    assert health_score(stalled=True, low_ratio=True, volatile=True, error_share=1.0) == 0.0


def test_incremental_evaluation_equals_evaluating_the_whole_history() -> None:
    ratios = [1.0, None, 0.1, 0.0, None, 0.05, 1.0, 0.3, None, 0.0, 0.9, 0.1, 0.1, 0.1]
    polls = [PollRecord(i + 1, T0 + timedelta(seconds=90 * i), "ok" if r is not None or i % 3 else "error",
                        10 if r is not None else 0, round(10 * r) if r is not None else 0, r)
             for i, r in enumerate(ratios)]
    thresholds = HealthThresholds(volatility_window=4)
    whole = evaluate_polls(polls, history=[], carry=HealthCarry(), first_polled_at=T0, thresholds=thresholds)
    stepwise, carry = [], HealthCarry()
    for i, poll in enumerate(polls):
        [result] = evaluate_polls([poll], history=polls[:i], carry=carry, first_polled_at=T0, thresholds=thresholds)
        stepwise.append(result)
        carry = result.carry
    assert stepwise == whole
    assert [r.low_ratio_streak for r in whole[:4]] == [0, 0, 1, 2]  # a poll without a ratio keeps the streak
