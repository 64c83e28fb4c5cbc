"""Reading feeds: every real bundled feed parses with correct UTC times; bad documents are named."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import pytest

from coinpilot_pipelines.clients.rss import FeedError, parse_feed
from coinpilot_pipelines.emulator.feeds import BUNDLED_FEEDS, feed_bytes, render_feed
from coinpilot_pipelines.news.identity import canonical_url, item_identity, normalized_title
from coinpilot_pipelines.news.model import FeedItem

UTC = timezone.utc
_ITEM_PUBDATE = re.compile(rb"<item\b.*?<pubDate>\s*(.*?)\s*</pubDate>.*?</item>", re.DOTALL)


@pytest.mark.parametrize("name", sorted(BUNDLED_FEEDS))
def test_every_item_of_every_real_feed_parses_with_its_utc_time(name: str) -> None:
    body = feed_bytes(name)
    feed = parse_feed(body, "application/rss+xml")
    # Independent reading of the raw pubDates with the standard library's RFC 2822 parser.
    expected = [parsedate_to_datetime(raw.decode()).astimezone(UTC) for raw in _ITEM_PUBDATE.findall(body)]
    assert feed.rejects == []
    assert len(feed.items) == len(expected) == body.count(b"<item>") > 0
    assert [item.published_at for item in feed.items] == expected
    assert all(item.published_at.utcoffset() == timedelta(0) for item in feed.items)
    assert all(item.title and (item.link or item.guid) for item in feed.items)


def test_the_block_minus_five_hours_offsets_become_utc() -> None:
    body = feed_bytes("theblock")
    assert body.count(b"-0500</pubDate>") == 19
    first = parse_feed(body, "application/rss+xml").items[0]
    assert b"<pubDate>Fri, 12 Dec 2025 17:33:11 -0500</pubDate>" in body
    assert first.published_at == datetime(2025, 12, 12, 22, 33, 11, tzinfo=UTC)


def test_coindesk_summaries_survive_its_empty_dc_description() -> None:
    items = parse_feed(feed_bytes("coindesk"), "application/rss+xml").items
    assert items[0].summary.startswith("The investing giant had asked the U.S. Securities and Exchange Commission")
    assert all(item.summary for item in items)


def test_atom_feeds_parse_and_offsets_are_normalized() -> None:
    atom = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Example</title><id>urn:example</id><updated>2026-02-02T10:00:00+02:00</updated>
  <entry>
    <title>ETF flows &amp; more</title><id>urn:uuid:1</id>
    <link href="https://example.com/a/?utm_source=x"/>
    <published>2026-02-02T10:00:00+02:00</published><updated>2026-02-02T11:00:00+02:00</updated>
    <summary type="html">&lt;p&gt;Flows &lt;b&gt;rose&lt;/b&gt;.&lt;/p&gt;</summary>
  </entry>
</feed>"""
    [item] = parse_feed(atom, "application/atom+xml").items
    assert item == FeedItem(guid="urn:uuid:1", link="https://example.com/a/?utm_source=x", title="ETF flows & more",
                            summary="Flows rose.", published_at=datetime(2026, 2, 2, 8, 0, tzinfo=UTC))


@pytest.mark.parametrize("body,content_type,message", [
    (b"<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>", "text/html",
     "an HTML page instead of a feed (text/html): 'Just a moment...'"),
    (b"<html><body>503</body></html>", "application/rss+xml", "an HTML page instead of a feed"),
    (render_feed("decrypt")[:5000], "application/rss+xml", "malformed XML:"),
    (render_feed("coindesk", drop_items=True), "application/rss+xml", "the feed has no items"),
    (b"<?xml version='1.0'?><prices><btc>1</btc></prices>", "application/xml", "the document is neither RSS nor Atom"),
    (b"  \n", "application/rss+xml", "empty response body"),
])
def test_documents_that_are_not_usable_feeds_are_named(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(FeedError) as error:
        parse_feed(body, content_type)
    assert str(error.value).startswith(message)


def test_items_that_cannot_be_stored_are_rejected_with_their_reason() -> None:
    body = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
      <item><title>No identity</title><pubDate>Mon, 02 Feb 2026 10:00:00 +0000</pubDate></item>
      <item><title>Bad date</title><link>https://example.com/b</link><pubDate>yesterday-ish</pubDate></item>
      <item><title>Fine</title><link>https://example.com/c</link></item>
    </channel></rss>"""
    feed = parse_feed(body, "application/rss+xml")
    assert [i.title for i in feed.items] == ["Fine"] and feed.items[0].published_at is None
    assert [r.reason for r in feed.rejects] == ["item has neither a guid nor an http(s) link",
                                                "published date 'yesterday-ish' is not a date"]
    assert '"title": "Bad date"' in feed.rejects[1].raw_item


@pytest.mark.parametrize("url,canonical", [
    ("HTTPS://CoinTelegraph.com/news/what-happened-in-crypto-today?utm_source=rss_feed&utm_medium=rss&utm_campaign=x",
     "https://cointelegraph.com/news/what-happened-in-crypto-today"),
    ("https://www.theblock.co/post/382435/fogo/?utm_source=rss&utm_medium=rss#comments",
     "https://www.theblock.co/post/382435/fogo"),
    ("https://example.com:443/a//?b=2&fbclid=x&a=1&UTM_Term=y&gclid=z", "https://example.com/a?a=1&b=2"),
    ("http://Example.com:8080/Case/Stays/", "http://example.com:8080/Case/Stays"),
    ("https://decrypt.co/?p=352201", "https://decrypt.co?p=352201"),
])
def test_canonical_urls(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical


def test_titles_normalize_quotes_case_and_punctuation() -> None:
    assert normalized_title("Here’s what happened in crypto today") == "heres what happened in crypto today"
    assert normalized_title("  HERE'S What Happened -- in Crypto Today! ") == "heres what happened in crypto today"


def test_item_identity_matches_link_and_url_shaped_guid_across_utm_forms() -> None:
    bare = FeedItem("https://cointelegraph.com/news/x", "https://cointelegraph.com/news/x?utm_source=rss_feed",
                    "X", "", None)
    tracked = FeedItem("https://cointelegraph.com/news/x?utm_medium=rss", None, "X", "", None)
    a, b = item_identity("cointelegraph", bare), item_identity("other", tracked)
    assert a.identity_key == b.identity_key and a.match_keys == b.match_keys
    uuid = item_identity("coindesk", FeedItem("9aef2b42", None, "Y", "", None))
    assert uuid.identity_key != item_identity("decrypt", FeedItem("9aef2b42", None, "Y", "", None)).identity_key
