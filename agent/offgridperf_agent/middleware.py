"""AgentMiddleware: first in MIDDLEWARE, it measures the requests a signed run tag names."""

from __future__ import annotations

import contextlib
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
        started, cpu_started = time.perf_counter_ns(), time.thread_time_ns()
        try:
            with contextlib.ExitStack() as stack:
                for connection in connections.all():
                    stack.enter_context(connection.execute_wrapper(req.execute))
                response = self.get_response(request)
        finally:
            measure.current.reset(token)
        server_us = (time.perf_counter_ns() - started) // 1000
        cpu_us = (time.thread_time_ns() - cpu_started) // 1000
        figures = RequestFigures(
            server_us=server_us,
            cpu_us=cpu_us,
            db_us=req.db_ns // 1000,
            queries=req.queries,
            cache_calls=req.cache_calls,
            cache_us=req.cache_ns // 1000,
            view=_view_name(request),
            status=response.status_code,
            by_fingerprint=req.by_fingerprint,
            frames=req.frames,
        )
        publisher = publish.publisher(self.redis_url)
        publisher.aggregator.add(tag.run_id, tag.step, second, figures)
        return response


def _view_name(request: HttpRequest) -> str:
    match: Any = getattr(request, "resolver_match", None)
    if match is None:
        return ""
    return getattr(match, "_func_path", "") or match.view_name or ""
