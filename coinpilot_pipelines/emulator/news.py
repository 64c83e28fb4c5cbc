"""The emulator's news feeds: ``GET /rss/{source}`` plays each source's poll sequence.

Every request to a source is its next poll (the last poll repeats once the sequence is used up).
Answers carry ``ETag`` and ``Last-Modified``; a conditional request whose validators still
match gets ``304 Not Modified``, as from a real feed server.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from datetime import datetime, timezone
from email.utils import format_datetime, parsedate_to_datetime

from coinpilot_pipelines.emulator.feeds import item_count, render_feed
from coinpilot_pipelines.emulator.scenarios import NewsFault, NewsScenario, PollSpec

RSS_CONTENT_TYPE = "application/rss+xml; charset=utf-8"
HTML_ERROR_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>503 Service Temporarily Unavailable</title></head>\n"
    b"<body><h1>Service Temporarily Unavailable</h1><p>The server is temporarily unable to service your "
    b"request. Please try again later.</p></body></html>\n"
)


class NewsReplay:
    """Per-source request counters and the validators of what each source served last."""

    def __init__(self, scenario: NewsScenario) -> None:
        self.scenario = scenario
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self._polls_served: Counter[str] = Counter()
        self._served: dict[str, tuple[str, datetime]] = {}  # source -> (ETag, Last-Modified)

    def sources(self) -> list[str]:
        return list(self.scenario.polls)

    def slow_s(self, source: str) -> float:
        return self.scenario.slow.get(source, 0.0)

    def respond(self, source: str, *, if_none_match: str | None, if_modified_since: str | None,
                now_ms: int) -> tuple[int, bytes, dict[str, str]]:
        """Status, body and headers of the next poll of ``source`` (which must exist)."""
        now = datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc).replace(microsecond=0)
        with self._lock:
            self.requests[source] += 1
            fault = self.scenario.broken.get(source)
            spec = self._current_spec(source)
            if fault is not None and fault.active(self.requests[source]):
                return _fault_reply(fault, spec)
            self._polls_served[source] += 1
            body = render_feed(spec.feed, items=spec.items, pubdates=self._pubdates(source, spec, now))
            etag = f'"{hashlib.sha256(body).hexdigest()[:20]}"'
            previous = self._served.get(source)
            last_modified = previous[1] if previous and previous[0] == etag else now
            self._served[source] = (etag, last_modified)
        headers = {"ETag": etag, "Last-Modified": format_datetime(last_modified, usegmt=True)}
        if _not_modified(etag, last_modified, if_none_match, if_modified_since):
            return 304, b"", headers
        return 200, body, {**headers, "Content-Type": RSS_CONTENT_TYPE}

    def _pubdates(self, source: str, spec: PollSpec, now: datetime) -> dict[int, str]:
        restamp = range(item_count(spec.feed)) if source in self.scenario.repeating else spec.restamp
        return {**{i: format_datetime(now) for i in restamp}, **{i: "not a date" for i in spec.bad_dates}}

    def _current_spec(self, source: str) -> PollSpec:
        sequence = self.scenario.polls[source]
        if source in self.scenario.stalled:
            return sequence[0]
        return sequence[min(self._polls_served[source], len(sequence) - 1)]


def _not_modified(etag: str, last_modified: datetime, if_none_match: str | None, if_modified_since: str | None) -> bool:
    if if_none_match is not None:  # takes precedence over If-Modified-Since (RFC 9110)
        return etag in {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    if if_modified_since is not None:
        try:
            return last_modified <= parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
    return False


def _fault_reply(fault: NewsFault, spec: PollSpec) -> tuple[int, bytes, dict[str, str]]:
    if fault.kind == "html_page":
        return 200, HTML_ERROR_PAGE, {"Content-Type": "text/html; charset=utf-8"}
    if fault.kind == "http_error":
        return fault.status, b"upstream feed unavailable\n", {"Content-Type": "text/plain; charset=utf-8"}
    if fault.kind == "empty_feed":
        return 200, render_feed(spec.feed, drop_items=True), {"Content-Type": RSS_CONTENT_TYPE}
    body = render_feed(spec.feed, items=spec.items)
    return 200, body[: len(body) // 2], {"Content-Type": RSS_CONTENT_TYPE}  # malformed_xml
