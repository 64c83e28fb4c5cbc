"""RSS 2.0 / Atom feeds over HTTP: conditional GET, a size cap, a per-source deadline, parsing.

The only module that requests feed URLs or reads feed documents. Each fetch is bounded (one
quick retry for dropped connections and 5xx, none after a timeout, since the deadline is spent)
and ends as a parsed feed, "not modified", or a `FeedError` saying what went wrong; the caller
records the error against its source and backs off, and the other sources are unaffected.
Feedparser does the XML: it copes with the RSS and Atom dialects found in the wild and turns
every date format and offset into UTC.
"""

from __future__ import annotations

import calendar
import io
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

import feedparser
import httpx

from coinpilot_pipelines.clients.http import (
    ResponseTooLarge,
    body_excerpt,
    read_capped,
    tls_context,
)
from coinpilot_pipelines.news.identity import is_url, plain_text
from coinpilot_pipelines.news.model import FeedItem, ItemReject, NewsFeed, ParsedFeed

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
_HTML_START = re.compile(rb"^\s*(<!doctype\s+html|<html)", re.IGNORECASE)
_HTML_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
# An empty namespaced element such as CoinDesk's `<dc:description/>` makes feedparser replace the
# item's description with nothing (the kurtmckee/feedparser#324 family); without attributes or
# text it carries nothing, so it is dropped before parsing.
_EMPTY_NAMESPACED_ELEMENT = re.compile(rb"<([A-Za-z_][\w.-]*:[A-Za-z_][\w.-]*)\s*(?:/>|>\s*</\1\s*>)")
# Feedparser reports these when headers and the XML declaration disagree; the document is fine.
_HARMLESS_PARSER_NOTES = (feedparser.CharacterEncodingOverride,)


class FeedError(RuntimeError):
    """A feed could not be fetched or read; the message says why (never the URL's query)."""

    def __init__(self, message: str, *, http_status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.retryable = retryable


@dataclass(frozen=True)
class FeedRequest:
    feed: NewsFeed
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class FeedResponse:
    """A successful fetch: a parsed feed, or ``feed=None`` when the server said 304."""

    http_status: int
    feed: ParsedFeed | None
    etag: str | None
    last_modified: str | None
    elapsed_s: float


@dataclass(frozen=True)
class FetchFailure:
    error: FeedError
    elapsed_s: float


class RssClient:
    """Fetches several feeds at once; one slow or broken feed only costs its own deadline."""

    def __init__(
        self,
        *,
        timeout_s: float = 10.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_attempts: int = 2,
        retry_delay_s: float = 0.5,
        max_in_flight: int = 8,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.max_attempts = max(1, max_attempts)
        self.retry_delay_s = retry_delay_s
        self.max_in_flight = max(1, max_in_flight)
        self._sleep = sleep
        self._http = httpx.Client(
            timeout=timeout_s,
            follow_redirects=True,
            transport=transport,
            verify=tls_context(),
            headers={"Accept": ACCEPT, "User-Agent": "coinpilot-pipelines"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RssClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch_all(self, requests: Sequence[FeedRequest]) -> list[FeedResponse | FetchFailure]:
        """Each request's outcome, in request order."""
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.max_in_flight, len(requests)),
                                thread_name_prefix="rss-fetch") as pool:
            return list(pool.map(self.fetch, requests))

    def fetch(self, request: FeedRequest) -> FeedResponse | FetchFailure:
        started = time.monotonic()
        deadline = started + self.timeout_s
        attempt = 0
        while True:
            attempt += 1
            try:
                status, body, headers = self._get(request, deadline)
                if status == 304:
                    return FeedResponse(304, None, request.etag, request.last_modified, time.monotonic() - started)
                try:
                    feed = parse_feed(body, headers.get("Content-Type", ""))
                except FeedError as exc:
                    raise FeedError(str(exc), http_status=status) from None
                return FeedResponse(status, feed, headers.get("ETag"), headers.get("Last-Modified"),
                                    time.monotonic() - started)
            except FeedError as exc:
                out_of_time = time.monotonic() + self.retry_delay_s >= deadline
                if not exc.retryable or attempt == self.max_attempts or out_of_time:
                    return FetchFailure(exc, time.monotonic() - started)
                log.info("%s: %s; retrying", request.feed.source, exc)
                self._sleep(self.retry_delay_s)

    def _get(self, request: FeedRequest, deadline: float) -> tuple[int, bytes, httpx.Headers]:
        headers = {}
        if request.etag:
            headers["If-None-Match"] = request.etag
        if request.last_modified:
            headers["If-Modified-Since"] = request.last_modified
        try:
            with self._http.stream("GET", request.feed.url, headers=headers) as response:
                body = b"" if response.status_code == 304 else read_capped(response, self.max_bytes, deadline=deadline)
        except ResponseTooLarge as exc:
            raise FeedError(str(exc), http_status=response.status_code) from None
        except httpx.TimeoutException:
            raise FeedError(f"no complete response within {self.timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise FeedError(f"connection failed: {exc.__class__.__name__}", retryable=True) from None
        if response.status_code >= 400:
            raise FeedError(f"HTTP {response.status_code}: {body_excerpt(body)}", http_status=response.status_code,
                            retryable=response.status_code >= 500)
        return response.status_code, body, response.headers


def parse_feed(body: bytes, content_type: str = "") -> ParsedFeed:
    """A feed document to items with UTC times; items that cannot be stored come back as rejects.

    Raises `FeedError` for what is not a usable feed at all: an HTML page (an error or login
    page served with status 200), malformed XML, a document that is neither RSS nor Atom, or a
    feed without items.
    """
    if not body.strip():
        raise FeedError("empty response body")
    if "html" in content_type.lower() or _HTML_START.match(body):
        title = _HTML_TITLE.search(body)
        shown = " ".join(title.group(1).decode("utf-8", errors="replace").split())[:120] if title else "untitled"
        raise FeedError(f"an HTML page instead of a feed ({content_type or 'no content type'}): {shown!r}")
    # A BytesIO, since feedparser treats a bare string as a file name or URL to open.
    document = _EMPTY_NAMESPACED_ELEMENT.sub(b"", body)
    parsed = feedparser.parse(io.BytesIO(document), response_headers={"content-type": content_type or "application/xml"})
    problem = parsed.get("bozo_exception")
    if parsed.get("bozo") and not isinstance(problem, _HARMLESS_PARSER_NOTES):
        raise FeedError(f"malformed XML: {problem}")
    if not parsed.get("version"):
        raise FeedError("the document is neither RSS nor Atom")
    if not parsed.entries:
        raise FeedError("the feed has no items")
    items: list[FeedItem] = []
    rejects: list[ItemReject] = []
    for entry in parsed.entries:
        item, reason = _entry_item(entry)
        if item is None:
            rejects.append(ItemReject(reason=reason, raw_item=_entry_json(entry)))
        else:
            items.append(item)
    return ParsedFeed(items=items, rejects=rejects)


def _entry_item(entry: feedparser.FeedParserDict) -> tuple[FeedItem | None, str]:
    guid = (entry.get("id") or "").strip() or None
    link = (entry.get("link") or "").strip() or None
    if guid is None and not is_url(link):
        return None, "item has neither a guid nor an http(s) link"
    published_at = None
    for raw_key, parsed_key in (("published", "published_parsed"), ("updated", "updated_parsed")):
        if _field(entry, raw_key):
            parsed = _field(entry, parsed_key)
            if parsed is None:
                return None, f"{raw_key} date {_field(entry, raw_key)!r} is not a date"
            # feedparser gives the time already shifted to UTC, as a struct_time
            published_at = datetime.fromtimestamp(calendar.timegm(parsed), tz=timezone.utc)
            break
    return FeedItem(
        guid=guid,
        link=link,
        title=plain_text(entry.get("title") or ""),
        summary=plain_text(entry.get("summary") or ""),
        published_at=published_at,
    ), ""


def _field(entry: feedparser.FeedParserDict, key: str) -> object:
    # `in` first: feedparser answers a missing `updated` with `published` and a deprecation warning.
    return entry.get(key) if key in entry else None


def _entry_json(entry: feedparser.FeedParserDict) -> str:
    fields = {key: _field(entry, key) for key in ("id", "link", "title", "published", "updated") if _field(entry, key)}
    return json.dumps(fields, ensure_ascii=False, sort_keys=True)
