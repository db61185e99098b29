"""A worker forked from a process that already published (gunicorn --preload, Celery prefork)
starts a publisher of its own: the parent's publishing thread does not exist in the child."""

from __future__ import annotations

import os

from offgridperf_agent import publish


def test_a_forked_child_starts_its_own_publisher() -> None:
    url = "redis://127.0.0.1:6379/15"
    parent = publish.publisher(url)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether it got a fresh publisher with a running thread
        try:
            child = publish.publisher(url)
            fresh = child is not parent and child.pid == os.getpid() and child._thread.is_alive()
            os.write(write, b"fresh" if fresh else b"stale")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 16)
    os.waitpid(pid, 0)
    assert answer == b"fresh"
    assert publish.publisher(url) is parent
