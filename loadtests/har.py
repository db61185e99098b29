"""Browser recordings (HAR files, from Chrome's or Firefox's devtools or Playwright's
`record_har`) turned into flow documents, as k6's and Gatling's recorders do.

Pure: a HAR's parsed entries in, a document plus what was kept and skipped (and why) out; the
command registers the document through `documents.apply_document`, as `loadtest import` does.

What a recording holds that a replay must not repeat as it is:
- Static assets (the browser's business, not the journey's) and hosts outside
  LOADTEST_ALLOWED_HOSTS: skipped and listed.
- Hop-by-hop and volatile headers (conditional requests, compression, the browser's own
  hints): dropped. Cookies: dropped, because the engine's cookie jar sends what the target set.
- `Authorization`: `${AUTHORIZATION}`, read from the environment at import, never stored.
- Values a response gave that a later request sends back (a CSRF token in a hidden input, an
  id in JSON, a cookie repeated in a header, a redirect's Location): an extraction on the step
  that received the value, and a `{{ variable }}` where the later request sent it. Replayed
  as recorded, they would be the recording's stale values.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

from loadtests.engine.config import MAX_STEP_BODY_BYTES, MAX_STEPS, METHODS
from loadtests.engine.extract import MISSING, json_lookup, parse_json_path, parse_set_cookie
from loadtests.engine.templates import RESERVED_NAMES

# A HAR with bodies embedded grows fast; beyond this it is not one journey.
MAX_HAR_BYTES = 50_000_000
DEFAULT_MAX_THINK_S = 5.0
DEFAULT_DURATION_S = 60
STEP_NAME_CHARS = 60  # the step name's limit (LoadTestStep.name)
AUTHORIZATION_PLACEHOLDER = "${AUTHORIZATION}"
LOCATION_EXTRACTION = "Location ~ ^/(.*)"
STATIC_EXTENSIONS = frozenset({
    ".css", ".js", ".mjs", ".map", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".ico", ".webp",
    ".avif", ".bmp", ".woff", ".woff2", ".ttf", ".otf", ".eot", ".mp4", ".webm", ".mp3", ".ogg",
    ".wav",
})  # fmt: skip
STATIC_MIME_PREFIXES = ("image/", "font/", "audio/", "video/", "text/css", "text/javascript",
                        "application/javascript", "application/x-javascript",
                        "application/font", "application/x-font")  # fmt: skip
# Chrome's own classification, where the HAR has it.
STATIC_RESOURCE_TYPES = frozenset({"image", "font", "stylesheet", "script", "media", "manifest"})
# Hop-by-hop (RFC 9110 §7.6.1) and what the engine sets itself.
HOP_BY_HOP_HEADERS = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade", "host", "content-length", "proxy-authorization", "proxy-authenticate",
})  # fmt: skip
# Volatile: true of the recording's moment or browser, wrong in a replay. Accept-Encoding
# would bring compressed bodies that extractions cannot read; the engine sends its own
# User-Agent and Accept.
VOLATILE_HEADERS = frozenset({
    "if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range",
    "cache-control", "pragma", "user-agent", "accept", "accept-encoding", "date", "dnt",
    "upgrade-insecure-requests", "priority", "purpose", "cookie",
})  # fmt: skip
VOLATILE_HEADER_PREFIXES = (":", "sec-ch-", "sec-fetch-", "sec-gpc", "x-devtools-")
# A JSON field whose name says it is an identifier is correlated from this many characters
# (a 1-character id would match every "1" in later requests); any other JSON string only
# from this many (tokens, not words).
MIN_ID_CHARS = 2
MIN_TOKEN_CHARS = 12
MIN_HIDDEN_CHARS = 4
MIN_COOKIE_CHARS = 8
MAX_REASONS_SHOWN = 5  # in the error of a file with nothing to replay
MAX_JSON_VALUES = 2000  # per response: a large listing offers no more than this
# `id`, `pk`…, or a name ending in one after `_` or in camel case: `batch_id`, `batchId`.
_ID_KEY = re.compile(
    r"(?i:^(?:id|pk|uuid|slug|key|token)$)|(?:_(?i:id|uuid|token|key)|Id|ID|Uuid|Token|Key)$"
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_JSON_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
# A value is a whole token in a request: not a piece of a longer word.
_BEFORE = r"(?<![A-Za-z0-9_.~%-])"
_AFTER = r"(?![A-Za-z0-9_.~%-])"


class HarInvalid(ValueError):
    """A file that is no usable HAR; the message names the entry (`entries[3] (GET …)`)."""


@dataclass(frozen=True)
class Entry:
    """One recorded exchange, as much of it as a flow needs."""

    index: int
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: str | None
    started_s: float  # epoch seconds
    time_s: float
    status: int
    response_headers: list[tuple[str, str]]
    response_text: str
    mime_type: str
    resource_type: str
    from_cache: bool = False  # Chrome's `_fromCache`: answered by the browser, never sent

    @property
    def label(self) -> str:
        return entry_label(self.index, self.method, self.url)


@dataclass(frozen=True)
class Skipped:
    index: int  # in log.entries
    entry: str
    reason: str

    def __str__(self) -> str:
        return f"skipped {self.entry}: {self.reason}"


@dataclass(frozen=True)
class Kept:
    index: int  # in log.entries
    step: str
    entry: str
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        notes = f" ({'; '.join(self.notes)})" if self.notes else ""
        return f"kept {self.entry} as step {self.step!r}{notes}"


@dataclass
class Recording:
    """The flow document made of a recording, and what became of each entry."""

    document: dict[str, Any]
    kept: list[Kept] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def outcomes(self) -> list[Kept | Skipped]:
        """What became of each entry, in the file's order."""
        return sorted([*self.kept, *self.skipped], key=lambda outcome: outcome.index)


def entry_label(index: int, method: Any = None, url: Any = None) -> str:
    """How a message names an entry: its place in log.entries and, when known, its request."""
    if isinstance(method, str) and isinstance(url, str):
        shown = url if len(url) <= 80 else url[:80] + "…"
        return f"entries[{index}] ({method} {shown})"
    return f"entries[{index}]"


# -- reading ---------------------------------------------------------------------------------


def parse_har(data: bytes) -> list[Entry]:
    """The entries of a HAR file's bytes, in the order the browser sent them. Raises
    HarInvalid naming what is wrong: not JSON, cut short, not a HAR, or an entry without a
    request or with a body it cannot read."""
    if len(data) > MAX_HAR_BYTES:
        raise HarInvalid(f"the file is {len(data)} bytes; a HAR may be {MAX_HAR_BYTES} at most")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HarInvalid(f"not UTF-8 text (byte {exc.start + 1}): not a HAR file") from None
    try:
        har = json.loads(text)
    except RecursionError:
        raise HarInvalid("not a HAR file: the JSON nests too deep") from None
    except json.JSONDecodeError as exc:
        if _cut_short(text, exc):
            raise HarInvalid(
                f"the JSON ends early at line {exc.lineno}: a truncated file (was the "
                "recording saved to the end?)"
            ) from None
        raise HarInvalid(
            f"not JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}): not a HAR file"
        ) from None
    log = har.get("log") if isinstance(har, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise HarInvalid("not a HAR file: it has no log.entries list")
    parsed = [_entry(index, raw) for index, raw in enumerate(entries)]
    return sorted(parsed, key=lambda entry: (entry.started_s, entry.index))


def _cut_short(text: str, error: json.JSONDecodeError) -> bool:
    """JSON that was fine until it stopped: the error is at its end, or a string never ends."""
    stripped = text.strip()
    at_end = error.pos >= len(stripped) or error.msg.startswith("Unterminated string")
    return stripped[:1] in ("{", "[") and at_end


def _entry(index: int, raw: Any) -> Entry:
    request = raw.get("request") if isinstance(raw, dict) else None
    if not isinstance(request, dict):
        raise HarInvalid(f"{entry_label(index)}: the entry has no request")
    method, url = request.get("method"), request.get("url")
    label = entry_label(index, method, url)
    if not isinstance(method, str) or not isinstance(url, str) or not url:
        raise HarInvalid(f"{label}: the request needs a method and a url")
    response = raw.get("response") if isinstance(raw.get("response"), dict) else {}
    content = response.get("content") if isinstance(response.get("content"), dict) else {}
    status = response.get("status")
    return Entry(
        index=index,
        method=method.upper(),
        url=url,
        headers=_pairs(request.get("headers"), label, "request.headers"),
        body=_request_body(request.get("postData"), label),
        started_s=_started(raw.get("startedDateTime"), label),
        time_s=_seconds(raw.get("time")),
        status=status if isinstance(status, int) and not isinstance(status, bool) else 0,
        response_headers=_pairs(response.get("headers"), label, "response.headers"),
        response_text=_content_text(content, label),
        mime_type=str(content.get("mimeType") or "").split(";")[0].strip().lower(),
        resource_type=str(raw.get("_resourceType") or "").lower(),
        from_cache=bool(raw.get("_fromCache")),
    )


def _pairs(headers: Any, label: str, where: str) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if not isinstance(headers, list):
        raise HarInvalid(f"{label}: {where} is not a list of name/value pairs")
    pairs = []
    for header in headers:
        if not isinstance(header, dict) or not isinstance(header.get("name"), str):
            raise HarInvalid(f"{label}: {where} holds an item without a name")
        pairs.append((header["name"], str(header.get("value", ""))))
    return pairs


def _started(value: Any, label: str) -> float:
    if not isinstance(value, str):
        raise HarInvalid(f"{label}: startedDateTime is missing")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise HarInvalid(f"{label}: startedDateTime {value!r} is not an ISO 8601 time") from None


def _seconds(milliseconds: Any) -> float:
    if isinstance(milliseconds, int | float) and not isinstance(milliseconds, bool):
        return max(0.0, float(milliseconds) / 1000)
    return 0.0


def _decoded(text: str, encoding: Any, label: str, where: str) -> str:
    """A HAR text as sent: plain, or base64 (binary bodies); any other encoding is refused."""
    if not encoding:
        return text
    if str(encoding).lower() != "base64":
        raise HarInvalid(
            f"{label}: {where}.encoding {encoding!r} cannot be read (base64 or none only)"
        )
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise HarInvalid(f"{label}: {where}.text is not valid base64") from None
    return raw.decode("utf-8", "replace")


def _request_body(post: Any, label: str) -> str | None:
    if not isinstance(post, dict):
        return None
    text = post.get("text")
    if isinstance(text, str):
        return _decoded(text, post.get("encoding"), label, "request.postData")
    params = post.get("params")
    if isinstance(params, list) and params:  # older Firefox: form fields only
        return "&".join(
            f"{quote_plus(str(p.get('name', '')))}={quote_plus(str(p.get('value', '')))}"
            for p in params
            if isinstance(p, dict)
        )
    return None


def _content_text(content: dict[str, Any], label: str) -> str:
    text = content.get("text")
    if not isinstance(text, str):
        return ""
    return _decoded(text, content.get("encoding"), label, "response.content")


# -- choosing -----------------------------------------------------------------------------------


def skip_reason(
    entry: Entry, origin: str | None, host_allowed: Callable[[str], bool], include_static: bool
) -> str | None:
    """Why `entry` does not become a step, or None when it does."""
    parts = urlsplit(entry.url)
    if parts.scheme not in ("http", "https"):
        return f"not HTTP ({parts.scheme or 'no scheme'})"
    if not host_allowed(entry.url):
        return f"host {parts.hostname!r} is not in LOADTEST_ALLOWED_HOSTS"
    if origin is not None and _origin(entry.url) != origin:
        return f"another origin than the target {origin}"
    if entry.method not in METHODS:
        return f"method {entry.method} is not one a step may send"
    if not include_static and is_static(entry):
        return "a static asset (--include-static keeps it)"
    if entry.from_cache:
        return "the browser's cache answered it: it was never sent"
    if entry.status == 0:
        return "no response was recorded (the browser cancelled it or it failed)"
    if entry.body is not None and len(entry.body.encode("utf-8")) > MAX_STEP_BODY_BYTES:
        return f"its body is over {MAX_STEP_BODY_BYTES} bytes (MAX_STEP_BODY_BYTES)"
    texts = [entry.url, entry.body or "", *(value for _, value in entry.headers)]
    if any("{{" in text for text in texts):
        return "it sends '{{', which a step would read as a template"
    return None


def is_static(entry: Entry) -> bool:
    """An image, font, style sheet, script or media file, by Chrome's resource type, the
    response's MIME type or the path's extension."""
    if entry.resource_type in STATIC_RESOURCE_TYPES:
        return True
    if entry.mime_type.startswith(STATIC_MIME_PREFIXES):
        return True
    path = urlsplit(entry.url).path.lower()
    return "." in path.rsplit("/", 1)[-1] and "." + path.rsplit(".", 1)[-1] in STATIC_EXTENSIONS


def _origin(url: str) -> str:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{(parts.hostname or '').lower()}{port}"


def request_path(url: str) -> str:
    """The path and query a step sends, percent-encoded to printable ASCII."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return quote(path, safe="".join(chr(c) for c in range(0x21, 0x7F)))


def kept_headers(headers: list[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """The headers a step sends of a recorded request, and notes on what changed."""
    kept: dict[str, str] = {}
    notes: list[str] = []
    for name, value in headers:
        lower = name.lower()
        if lower in HOP_BY_HOP_HEADERS or lower in VOLATILE_HEADERS:
            continue
        if lower.startswith(VOLATILE_HEADER_PREFIXES):
            continue
        if lower == "authorization":
            kept[name] = AUTHORIZATION_PLACEHOLDER
            notes.append(f"{name} as {AUTHORIZATION_PLACEHOLDER}")
            continue
        kept[name] = value
    return kept, notes


# -- correlation ------------------------------------------------------------------------------


@dataclass
class Offer:
    """A value a response gave, and how to take it from that response again."""

    value: str
    step: int
    source: str  # json, header, regex, cookie: the engine's extraction sources
    expression: str
    hint: str
    variable: str | None = None  # named when a later request first uses it


class _HiddenInputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str, bool]] = []  # name, value, name before value

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "input":
            return
        names = [key for key, _ in attrs]
        values = dict(attrs)
        if (values.get("type") or "").lower() != "hidden" or "name" not in names:
            return
        if "value" in names and values["name"]:
            before = names.index("name") < names.index("value")
            self.found.append((values["name"] or "", values["value"] or "", before))


def hidden_input_offers(step: int, html: str) -> list[Offer]:
    """Each hidden input's value (Django's csrfmiddlewaretoken), with a regex that finds it
    again in the same page; an input the regex would not find first is left out."""
    parser = _HiddenInputs()
    try:
        parser.feed(html)
    except Exception:  # noqa: BLE001 - a page HTMLParser cannot read offers nothing
        return []
    offers = []
    for name, value, name_first in parser.found:
        if len(value) < MIN_HIDDEN_CHARS:
            continue
        named = rf"""\bname=["']{re.escape(name)}["']"""
        valued = r"""\bvalue=["']([^"']*)["']"""
        between = r"[^>]*"
        pattern = f"<input{between}" + (
            f"{named}{between}{valued}" if name_first else f"{valued}{between}{named}"
        )
        found = re.search(pattern, html)
        if found is not None and found.group(1) == value:
            offers.append(Offer(value, step, "regex", pattern, name))
    return offers


def json_offers(step: int, text: str) -> list[Offer]:
    """Identifiers (`id`, `*_id`, `uuid`, `token`…) and long string tokens in a JSON body."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return []
    offers: list[Offer] = []
    try:
        leaves = list(_json_leaves(document, ()))
    except RecursionError:  # nested deeper than a walk may go: no ids taken from it
        return []
    for keys, value in leaves:
        if len(offers) >= MAX_JSON_VALUES:
            break
        if isinstance(value, bool) or not isinstance(value, int | str):
            continue
        shown = str(value)
        names = [key for key in keys if isinstance(key, str)]
        name = names[-1] if names else "value"
        wanted = MIN_ID_CHARS if _ID_KEY.search(name) else MIN_TOKEN_CHARS
        if len(shown) < wanted or (isinstance(value, str) and not _token_like(value)):
            continue
        expression = json_path(keys)
        if json_lookup(document, parse_json_path(expression)) is MISSING:
            continue
        offers.append(Offer(shown, step, "json", expression, name))
    return offers


def _token_like(value: str) -> bool:
    return not any(char.isspace() for char in value) and "{{" not in value


def _json_leaves(value: Any, keys: tuple[str | int, ...]) -> Iterator[tuple[tuple, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _json_leaves(item, (*keys, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_leaves(item, (*keys, index))
    else:
        yield keys, value


def json_path(keys: tuple[str | int, ...]) -> str:
    """`$.items[0].id` for the keys, quoting a name the engine's paths cannot spell bare."""
    text = "$"
    for key in keys:
        if isinstance(key, int):
            text += f"[{key}]"
        elif _JSON_NAME.fullmatch(key):
            text += f".{key}"
        else:
            escaped = key.replace("\\", "\\\\").replace("'", "\\'")
            text += f"['{escaped}']"
    return text


def cookie_offers(step: int, headers: list[tuple[str, str]]) -> list[Offer]:
    """Cookies a response set: the jar sends them back by itself, but a page's script may
    repeat one in a header or a body (Django's X-CSRFToken)."""
    offers = []
    for name, value in headers:
        if name.lower() != "set-cookie":
            continue
        cookie = parse_set_cookie(value)
        if cookie is not None and cookie[1] is not None and len(cookie[1]) >= MIN_COOKIE_CHARS:
            offers.append(Offer(cookie[1], step, "cookie", cookie[0], f"cookie_{cookie[0]}"))
    return offers


def location_of(headers: list[tuple[str, str]]) -> str | None:
    """A redirect's Location when it is a path on the same origin (what Django sends)."""
    for name, value in headers:
        if name.lower() == "location" and value.startswith("/") and not value.startswith("//"):
            return value
    return None


class Correlator:
    """Finds, request by request, the values earlier responses gave, and names them."""

    def __init__(self) -> None:
        self.offers: dict[str, Offer] = {}
        self.sent: list[str] = []  # what requests sent so far: a value the client made first
        self.variables: set[str] = set(RESERVED_NAMES)
        self.extractions: dict[int, list[dict[str, str]]] = {}

    def learn(self, step: int, entry: Entry) -> None:
        """Offers from a step's response; a value an earlier request already sent came from
        the client (a typed name, a page size), not from the server."""
        offers = cookie_offers(step, entry.response_headers)
        if "html" in entry.mime_type or "<input" in entry.response_text[:200_000]:
            offers = hidden_input_offers(step, entry.response_text) + offers
        if "json" in entry.mime_type:
            offers = json_offers(step, entry.response_text) + offers
        sent = "\n".join(self.sent)
        for offer in reversed(offers):  # the first source of a value wins
            if offer.value not in sent:
                self.offers[offer.value] = offer

    def remember_sent(self, *texts: str) -> None:
        self.sent.extend(texts)

    def use(self, offer: Offer) -> str:
        """The variable holding `offer`'s value, its extraction added on first use."""
        if offer.variable is None:
            offer.variable = self._name(offer.hint)
            self.extractions.setdefault(offer.step, []).append(
                {"variable": offer.variable, "from": offer.source, "expression": offer.expression}
            )
        return offer.variable

    def location(self, step: int, headers: list[tuple[str, str]]) -> Offer | None:
        """A redirect's path: its first / stays in the step's path (which must start with
        one), the rest comes from the header."""
        value = location_of(headers)
        return Offer(value, step, "header", LOCATION_EXTRACTION, "location") if value else None

    def substitute(self, text: str, *, form: bool = False) -> tuple[str, list[Offer]]:
        """`text` with each offered value it holds as a whole token replaced by its
        `{{ variable }}`, longest values first; the offers it used."""
        used: list[Offer] = []
        for value in sorted(self.offers, key=len, reverse=True):
            if value not in text and quote(value, safe="") not in text:
                continue
            spellings = {value, quote(value, safe="")} | ({quote_plus(value)} if form else set())
            pattern = re.compile(
                _BEFORE + "(?:" + "|".join(map(re.escape, spellings)) + ")" + _AFTER
            )
            if pattern.search(text) is None:
                continue
            offer = self.offers[value]
            reference = f"{{{{ {self.use(offer)} }}}}"
            text = pattern.sub(lambda _, reference=reference: reference, text)
            used.append(offer)
        return text, used

    def _name(self, hint: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_]", "_", hint).strip("_") or "value"
        if not _IDENTIFIER.fullmatch(base):
            base = f"v_{base}"
        name, number = base, 2
        while name in self.variables:
            name, number = f"{base}_{number}", number + 1
        self.variables.add(name)
        return name


# -- the document ------------------------------------------------------------------------------


def flow_document(
    entries: list[Entry],
    *,
    name: str,
    host_allowed: Callable[[str], bool],
    include_static: bool = False,
    max_think_s: float = DEFAULT_MAX_THINK_S,
    source: str = "a HAR file",
) -> Recording:
    """The flow document of a recording: one step per kept entry, in the order they were
    sent, with correlated values extracted and templated, think times from the gaps between
    the kept requests (capped at `max_think_s`). Raises HarInvalid when nothing is kept or
    more than MAX_STEPS would be."""
    recording = Recording(document={})
    chosen: list[Entry] = []
    origin: str | None = None
    for entry in entries:
        reason = skip_reason(entry, origin, host_allowed, include_static)
        if reason is None:
            origin = origin or _origin(entry.url)
            chosen.append(entry)
        else:
            recording.skipped.append(Skipped(entry.index, entry.label, reason))
    if not chosen:
        shown = "; ".join(str(skipped) for skipped in recording.skipped[:MAX_REASONS_SHOWN])
        more = len(recording.skipped) - MAX_REASONS_SHOWN
        shown += f"; and {more} more" if more > 0 else ""
        raise HarInvalid(f"no request is left to replay ({shown or 'the file has no entries'})")
    if len(chosen) > MAX_STEPS:
        raise HarInvalid(
            f"{len(chosen)} requests are kept and a flow has at most {MAX_STEPS} steps "
            "(MAX_STEPS): record a shorter journey"
        )
    steps = _steps(chosen, recording)
    gaps = think_gaps(chosen, max_think_s)
    recording.document = {
        "version": 1,
        "name": name,
        "description": f"Recorded in a browser ({source}): {len(steps)} requests.",
        "mode": "flow",
        "target_base_url": origin,
        "load_model": "closed",
        "users": 1,
        "think_time_min_s": min(gaps, default=0.0),
        "think_time_max_s": max(gaps, default=0.0),
        "duration_s": DEFAULT_DURATION_S,
        # Each hop of a redirect is an entry of its own: the recording already follows them.
        "follow_redirects": False,
        "steps": steps,
    }
    return recording


def _steps(chosen: list[Entry], recording: Recording) -> list[dict[str, Any]]:
    correlator = Correlator()
    names: set[str] = set()
    steps: list[dict[str, Any]] = []
    previous_location: Offer | None = None
    for index, entry in enumerate(chosen):
        headers, notes = kept_headers(entry.headers)
        path = request_path(entry.url)
        used: list[Offer] = []
        if previous_location is not None and path == previous_location.value:
            path = f"/{{{{ {correlator.use(previous_location)} }}}}"
            used.append(previous_location)
        else:
            path, found = correlator.substitute(path)
            used += found
        for header, value in headers.items():
            if value != AUTHORIZATION_PLACEHOLDER:
                headers[header], found = correlator.substitute(value)
                used += found
        body = entry.body
        if body is not None:
            form = "x-www-form-urlencoded" in _content_type(entry.headers)
            body, found = correlator.substitute(body, form=form)
            used += found
        correlator.remember_sent(entry.url, entry.body or "", *(v for _, v in entry.headers))
        step_name = _unique_name(f"{entry.method} {urlsplit(entry.url).path or '/'}", names)
        notes += [f"{{{{ {offer.variable} }}}} from step {offer.step + 1}" for offer in used]
        steps.append({
            "name": step_name,
            "method": entry.method,
            "path": path,
            "headers": headers,
            "body": body or None,
            "expected_statuses": expected_statuses(entry.status),
        })  # fmt: skip
        kept = Kept(entry.index, step_name, entry.label, tuple(dict.fromkeys(notes)))
        recording.kept.append(kept)
        correlator.learn(index, entry)
        previous_location = correlator.location(index, entry.response_headers)
    for index, extractions in correlator.extractions.items():
        steps[index]["extract"] = extractions
    return steps


def _content_type(headers: list[tuple[str, str]]) -> str:
    return next((value.lower() for name, value in headers if name.lower() == "content-type"), "")


def expected_statuses(recorded: int) -> list[int]:
    """What the replay expects: the status the recording saw, so that a login that no longer
    redirects, or a page that now sends to the login, is an error. A 304 answered the
    browser's cache, whose validators are dropped: the replay may get 200 as well."""
    return [200, 304] if recorded == 304 else [recorded]


def think_gaps(chosen: list[Entry], max_think_s: float) -> list[float]:
    """The pauses between one kept request's end and the next one's start, capped."""
    gaps = []
    for before, after in zip(chosen, chosen[1:], strict=False):
        gap = after.started_s - (before.started_s + before.time_s)
        gaps.append(round(min(max(gap, 0.0), max_think_s), 3))
    return gaps


def _unique_name(wanted: str, names: set[str]) -> str:
    name, number = wanted[:STEP_NAME_CHARS], 2
    while name in names:
        suffix = f" #{number}"
        name = wanted[: STEP_NAME_CHARS - len(suffix)] + suffix
        number += 1
    names.add(name)
    return name
