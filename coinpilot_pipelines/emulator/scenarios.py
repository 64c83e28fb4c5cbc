"""Fault scenarios the emulator can play: what a real exchange does on a bad day.

A scenario is plain JSON so it can be given on the command line, sent to the admin endpoint, or
built in a test. Request-count triggers (``after_requests``/``count``) keep tests deterministic;
``count: -1`` means "from then on".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from coinpilot_pipelines.emulator.upbit_exchange import ExchangeScenario

from coinpilot_pipelines.emulator.feeds import BUNDLED_FEEDS, DEFAULT_SOURCES, item_count

MALFORMED_KINDS = (
    "short_row",  # an array with fields missing
    "non_numeric",  # a price that is not a number
    "null_price",  # a price that is null
    "high_below_low",  # internally inconsistent OHLC
    "negative_volume",
    "off_grid",  # open time not on the interval grid
)


NEWS_FAULT_KINDS = (
    "html_page",  # status 200 with an HTML error page instead of the feed
    "malformed_xml",  # the feed cut off in the middle
    "http_error",  # an HTTP error status (``status``, 503 by default)
    "empty_feed",  # a well-formed feed without items
)


class ScenarioError(ValueError):
    """A scenario document is not understood; the message says which field and why."""


def parse_time_ms(value: Any, where: str) -> int:
    """Epoch milliseconds from an int or an ISO-8601 time with an offset (``Z`` allowed)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ScenarioError(f"{where}: {value!r} is not an ISO-8601 time") from None
        if moment.tzinfo is None:
            raise ScenarioError(f"{where}: {value!r} has no UTC offset")
        return int(moment.astimezone(timezone.utc).timestamp() * 1000)
    raise ScenarioError(f"{where}: expected epoch ms or an ISO-8601 time, got {value!r}")


@dataclass(frozen=True)
class Window:
    """Bars with open time in ``[start_ms, end_ms)`` of one symbol (or of every symbol)."""

    start_ms: int
    end_ms: int
    symbol: str | None = None


@dataclass
class Withheld:
    window: Window
    times: int  # responses that leave these bars out before they are served


@dataclass(frozen=True)
class Late:
    window: Window
    delay_s: float  # seconds after its close before the bar is visible


@dataclass(frozen=True)
class Malformed:
    symbol: str | None
    open_ms: int
    kind: str


@dataclass
class Burst:
    """``count`` requests, starting after ``after_requests`` market requests, get this fault."""

    after_requests: int = 0
    count: int = 0
    retry_after_s: float = 1.0
    status: int = 503
    delay_s: float = 0.0  # slow_responses: how long each of these requests takes

    def active(self, request_number: int) -> bool:
        if self.count == 0 or request_number <= self.after_requests:
            return False
        return self.count < 0 or request_number <= self.after_requests + self.count


@dataclass(frozen=True)
class PollSpec:
    """What one poll of a news source returns: a bundled feed, perhaps only some of its items
    (indices in file order), some of them with a new pubDate (the emulator's "now", as when a
    publisher re-dates an old story) and some with a pubDate that is not a date."""

    feed: str
    items: tuple[int, ...] | None = None
    restamp: frozenset[int] = frozenset()
    bad_dates: frozenset[int] = frozenset()


@dataclass(frozen=True)
class NewsFault:
    kind: str
    status: int = 503
    after_requests: int = 0
    count: int = -1  # -1: from then on

    def active(self, request_number: int) -> bool:
        return Burst(self.after_requests, self.count).active(request_number)


@dataclass
class NewsScenario:
    """Per-source news behaviour, keyed by the source name in ``/rss/{source}``.

    ``polls`` replaces or adds a source's poll sequence; a ``stalled`` source keeps serving its
    first poll; a ``repeating`` source serves its items again with a fresh pubDate every time;
    ``broken`` answers with a fault; ``slow`` waits that many seconds before answering.
    """

    polls: dict[str, tuple[PollSpec, ...]] = field(
        default_factory=lambda: {s: tuple(PollSpec(f) for f in feeds) for s, feeds in DEFAULT_SOURCES.items()})
    stalled: frozenset[str] = frozenset()
    repeating: frozenset[str] = frozenset()
    broken: dict[str, NewsFault] = field(default_factory=dict)
    slow: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, doc: Any) -> NewsScenario:
        if not isinstance(doc, dict):
            raise ScenarioError(f"news: expected a JSON object, got {type(doc).__name__}")
        unknown = set(doc) - {"polls", "stalled", "repeating", "broken", "slow"}
        if unknown:
            raise ScenarioError(f"news: unknown fields {', '.join(sorted(unknown))}")
        polls = cls().polls
        for source, specs in _object(doc.get("polls", {}), "news.polls").items():
            if not isinstance(specs, list) or not specs:
                raise ScenarioError(f"news.polls.{source}: expected a non-empty list of polls")
            polls[source] = tuple(_poll_spec(spec, f"news.polls.{source}[{i}]") for i, spec in enumerate(specs))

        def sources(name: str) -> frozenset[str]:
            listed = doc.get(name, [])
            if not isinstance(listed, list):
                raise ScenarioError(f"news.{name}: expected a list of source names")
            return frozenset(_known_source(s, polls, f"news.{name}") for s in listed)

        broken = {}
        for source, fault in _object(doc.get("broken", {}), "news.broken").items():
            _known_source(source, polls, "news.broken")
            broken[source] = _news_fault(fault, f"news.broken.{source}")
        slow = {}
        for source, seconds in _object(doc.get("slow", {}), "news.slow").items():
            _known_source(source, polls, "news.slow")
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
                raise ScenarioError(f"news.slow.{source}: expected seconds >= 0, got {seconds!r}")
            slow[source] = float(seconds)
        return cls(polls=polls, stalled=sources("stalled"), repeating=sources("repeating"), broken=broken, slow=slow)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ScenarioError(f"{where}: expected a JSON object")
    return value


def _known_source(source: Any, polls: dict[str, tuple[PollSpec, ...]], where: str) -> str:
    if source not in polls:
        raise ScenarioError(f"{where}: unknown source {source!r}; known: {', '.join(polls)}")
    return source


def _poll_spec(spec: Any, where: str) -> PollSpec:
    if isinstance(spec, str):
        spec = {"feed": spec}
    spec = _object(spec, where)
    fields = {"feed", "items", "restamp", "bad_dates"}
    if set(spec) - fields:
        raise ScenarioError(f"{where}: unknown fields {', '.join(sorted(set(spec) - fields))}")
    feed = spec.get("feed")
    if feed not in BUNDLED_FEEDS:
        raise ScenarioError(f"{where}.feed: {feed!r} is not a bundled feed ({', '.join(BUNDLED_FEEDS)})")
    size = item_count(feed)

    def indices(value: Any, field_name: str) -> tuple[int, ...]:
        if not isinstance(value, list) or not all(type(i) is int and 0 <= i < size for i in value):
            raise ScenarioError(f"{where}.{field_name}: expected a list of item indices 0..{size - 1} of {feed!r}")
        return tuple(value)

    items = indices(spec["items"], "items") if "items" in spec else None
    restamp_doc = spec.get("restamp", [])
    restamp = frozenset(range(size)) if restamp_doc is True else frozenset(indices(restamp_doc, "restamp"))
    return PollSpec(feed, items, restamp, frozenset(indices(spec.get("bad_dates", []), "bad_dates")))


def _exchange(doc: Any) -> ExchangeScenario:
    if not isinstance(doc, dict):
        raise ScenarioError(f"upbit_exchange: expected a JSON object, got {type(doc).__name__}")
    unknown = set(doc) - set(ExchangeScenario.__dataclass_fields__)
    if unknown:
        raise ScenarioError(f"upbit_exchange: unknown fields {', '.join(sorted(unknown))}")
    return ExchangeScenario(**doc)


def _news_fault(fault: Any, where: str) -> NewsFault:
    if isinstance(fault, str):
        fault = {"kind": fault}
    fault = _object(fault, where)
    allowed = set(NewsFault.__dataclass_fields__)
    if set(fault) - allowed:
        raise ScenarioError(f"{where}: unknown fields {', '.join(sorted(set(fault) - allowed))}")
    if fault.get("kind") not in NEWS_FAULT_KINDS:
        raise ScenarioError(f"{where}.kind: {fault.get('kind')!r} is not one of {', '.join(NEWS_FAULT_KINDS)}")
    if not all(type(fault.get(k, 0)) is int for k in ("status", "after_requests", "count")):
        raise ScenarioError(f"{where}: status, after_requests and count are integers")
    if not 400 <= fault.get("status", 503) <= 599:
        raise ScenarioError(f"{where}.status: expected an HTTP error status 400..599")
    return NewsFault(**fault)


@dataclass
class Scenario:
    outages: list[Window] = field(default_factory=list)
    withheld: list[Withheld] = field(default_factory=list)
    late: list[Late] = field(default_factory=list)
    malformed: list[Malformed] = field(default_factory=list)
    duplicate_rows: int = 0  # each page repeats this many bars from before its start
    shuffle_rows: bool = False  # each page's rows in a scrambled (deterministic) order
    rate_limit_storm: Burst = field(default_factory=Burst)
    server_errors: Burst = field(default_factory=Burst)
    truncated_bodies: Burst = field(default_factory=Burst)
    slow_responses: Burst = field(default_factory=Burst)
    latency_s: float = 0.0
    weight_limit: int = 6000
    weight_window_s: float = 60.0
    news: NewsScenario = field(default_factory=NewsScenario)
    upbit_exchange: ExchangeScenario = field(default_factory=ExchangeScenario)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Scenario:
        if not isinstance(doc, dict):
            raise ScenarioError(f"a scenario is a JSON object, got {type(doc).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = set(doc) - known
        if unknown:
            raise ScenarioError(f"unknown scenario fields: {', '.join(sorted(unknown))}")

        def window(item: dict, where: str) -> Window:
            start = parse_time_ms(item.get("start"), f"{where}.start")
            end = parse_time_ms(item.get("end"), f"{where}.end")
            if end <= start:
                raise ScenarioError(f"{where}: end must be after start")
            return Window(start, end, item.get("symbol"))

        def burst(name: str) -> Burst:
            item = doc.get(name) or {}
            allowed = set(Burst.__dataclass_fields__)
            if set(item) - allowed:
                raise ScenarioError(f"{name}: unknown fields {', '.join(sorted(set(item) - allowed))}")
            return Burst(**item)

        malformed = []
        for i, item in enumerate(doc.get("malformed", [])):
            kind = item.get("kind")
            if kind not in MALFORMED_KINDS:
                raise ScenarioError(f"malformed[{i}].kind: {kind!r} is not one of {', '.join(MALFORMED_KINDS)}")
            malformed.append(Malformed(item.get("symbol"), parse_time_ms(item.get("open_time"), f"malformed[{i}]"), kind))
        return cls(
            outages=[window(w, f"outages[{i}]") for i, w in enumerate(doc.get("outages", []))],
            withheld=[
                Withheld(window(w, f"withheld[{i}]"), int(w.get("times", 1)))
                for i, w in enumerate(doc.get("withheld", []))
            ],
            late=[Late(window(w, f"late[{i}]"), float(w.get("delay_s", 60))) for i, w in enumerate(doc.get("late", []))],
            malformed=malformed,
            duplicate_rows=int(doc.get("duplicate_rows", 0)),
            shuffle_rows=bool(doc.get("shuffle_rows", False)),
            rate_limit_storm=burst("rate_limit_storm"),
            server_errors=burst("server_errors"),
            truncated_bodies=burst("truncated_bodies"),
            slow_responses=burst("slow_responses"),
            latency_s=float(doc.get("latency_s", 0.0)),
            weight_limit=int(doc.get("weight_limit", 6000)),
            weight_window_s=float(doc.get("weight_window_s", 60.0)),
            news=NewsScenario.from_dict(doc.get("news", {})),
            upbit_exchange=_exchange(doc.get("upbit_exchange") or {}),
        )


PRESETS: dict[str, dict[str, Any]] = {
    "calm": {},
    "flaky": {"server_errors": {"after_requests": 0, "count": 2, "status": 503},
              "truncated_bodies": {"after_requests": 3, "count": 1}, "latency_s": 0.05},
    "rate-limit-storm": {"rate_limit_storm": {"after_requests": 2, "count": 4, "retry_after_s": 1}},
    "messy-pages": {"duplicate_rows": 3, "shuffle_rows": True},
    "slow": {"latency_s": 0.5},
    "news-faults": {"news": {"broken": {"theblock": "malformed_xml"}, "slow": {"prnewswire": 15},
                             "repeating": ["decrypt"], "stalled": ["cointelegraph"]}},
}


def load_scenario(spec: str | None) -> Scenario:
    """A preset name, a JSON object, or the path of a JSON file."""
    if not spec:
        return Scenario()
    if spec in PRESETS:
        return Scenario.from_dict(PRESETS[spec])
    text = spec
    if not spec.lstrip().startswith("{"):
        path = Path(spec)
        if not path.is_file():
            raise ScenarioError(
                f"--scenario {spec!r}: not a preset ({', '.join(PRESETS)}), a JSON object or a JSON file"
            )
        text = path.read_text()
    try:
        return Scenario.from_dict(json.loads(text))
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"scenario is not valid JSON: {exc}") from None
