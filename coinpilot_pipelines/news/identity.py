"""What makes two feed items the same article.

An article is identified by its canonical URL and by its GUID: either one matching a stored
article means the same article. A normalized-title hash additionally catches the same story
published under another URL (a syndicated copy, a release filed twice); such an item is a
duplicate but never rewrites the article it matched.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from coinpilot_pipelines.news.model import FeedItem

# Query parameters that only say where a click came from; `utm_*` is matched by prefix.
TRACKING_PARAMETERS = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid", "mc_cid", "mc_eid",
    "_hsenc", "_hsmi", "mkt_tok", "ref_src", "cmpid", "ocid", "ncid", "sr_share", "spm",
})
DEFAULT_PORTS = {"http": 80, "https": 443}
_URL = re.compile(r"^https?://", re.IGNORECASE)
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2032": "'"})
_NOT_WORD = re.compile(r"[^\w\s]+")
_SPACE = re.compile(r"\s+")


def is_url(value: str | None) -> bool:
    return bool(value) and bool(_URL.match(value.strip()))


def canonical_url(url: str) -> str:
    """Scheme and host lowercased, default port, fragment, tracking parameters and trailing
    slashes removed, remaining parameters sorted so their order does not matter."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if parts.port and parts.port != DEFAULT_PORTS.get(scheme):
        host = f"{host}:{parts.port}"
    query = sorted(
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if not name.lower().startswith("utm_") and name.lower() not in TRACKING_PARAMETERS
    )
    return urlunsplit((scheme, host, parts.path.rstrip("/"), urlencode(query), ""))


def normalized_title(title: str) -> str:
    """Case, accents-as-composed, curly quotes, punctuation and spacing do not make a new story."""
    text = unicodedata.normalize("NFKC", html.unescape(title)).translate(_QUOTES).casefold()
    text = _NOT_WORD.sub(" ", text.replace("'", ""))
    return _SPACE.sub(" ", text).strip()


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def plain_text(markup: str) -> str:
    """Summary HTML as plain text, whitespace collapsed (feeds wrap the same text differently)."""
    extractor = _TextExtractor()
    extractor.feed(markup)
    extractor.close()
    return _SPACE.sub(" ", "".join(extractor.parts)).strip()


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ItemIdentity:
    """The keys one feed item is matched and stored by."""

    canonical_url: str | None
    url_key: str | None  # from the link (or a URL-shaped GUID when there is no link)
    guid_key: str | None  # a URL-shaped GUID is global; any other GUID only means something within its source
    title_hash: str | None
    content_hash: str
    item_key: str  # this item as this source delivered it: identity, pubDate and text

    @property
    def identity_key(self) -> str:
        key = self.url_key or self.guid_key
        assert key is not None, "an item without link and GUID is rejected before it gets here"
        return key

    @property
    def match_keys(self) -> set[str]:
        return {key for key in (self.url_key, self.guid_key) if key}


def _url_key(url: str) -> str:
    return sha256_hex(f"url\n{canonical_url(url)}")


def item_identity(source: str, item: FeedItem) -> ItemIdentity:
    link = item.link if is_url(item.link) else None
    guid = (item.guid or "").strip() or None
    guid_key = None
    if guid is not None:
        guid_key = _url_key(guid) if is_url(guid) else sha256_hex(f"guid\n{source}\n{guid}")
    url_source = link or (guid if is_url(guid) else None)
    title = normalized_title(item.title)
    content_hash = sha256_hex(f"{title}\n{item.summary}")
    url_key = _url_key(url_source) if url_source else None
    published = item.published_at.isoformat() if item.published_at else ""
    return ItemIdentity(
        canonical_url=canonical_url(url_source) if url_source else None,
        url_key=url_key,
        guid_key=guid_key,
        title_hash=sha256_hex(title) if title else None,
        content_hash=content_hash,
        item_key=sha256_hex(f"{url_key or guid_key}\n{published}\n{content_hash}"),
    )


def published_within(a: datetime | None, b: datetime | None, seconds: float) -> bool:
    return a is None or b is None or abs((a - b).total_seconds()) <= seconds
