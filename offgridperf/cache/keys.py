"""Cache keys: `key()` builds every key of the layer from validated parameters, so that no two
distinct parameter sets share a key, whatever separators their values contain."""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal
from urllib.parse import quote

KEY_PART_MAX = 64  # encoded characters of one key part before it is replaced by its hash
KEY_PARAMS_MAX = 128  # encoded characters of a key's parameters before they are hashed

# Type tags of parameter values: '=' then a tag the encoding of text never produces, so that
# 1, "1", True and Decimal("1") are four keys. Text has no tag.
_VALUE_TAGS: tuple[tuple[type, str], ...] = (
    (bool, "!"),
    (int, "#"),
    (Decimal, "$"),
    (date, "@"),  # and datetime, whose isoformat differs
)
KeyValue = str | int | Decimal | date | None


def _encode(text: str) -> str:
    # quote() leaves only [A-Za-z0-9_.~-] and %XX; '~' is escaped too, so that the layer's
    # own suffixes (':~lock') and the tags above can never be spelled by a key's text.
    return quote(text, safe="").replace("~", "%7E")


def _hashed(encoded: str, limit: int) -> str:
    if len(encoded) <= limit:
        return encoded
    # '*' is never produced by _encode: a hash cannot equal a literal part.
    return "*" + hashlib.blake2b(encoded.encode(), digest_size=16).hexdigest()


def _encode_value(value: KeyValue) -> str:
    if value is None:
        return ""  # the name alone: None and "" differ
    if isinstance(value, str):
        return "=" + _encode(value)
    for kind, tag in _VALUE_TAGS:
        if isinstance(value, kind):
            text = value.isoformat() if isinstance(value, date) else str(value)
            return f"={tag}{_encode(text)}"
    raise TypeError(f"cache key values must be text, numbers, dates or None, not {type(value)}")


def key(*parts: str | int, **params: KeyValue) -> str:
    """The cache key of `parts` (a path: each one followed by ':') and `params`.

    Canonical and unambiguous: parts and parameter names and values are percent-encoded, so
    no separator (':', '&', '=') in a value can imitate another key; parameters are sorted by
    name; values carry their type (None, "", 1 and "1" differ). A part or the parameters too
    long for a Redis key are replaced by a hash of their encoding. Every key of a given
    leading set of parts starts with `key(*those_parts)`, which `invalidate_prefix` takes:
    key(1) is "1:", a prefix of batch 1's keys and of no key of batch 12.
    """
    path = "".join(f"{_hashed(_encode(str(part)), KEY_PART_MAX)}:" for part in parts)
    encoded = []
    for name in sorted(params):
        if not name:
            raise ValueError("cache key parameter names must not be empty")
        encoded.append(_encode(name) + _encode_value(params[name]))
    return path + _hashed("&".join(encoded), KEY_PARAMS_MAX)
