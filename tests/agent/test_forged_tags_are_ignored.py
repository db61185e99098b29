"""Only a tag signed with the shared key adds figures to a run: forged, unsigned and wrongly
signed ones are served like any request and measured not at all."""

from __future__ import annotations

import time
import urllib.request

import pytest
import redis
from offgridperf_agent import tags
from offgridperf_agent.publish import run_key

from tests.agent.conftest import Shop

pytestmark = pytest.mark.slow


def get(url: str, tag: str | None) -> int:
    request = urllib.request.Request(url, headers={tags.HEADER: tag} if tag is not None else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def test_forged_unsigned_and_wrongly_signed_tags_are_ignored(shop: Shop) -> None:
    client = redis.Redis.from_url(shop.redis_url)
    forged_run, signed_run = 990_001, 990_010
    client.delete(run_key(forged_run), run_key(forged_run + 1), run_key(signed_run))
    good = tags.sign(shop.key, forged_run, "list books")
    for tag in (
        None,
        f"v1;run={forged_run};step=list%20books",  # unsigned
        tags.sign("another key of the right length!!", forged_run, "list books"),
        good.replace("sig=", "sig=0"),  # a signature altered
        good[:-1] + ("0" if good[-1] != "0" else "1"),
        good.replace(f"run={forged_run}", f"run={forged_run + 1}"),  # another run, same sig
    ):
        assert get(f"{shop.url}/books", tag) == 200
    assert get(f"{shop.url}/books", tags.sign(shop.key, signed_run, "list books")) == 200

    deadline = time.monotonic() + 10
    while not client.exists(run_key(signed_run)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.exists(run_key(signed_run))  # the control: a signed tag is measured
    assert not client.exists(run_key(forged_run)), "a forged tag was measured"
    assert not client.exists(run_key(forged_run + 1))
    client.delete(run_key(signed_run))
