"""The scale-out executor: sub-queries run as Celery tasks on ``querybatch worker`` processes.

The leader node hands claimed sub-queries to the broker in chunks of one batch each (one
task per chunk shares the per-task cost); a worker runs a chunk's sub-queries concurrently
and writes their rows and outcomes to the shared store itself. Tasks are acknowledged late,
so a killed worker's chunk is delivered again; a redelivered run may take over its own
attempt, and whichever run records first wins, so rows are stored exactly once.

The leader learns that runs ended from a Redis channel the workers publish to (as each
one's outcome is written), and, in case a notice is lost, by asking the store every second
which handed-out sub-queries ended. A sub-query handed over but never started while the
broker's queue is empty was lost on the way (RESEND_SECONDS) and is handed over again; a
worker runs a message only once the store says that attempt is still waiting, so a copy
delivered late costs nothing. This is the only module that imports Celery.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis
from celery import Celery, Task, signals
from kombu.exceptions import VersionMismatch
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff

from querybatch import logs
from querybatch.engine.executors.base import DoneCallback, Executor, WorkerCount
from querybatch.engine.executors.heartbeat import Heartbeat, read_workers, worker_name
from querybatch.engine.executors.recorder import StoppedCallback
from querybatch.engine.executors.runtime import Announce, WorkerRuntime
from querybatch.errors import ConfigurationError, ServiceUnavailable
from querybatch.settings import Settings
from querybatch.store.codec import work_item_from_payload, work_item_payload
from querybatch.store.records import WorkItem
from querybatch.store.store import Store

log = logging.getLogger(__name__)

TASK_NAME = "querybatch.run_chunk"
RECONCILE_SECONDS = 1.0
# A handed-out sub-query that has not started this long after it was handed over, while
# nothing waits in the broker's queue, is taken to be lost (a broker restart, a send that
# failed, a worker killed or stopped while it held the message) and is handed over again.
RESEND_SECONDS = 5.0
# What a new leader adopts may never have been handed over (the former leader claims ahead):
# it is looked at after this long instead.
ADOPTED_RESEND_SECONDS = 1.0


def done_channel(settings: Settings) -> str:
    """The Redis channel workers announce finished sub-queries on."""
    return f"{settings.celery_queue}:done"


def make_celery(settings: Settings) -> Celery:
    """The Celery app of this deployment (the same on the leader and on every worker)."""
    app = Celery("querybatch", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=settings.celery_queue,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        # A worker that cannot reach the broker as it starts exits, and its supervisor starts
        # it again (within 5 s): kombu's own retries wait 2, 4, 6 ... up to 30 s apart, so a
        # worker started during an outage rejoined up to half a minute after the broker came
        # back. (Losing the broker once connected ends the worker the same way.)
        broker_connection_retry_on_startup=False,
        broker_transport_options={"visibility_timeout": 2 * 3600},
    )
    app.task(name=TASK_NAME, bind=True)(_run_chunk)
    return app


def shared_redis(url: str) -> aioredis.Redis:
    """A client of the shared Redis that retries once on a connection that went stale
    (after a Redis restart the first command on an old connection fails)."""
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=2,
        socket_timeout=5,
        retry=AsyncRetry(NoBackoff(), 1),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )


def check_broker(settings: Settings) -> None:
    """Fail with one clear line when the broker is not set, not Redis, or unreachable."""
    url = settings.broker_url
    if not url:
        raise ConfigurationError(
            "QB_BROKER_URL is not set",
            "QB_EXECUTOR=celery needs a broker, e.g. redis://host:6379/0.",
        )
    if not url.startswith(("redis://", "rediss://")):
        raise ConfigurationError(
            f"QB_BROKER_URL must be a redis:// URL, not {url.split(':', 1)[0]}://",
            "querybatch uses Redis as its broker and for its shared rate limits.",
        )
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except (redis.RedisError, OSError) as exc:
        raise ServiceUnavailable(
            f"Cannot reach the broker at {logs.redact(url)}", str(exc)
        ) from exc
    try:
        # Celery's own transport checks more than a ping (the version of redis-py among
        # them); without this a node would start and fail every hand-over.
        with make_celery(settings).connection_for_write() as connection:
            connection.default_channel.client.ping()
    except VersionMismatch as exc:
        raise ConfigurationError(
            "Celery cannot use the installed Redis client",
            f"{exc}; pip install 'querybatch[celery]'",
        ) from exc


# -- worker side --------------------------------------------------------------------------


def run_worker(settings: Settings, chunks: int, log_level: str, node: str | None) -> None:
    """Run one worker process: a Celery worker whose threads pool hands up to ``chunks``
    chunks at once to this process's event loop."""
    arguments = [
        "worker",
        f"--concurrency={chunks}",
        "--pool=threads",
        f"--queues={settings.celery_queue}",
        f"--loglevel={log_level}",
        "--without-gossip",
        "--without-mingle",
    ]
    make_celery(settings).worker_main(arguments + ([f"--hostname={node}"] if node else []))


_worker: dict[str, Any] = {}
_worker_lock = threading.Lock()
_heartbeats: list[Heartbeat] = []


def _setup_logging(loglevel: int | None = None, **_: Any) -> None:
    """Celery logs through the handler ``logs.install`` set up (readable or JSON lines)."""
    logs.install(Settings().log_format, loglevel or logging.WARNING)


def _worker_ready(**_: Any) -> None:
    """A worker came up: start its heartbeat, so the servers count it as alive."""
    settings = Settings()
    processes = 1  # a worker process runs its chunks on threads of its own
    name = worker_name()
    if settings.shared_redis_url:
        heartbeat = Heartbeat(settings.shared_redis_url, settings.celery_queue, name, processes)
        heartbeat.start()
        _heartbeats.append(heartbeat)
    logs.event(
        log,
        "worker_joined",
        "worker {worker} joined queue {queue} with {processes} processes (store {store})",
        worker=name,
        queue=settings.celery_queue,
        processes=processes,
        store=logs.redact(settings.resolved_database_url),
    )


def _worker_shutdown(**_: Any) -> None:
    """A worker stops: stop its heartbeat and sign it off."""
    while _heartbeats:
        _heartbeats.pop().stop()
    logs.event(log, "worker_left", "worker {worker} left", worker=worker_name())


signals.setup_logging.connect(_setup_logging, dispatch_uid="querybatch-logging")
signals.worker_ready.connect(_worker_ready, dispatch_uid="querybatch-worker-ready")
signals.worker_shutdown.connect(_worker_shutdown, dispatch_uid="querybatch-worker-shutdown")


def _run_chunk(task: Task, payload: list[dict[str, Any]]) -> int:
    """Run one chunk of sub-queries in this worker process; returns how many ran.

    Celery's threads hand chunks in at once; they all run on this process's one event loop,
    and each thread returns (and its message is acknowledged) when its chunk has ended.
    """
    redelivered = bool((task.request.delivery_info or {}).get("redelivered"))
    items = [work_item_from_payload(entry, takeover=redelivered) for entry in payload]
    runtime, loop = _worker_runtime()
    asyncio.run_coroutine_threadsafe(runtime.run(items), loop).result()
    return len(items)


def _worker_runtime() -> tuple[WorkerRuntime, asyncio.AbstractEventLoop]:
    """This process's runtime and the event loop it runs on (in a thread of its own),
    made by the first chunk to arrive."""
    with _worker_lock:
        if "runtime" not in _worker:
            settings = Settings()
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="qb-worker-loop", daemon=True).start()
            client = (
                redis.Redis.from_url(
                    settings.shared_redis_url, socket_connect_timeout=2, socket_timeout=2
                )
                if settings.shared_redis_url
                else None
            )
            runtime = asyncio.run_coroutine_threadsafe(
                _open_runtime(settings, _announcer(settings, client)), loop
            ).result()
            _worker.update(runtime=runtime, loop=loop)
        return _worker["runtime"], _worker["loop"]


async def _open_runtime(settings: Settings, announce: Announce) -> WorkerRuntime:
    runtime = WorkerRuntime(settings, announce)
    await runtime.open()
    return runtime


def _announcer(settings: Settings, client: redis.Redis | None) -> Announce:
    """What tells the leader that sub-queries ended (their outcomes are written)."""
    channel = done_channel(settings)

    def announce(items: Sequence[WorkItem], stopped: Sequence[str]) -> None:
        if client is None or not (items or stopped):
            return
        ended = [[item.query_id, item.attempt] for item in items]
        # A bare list is what a worker of an earlier release sends: the leader takes both.
        notice = orjson.dumps({"ended": ended, "stopped": list(stopped)} if stopped else ended)
        try:
            client.publish(channel, notice)
        except redis.RedisError as exc:  # the leader's reconciliation will notice instead
            log.warning("could not announce %d finished sub-queries: %s", len(items), exc)

    return announce


# -- leader side --------------------------------------------------------------------------


class CeleryExecutor(Executor):
    """Hands sub-queries to Celery workers and tracks them until they end."""

    # The next sub-queries are claimed ahead and handed out as soon as a worker says one
    # ended: without them, a lane refilled only in bites, and sub-queries in transit held
    # a third of its slots (32 of 50 ran at once).
    prefetch = True
    in_process = False
    scale_out = True

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.app = make_celery(settings)
        self._dispatched: dict[int, WorkItem] = {}
        self._sent_at: dict[int, float] = {}  # when each was (last) handed to the broker
        self._task_ids: dict[str, set[str]] = defaultdict(set)
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="qb-celery-send")
        self._on_done: DoneCallback | None = None
        self._on_stopped: StoppedCallback | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._redis = shared_redis(settings.shared_redis_url) if settings.shared_redis_url else None
        self._broker = shared_redis(settings.broker_url) if settings.broker_url else None

    @classmethod
    def preflight(cls, settings: Settings, store: Store) -> None:
        check_broker(settings)

    async def start(self, on_done: DoneCallback, on_stopped: StoppedCallback) -> None:
        # Batches stop on the workers, which say so in their notices (and the store does).
        self._on_done = on_done
        self._on_stopped = on_stopped
        self._loops.append(asyncio.create_task(self._reconcile_forever(), name="qb-reconcile"))
        if self._redis is not None:
            self._loops.append(asyncio.create_task(self._listen_forever(), name="qb-done-notices"))

    def capacity(self) -> int:
        return self.settings.celery_max_in_flight - len(self._dispatched)

    def submit(self, items: Sequence[WorkItem]) -> None:
        for item in items:
            self._dispatched[item.query_id] = item
        self._hand_over(items)

    def _hand_over(self, items: Sequence[WorkItem]) -> None:
        """Send ``items`` to the broker, a chunk of one batch per task, from the sender thread."""
        by_batch: dict[str, list[WorkItem]] = defaultdict(list)
        now = time.monotonic()
        for item in items:
            self._sent_at[item.query_id] = now
            by_batch[item.batch_id].append(item)
        loop = asyncio.get_running_loop()
        size = self.settings.celery_chunk
        for batch_id, group in by_batch.items():
            for start in range(0, len(group), size):
                chunk = group[start : start + size]
                loop.run_in_executor(self._sender, self._send, loop, batch_id, chunk)

    def _send(
        self, loop: asyncio.AbstractEventLoop, batch_id: str, chunk: Sequence[WorkItem]
    ) -> None:
        payload = [work_item_payload(item) for item in chunk]
        try:
            sent = self.app.send_task(TASK_NAME, args=[payload], queue=self.settings.celery_queue)
        except Exception as exc:  # broker down: handed over again once it is back
            log.error("could not hand %d sub-queries to the broker: %s", len(payload), exc)
            return
        loop.call_soon_threadsafe(self._remember, batch_id, str(sent.id))

    def _remember(self, batch_id: str, task_id: str) -> None:
        self._task_ids[batch_id].add(task_id)

    async def cancel(self, query_ids: Collection[int]) -> None:
        batches = {self._dispatched[q].batch_id for q in query_ids if q in self._dispatched}
        task_ids = [t for b in batches for t in self._task_ids.pop(b, ())]
        if task_ids:
            # Queued chunks are dropped by the workers; running ones notice in the store that
            # their sub-queries were stopped and let go of them.
            await asyncio.get_running_loop().run_in_executor(self._sender, self._revoke, task_ids)

    def _revoke(self, task_ids: list[str]) -> None:
        try:
            self.app.control.revoke(task_ids)
        except Exception as exc:  # revoking is an optimisation; the store decides what runs
            log.warning("could not revoke %d tasks: %s", len(task_ids), exc)

    def running(self) -> list[WorkItem]:
        return []  # workers renew the leases of what they run; a lost message must expire

    def adopt(self, items: Sequence[WorkItem]) -> None:
        # Where the former leader's messages are is unknown, and some were never sent: what
        # has not started soon while the queue is empty is handed over again.
        now = time.monotonic() - RESEND_SECONDS + ADOPTED_RESEND_SECONDS
        for item in items:
            self._dispatched[item.query_id] = item
            self._sent_at[item.query_id] = now

    def forget(self) -> None:
        self._dispatched.clear()
        self._sent_at.clear()
        self._task_ids.clear()

    async def healthy(self) -> bool:
        if self._redis is None:
            return True
        try:
            return bool(await self._redis.ping())
        except (redis.RedisError, OSError):
            return False

    async def workers(self) -> WorkerCount:
        if self._redis is None:
            return WorkerCount(0, None)
        try:
            return await read_workers(self._redis, self.settings.celery_queue, time.time())
        except (redis.RedisError, OSError):
            return WorkerCount(0, None)

    async def stop(self) -> None:
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._sender.shutdown(wait=False, cancel_futures=True)
        for client in (self._redis, self._broker):
            if client is not None:
                await client.aclose()

    def _finish(self, pairs: Collection[tuple[int, int]]) -> None:
        done = []
        for query_id, attempt in pairs:
            item = self._dispatched.get(query_id)
            if item is not None and item.attempt == attempt:
                done.append(self._dispatched.pop(query_id))
                self._sent_at.pop(query_id, None)
        if done and self._on_done is not None:
            self._on_done(done)

    def _heard(self, notice: Any) -> None:
        """A worker's notice: the sub-queries that ended, then the batches that stopped."""
        ended = notice.get("ended", ()) if isinstance(notice, dict) else notice
        self._finish([(int(q), int(a)) for q, a in ended])
        stopped = notice.get("stopped") if isinstance(notice, dict) else None
        if stopped and self._on_stopped is not None:
            self._on_stopped([str(batch_id) for batch_id in stopped])

    async def _reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(RECONCILE_SECONDS)
            try:
                pairs = [(i.query_id, i.attempt) for i in list(self._dispatched.values())]
                if pairs:
                    owned = await self.store.runs.still_owned(pairs)
                    self._finish([p for p in pairs if p[0] not in owned])
                await self._hand_over_lost()
            except Exception as exc:
                logs.retrying(log, "reconciling handed-out sub-queries failed", exc)

    async def _hand_over_lost(self) -> None:
        """Hand over again what was handed over a while ago, never started, and is not in
        the broker's queue (the queue is empty): it was lost on the way."""
        cutoff = time.monotonic() - RESEND_SECONDS
        overdue = [i for i in self._dispatched.values() if self._sent_at[i.query_id] <= cutoff]
        if not overdue or not await self._queue_is_empty():
            return
        pairs = [(item.query_id, item.attempt) for item in overdue]
        waiting = await self.store.runs.still_owned(pairs, waiting=True)
        lost = [item for item in overdue if item.query_id in waiting]
        if lost:
            logs.event(
                log,
                "handed_over_again",
                "handed {count} sub-queries over again: not started {seconds:.0f} s after they "
                "were handed over, with the queue empty (a broker restart, a failed send, or "
                "a worker stopped while it held them); first ids {query_ids}",
                level=logging.WARNING,
                count=len(lost),
                seconds=RESEND_SECONDS,
                query_ids=[item.query_id for item in lost[:10]],
            )
            self._hand_over(lost)

    async def _queue_is_empty(self) -> bool:
        """Whether the broker answers and holds no message of this deployment's queue."""
        if self._broker is None:
            return False
        try:
            return int(await self._broker.llen(self.settings.celery_queue)) == 0
        except (redis.RedisError, OSError):
            return False

    async def _listen_forever(self) -> None:
        assert self._redis is not None
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(done_channel(self.settings))
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._heard(orjson.loads(message["data"]))
            except (redis.RedisError, OSError) as exc:
                log.warning("lost the finished-sub-query channel (%s); reconnecting", exc)
                await asyncio.sleep(1)
