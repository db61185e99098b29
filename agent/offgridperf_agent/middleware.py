"""AgentMiddleware: first in MIDDLEWARE, it measures the requests a signed run tag names."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.db import connections
from django.http import HttpRequest, HttpResponse

from offgridperf_agent import measure, publish, tags
from offgridperf_agent.aggregate import RequestFigures


def agent_key() -> bytes | None:
    key = getattr(settings, "OFFGRIDPERF_AGENT_KEY", None) or None
    return key.encode() if isinstance(key, str) else key


class AgentMiddleware:
    """Without OFFGRIDPERF_AGENT_KEY or OFFGRIDPERF_AGENT_REDIS_URL it takes itself out of the
    stack; with them, an untagged request costs one header lookup."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        key = agent_key()
        self.redis_url = getattr(settings, "OFFGRIDPERF_AGENT_REDIS_URL", "") or ""
        if not key or not self.redis_url:
            raise MiddlewareNotUsed("OFFGRIDPERF_AGENT_KEY or OFFGRIDPERF_AGENT_REDIS_URL unset")
        # A run sends the same few tags (one per step) again and again: each is checked once.
        self.verify = functools.lru_cache(maxsize=1024)(functools.partial(tags.verify, key))

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raw = request.META.get(tags.META_KEY)
        if raw is None:
            return self.get_response(request)
        tag = self.verify(raw)
        if tag is None:
            return self.get_response(request)
        return self._measured(request, tag)

    def _measured(self, request: HttpRequest, tag: tags.Tag) -> HttpResponse:
        req = measure.RequestMeasure()
        token = measure.current.set(req)
        second = int(time.time())
        # Django's execute_wrapper() does this append and pop, without a context manager each.
        wrapper_lists = [connection.execute_wrappers for connection in connections.all()]
        started, cpu_started = time.perf_counter_ns(), time.thread_time_ns()
        for wrappers in wrapper_lists:
            wrappers.append(req.execute)
        try:
            response = self.get_response(request)
        finally:
            for wrappers in wrapper_lists:
                wrappers.pop()
            measure.current.reset(token)
        cpu_ns = time.thread_time_ns() - cpu_started
        server_ns = time.perf_counter_ns() - started
        figures = RequestFigures(
            server_ns, cpu_ns, req.cache_calls, req.cache_ns, _view_name(request),
            response.status_code, req.statements, req.frames,
        )  # fmt: skip
        publish.publisher(self.redis_url).aggregator.record(tag.run_id, tag.step, second, figures)
        return response


def _view_name(request: HttpRequest) -> str:
    match: Any = getattr(request, "resolver_match", None)
    if match is None:
        return ""
    return getattr(match, "_func_path", "") or match.view_name or ""
