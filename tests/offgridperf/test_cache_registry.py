"""The cache layer's registry: apps declare their strategies, the layer defines none itself,
and the Cache page lists whatever is registered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from offgridperf import cache
from tests.conftest import ROOT


@pytest.fixture(autouse=True)
def registry() -> Iterator[dict[str, cache.Strategy]]:
    """The registry as the apps left it, restored after the test's own registrations."""
    before = dict(cache.STRATEGIES)
    cache.clear_all()
    yield cache.STRATEGIES
    cache.clear_all()
    cache.reset_process_state()
    cache.STRATEGIES.clear()
    cache.STRATEGIES.update(before)


def test_it_defines_no_strategy_of_its_own() -> None:
    # A fresh process that imports the layer but sets up no app: nothing is registered.
    script = "import json; from offgridperf import cache; print(json.dumps(list(cache.STRATEGIES)))"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "offgridperf.settings"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_it_holds_the_strategies_the_emissions_app_declared() -> None:
    from emissions.cache import ACTIVITY, BATCH, EMISSIONS, QUERY

    assert cache.STRATEGIES == {
        "batch": BATCH,
        "activity": ACTIVITY,
        "emissions": EMISSIONS,
        "query": QUERY,
    }
    assert QUERY.ttl_setting == "CACHE_TTL_QUERY"
    assert QUERY.description


def test_it_reads_a_setting_ttl_at_every_use_and_keeps_a_fixed_one() -> None:
    from_setting = cache.register("probe-setting", ttl_setting="CACHE_TTL_QUERY")
    fixed = cache.register("probe-fixed", ttl=42)
    with override_settings(CACHE_TTL_QUERY=17):
        assert from_setting.ttl == 17
    with override_settings(CACHE_TTL_QUERY=18):
        assert from_setting.ttl == 18
    assert fixed.ttl == 42


def test_it_returns_the_same_strategy_for_the_same_declaration() -> None:
    first = cache.register("probe", ttl=60, description="a probe")
    assert cache.register("probe", ttl=60, description="a probe") is first
    assert list(cache.STRATEGIES).count("probe") == 1


def test_it_refuses_another_declaration_under_a_taken_name() -> None:
    cache.register("probe", ttl=60)
    with pytest.raises(ValueError, match="'probe' is already registered"):
        cache.register("probe", ttl=61)
    with pytest.raises(ValueError, match="'batch' is already registered"):
        cache.register("batch", ttl=60)
    assert cache.STRATEGIES["probe"].ttl == 60


@pytest.mark.parametrize(
    ("name", "fields", "message"),
    [
        ("a:b", {"ttl": 60}, "name: 'a:b' must be 1 to 32 lowercase letters"),
        ("pre*", {"ttl": 60}, "name: 'pre*' must be"),
        ("", {"ttl": 60}, "name: '' must be"),
        ("Batch", {"ttl": 60}, "name: 'Batch' must be"),
        ("x" * 33, {"ttl": 60}, f"name: '{'x' * 33}' must be 1 to 32"),
        ("probe", {}, "ttl: give exactly one of ttl_setting and ttl"),
        ("probe", {"ttl": 60, "ttl_setting": "CACHE_TTL_QUERY"}, "ttl: give exactly one"),
        ("probe", {"ttl": 0}, "ttl: 0 must be a whole number of seconds, at least 1"),
        ("probe", {"ttl": 1.5}, "ttl: 1.5 must be a whole number"),
        ("probe", {"ttl": True}, "ttl: True must be a whole number"),
    ],
)
def test_it_refuses_a_bad_declaration_naming_the_field(
    name: str, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as raised:
        cache.register(name, **fields)
    assert str(raised.value).startswith(message)
    assert name not in cache.STRATEGIES


def test_a_registered_strategy_caches_counts_and_invalidates_like_any_other() -> None:
    probe = cache.register("probe", ttl=60)
    probe.set_many({"a": 1, "b": 2})
    assert probe.get("a") == 1
    assert cache.key_counts()["probe"] == 2
    assert cache.figures()["probe"].counters["hits"] == 1
    probe.invalidate_all()
    assert probe.get("a") is None
    assert cache.key_counts()["probe"] == 0


def test_the_cache_page_lists_whatever_is_registered(admin_client: Any) -> None:
    probe = cache.register("probe", ttl=60, description="a strategy the test declared")
    probe.set("k", 1)
    body = admin_client.get("/cache/").content.decode()
    for prefix in ("batch:*", "activity:*", "emissions:*", "query:*", "probe:*"):
        assert prefix in body
    assert "a strategy the test declared" in body
    assert "batch status and detail" in body

    response = admin_client.post("/cache/probe/invalidate/", {"confirm": "on"})
    assert response.status_code == 302
    assert probe.get("k") is None


def test_the_cache_page_says_when_nothing_is_registered(admin_client: Any) -> None:
    cache.STRATEGIES.clear()
    body = admin_client.get("/cache/").content.decode()
    assert "No cache strategy is registered" in body
