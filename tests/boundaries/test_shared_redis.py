"""Parallel test workers share one Redis database, each under a key prefix of its own: a test
that flushes the database takes the other workers' keys with it (a failure count, a throttle,
a queued task), and their tests fail now and then, far from the cause."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent


def flushing_calls(source: str) -> list[int]:
    """Lines that call a Django cache's clear() (django-redis's is FLUSHDB, whatever the key
    prefix), or flushdb()/flushall() on anything."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        name, owner = node.func.attr, node.func.value
        if name in {"flushdb", "flushall"} or (name == "clear" and _is_a_cache(owner)):
            lines.append(node.lineno)
    return lines


def _is_a_cache(node: ast.expr) -> bool:
    if isinstance(node, ast.Subscript):  # caches["default"]
        return isinstance(node.value, ast.Name) and node.value.id == "caches"
    return isinstance(node, ast.Name) and node.id.endswith("cache")


def test_no_test_flushes_the_shared_redis_database() -> None:
    found = [
        f"{path.relative_to(TESTS.parent)}:{line}"
        for path in sorted(TESTS.rglob("*.py"))
        for line in flushing_calls(path.read_text())
    ]
    assert found == [], "delete this worker's keys (cache.delete_pattern) instead: " + str(found)


def test_it_sees_a_flush_in_any_of_its_spellings() -> None:
    source = "cache.clear()\ncaches['default'].clear()\nclient.flushdb()\nr.flushall()\nx.clear()\n"
    assert flushing_calls(source) == [1, 2, 3, 4]
