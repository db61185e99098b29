"""The run tag a load-test request carries: which run and step it belongs to, signed.

The workbench signs (run, step) with HMAC-SHA256 under a key it shares with the agent; the
agent measures only requests whose tag verifies, so nobody without the key can add figures to
a run. Pure standard library: the workbench imports it too, so the format lives here only.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import NamedTuple
from urllib.parse import quote, unquote

HEADER = "X-Offgridperf-Tag"
# The same header as WSGI/Django hand it over in request.META.
META_KEY = "HTTP_X_OFFGRIDPERF_TAG"
VERSION = "v1"
# A tag longer than this is not ours: refused before any hashing.
MAX_TAG_LENGTH = 512


class Tag(NamedTuple):
    run_id: int
    step: str


def _signature(key: bytes, run_id: int, quoted_step: str) -> str:
    message = f"{VERSION};{run_id};{quoted_step}".encode()
    return hmac.digest(key, message, hashlib.sha256).hex()  # the one-shot C path


def sign(key: str | bytes, run_id: int, step: str) -> str:
    """The header value that tags a request of `run_id`'s step `step`."""
    key = key.encode() if isinstance(key, str) else key
    quoted = quote(step, safe="")
    return f"{VERSION};run={run_id};step={quoted};sig={_signature(key, run_id, quoted)}"


def verify(key: bytes, value: str) -> Tag | None:
    """The tag in `value` when its signature is right under `key`, else None."""
    if len(value) > MAX_TAG_LENGTH:
        return None
    parts = value.split(";")
    if len(parts) != 4 or parts[0] != VERSION:
        return None
    run, step, sig = parts[1], parts[2], parts[3]
    if not (run.startswith("run=") and step.startswith("step=") and sig.startswith("sig=")):
        return None
    run_text, quoted = run[4:], step[5:]
    if not run_text.isdigit() or len(run_text) > 18:
        return None
    run_id = int(run_text)
    if not hmac.compare_digest(sig[4:], _signature(key, run_id, quoted)):
        return None
    return Tag(run_id, unquote(quoted))
