"""The emulator serves the bundled real feeds as a feed server would, and plays news scenarios."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from coinpilot_pipelines.emulator import feeds
from coinpilot_pipelines.emulator.scenarios import ScenarioError, load_scenario

PROVENANCE = Path(feeds.__file__).with_name("data") / "PROVENANCE.md"
MOMENT = datetime(2026, 2, 20, 12, 0, tzinfo=timezone.utc)


def rss(emulator, source: str, **headers: str) -> httpx.Response:  # noqa: ANN001
    return httpx.get(f"{emulator.url}/rss/{source}", headers=headers)


def test_bundled_feeds_are_the_recorded_files_named_in_the_provenance() -> None:
    recorded = dict(re.findall(r"^\| `(rss/[^`]+)` \|.*\| `([0-9a-f]{64})` \|$", PROVENANCE.read_text(), re.MULTILINE))
    assert sorted(recorded) == sorted(f"rss/{path}" for path in feeds.BUNDLED_FEEDS.values())
    for path, digest in recorded.items():
        assert hashlib.sha256(gzip.decompress((feeds.RSS_DIR.parent / path).read_bytes())).hexdigest() == digest


def test_feeds_are_served_byte_for_byte_with_validators(emulator) -> None:  # noqa: ANN001
    emulator.clock.freeze(int(MOMENT.timestamp() * 1000))
    assert httpx.get(f"{emulator.url}/rss").json() == {"sources": list(feeds.DEFAULT_SOURCES)}
    response = rss(emulator, "theblock")
    assert response.status_code == 200
    assert response.content == feeds.feed_bytes("theblock")
    assert response.headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert re.fullmatch(r'"[0-9a-f]{20}"', response.headers["etag"])
    assert response.headers["last-modified"] == "Fri, 20 Feb 2026 12:00:00 GMT"
    by_etag = rss(emulator, "theblock", **{"If-None-Match": response.headers["etag"]})
    by_date = rss(emulator, "theblock", **{"If-Modified-Since": response.headers["last-modified"]})
    stale = rss(emulator, "theblock", **{"If-None-Match": '"0000"'})
    assert (by_etag.status_code, by_etag.content, by_date.status_code, stale.status_code) == (304, b"", 304, 200)
    assert rss(emulator, "nope").status_code == 404
    assert emulator.stats()["news_requests"] == {"theblock": 4}


def test_cointelegraph_replays_its_polls_one_after_another(emulator) -> None:  # noqa: ANN001
    bodies = [rss(emulator, "cointelegraph").content for _ in range(5)]
    expected = [feeds.feed_bytes(name) for name in feeds.DEFAULT_SOURCES["cointelegraph"]]
    assert bodies == [*expected, expected[-1]]  # the last poll repeats once the sequence is used up


def test_stalled_repeating_and_subset_scenarios(emulator) -> None:  # noqa: ANN001
    emulator.set_scenario({"news": {
        "stalled": ["cointelegraph"],
        "repeating": ["theblock"],
        "polls": {"mini": [{"feed": "coindesk", "items": [2, 0], "restamp": [0]}]},
    }})
    emulator.clock.freeze(int(MOMENT.timestamp() * 1000))
    assert {rss(emulator, "cointelegraph").content for _ in range(3)} == {feeds.feed_bytes("cointelegraph-all")}
    repeated = rss(emulator, "theblock").content
    assert repeated.count(format_datetime(MOMENT).encode()) == 19 and b"-0500</pubDate>" not in repeated
    mini = rss(emulator, "mini").content
    assert mini.count(b"<item>") == 2
    assert mini.index(b"interactive-brokers-now-accepts") < mini.index(b"citadel-securities-and-defi")
    assert b"<pubDate>Fri, 20 Feb 2026 12:00:00 +0000</pubDate>" in mini


@pytest.mark.parametrize("fault,status,content_type,starts", [
    ("html_page", 200, "text/html; charset=utf-8", b"<!DOCTYPE html>"),
    ("malformed_xml", 200, "application/rss+xml; charset=utf-8", b"<?xml"),
    ({"kind": "http_error", "status": 500}, 500, "text/plain; charset=utf-8", b"upstream"),
    ("empty_feed", 200, "application/rss+xml; charset=utf-8", b"<?xml"),
])
def test_broken_feed_faults(emulator, fault, status: int, content_type: str, starts: bytes) -> None:  # noqa: ANN001
    emulator.set_scenario({"news": {"broken": {"decrypt": fault}}})
    response = rss(emulator, "decrypt")
    assert (response.status_code, response.headers["content-type"]) == (status, content_type)
    assert response.content.startswith(starts) and b"<item>" not in response.content[-200:]
    assert rss(emulator, "coindesk").content == feeds.feed_bytes("coindesk")  # the others are fine


def test_news_scenario_over_the_admin_endpoint(emulator) -> None:  # noqa: ANN001
    doc = {"news": {"broken": {"decrypt": {"kind": "html_page", "after_requests": 1, "count": 1}}}}
    assert httpx.put(f"{emulator.url}/_emulator/scenario", content=json.dumps(doc)).status_code == 200
    assert [rss(emulator, "decrypt").headers["content-type"].split(";")[0] for _ in range(3)] == \
        ["application/rss+xml", "text/html", "application/rss+xml"]
    bad = httpx.put(f"{emulator.url}/_emulator/scenario", content=json.dumps({"news": {"slow": {"nope": 1}}}))
    assert bad.status_code == 400 and "news.slow: unknown source 'nope'" in bad.json()["error"]


@pytest.mark.parametrize("doc,message", [
    ({"news": {"polls": {"x": [{"feed": "nope"}]}}}, "news.polls.x[0].feed: 'nope' is not a bundled feed"),
    ({"news": {"polls": {"x": [{"feed": "theblock", "items": [19]}]}}}, "items: expected a list of item indices 0..18"),
    ({"news": {"polls": {"x": []}}}, "news.polls.x: expected a non-empty list of polls"),
    ({"news": {"broken": {"decrypt": "on_fire"}}}, "news.broken.decrypt.kind: 'on_fire' is not one of"),
    ({"news": {"broken": {"decrypt": {"kind": "http_error", "status": 200}}}}, "expected an HTTP error status"),
    ({"news": {"stalled": ["nowhere"]}}, "news.stalled: unknown source 'nowhere'"),
    ({"news": {"slow": {"decrypt": -1}}}, "news.slow.decrypt: expected seconds >= 0"),
    ({"news": {"sometimes": True}}, "news: unknown fields sometimes"),
])
def test_news_scenario_documents_are_checked(doc: dict, message: str) -> None:
    with pytest.raises(ScenarioError, match=re.escape(message)):
        load_scenario(json.dumps(doc))


def test_news_faults_preset() -> None:
    news = load_scenario("news-faults").news
    assert news.broken["theblock"].kind == "malformed_xml" and news.slow == {"prnewswire": 15.0}
    assert news.repeating == {"decrypt"} and news.stalled == {"cointelegraph"}
