"""The Celery application: configuration comes from Django settings (CELERY_* names).

`RedisTransport` is kombu's Redis transport with one fix that lets a worker ride out a broker
outage (settings.py selects it for redis:// brokers). When the connection drops, Celery's
consumer first collects the broken connection (which detaches the transport from it) and then
closes it again; the second close, and the late ack of a task that was running through the
outage, reach a channel whose transport is detached, and kombu raised
`AttributeError: 'NoneType' object has no attribute 'hostname'`. That is not a connection error,
so the consumer took it for an unrecoverable error and the whole worker stopped. Here such a
channel raises redis' ConnectionError instead: the close is ignored, a lost ack is logged, and
the consumer reconnects with back-off as it does for any other connection error.

`RedisResultBackend` is Celery's Redis result backend without the subscription it opens at
every publish (to the result's pub/sub channel, on the chance that the caller waits for it).
The web and the target publish tasks but never wait for their results (the database holds
every outcome), yet with Redis away that subscription held each "Run now" for 20 s of retries
and then failed it with a RuntimeError, before the broker's own error could be handled. A
caller that does call `.get()` still subscribes then, after checking the stored result first.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.backends.redis import RedisBackend
from kombu import Queue
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "offgridperf.settings")


class RedisChannel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            # A connection error, which every close and ack path already expects and ignores.
            raise RedisConnectionError("the broker connection of this channel is closed")
        return super()._connparams(asynchronous=asynchronous)


class RedisTransport(kombu_redis.Transport):
    Channel = RedisChannel


# A redis+socket:// broker URL (the embedded Redis, on a unix socket) names its transport
# itself, and kombu then ignores CELERY_BROKER_TRANSPORT: the alias gives it the fixed one too.
TRANSPORT_ALIASES["redis"] = "offgridperf.celery:RedisTransport"


class RedisResultBackend(RedisBackend):
    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Subscribe only when a caller waits (AsyncResult.get), not at every publish."""


app = Celery("offgridperf")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Any redis:// or rediss:// result backend URL, from settings or the environment.
app.loader.override_backends.update(
    redis="offgridperf.celery:RedisResultBackend", rediss="offgridperf.celery:RedisResultBackend"
)
app.conf.task_queues = (Queue("default"), Queue("loadgen"))
app.autodiscover_tasks()
