"""Worker heartbeats in the shared Redis: which workers are alive, and when one was last seen.

Each ``querybatch worker`` writes its name and its number of processes into one sorted set
every few seconds, scored with the time; a worker is alive while its last beat is less than
three periods old. A worker that stops cleanly leaves the set at once and notes when it left,
so that ``/healthz`` can still say how long ago a worker was seen. Nodes compare their own
clocks with the workers' (kept in step by NTP, as the leases already assume).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import redis
import redis.asyncio as aioredis

from querybatch.engine.executors.base import WorkerCount

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
ALIVE_SECONDS = 3 * HEARTBEAT_SECONDS
FORGET_SECONDS = 3600.0


def workers_key(queue: str) -> str:
    """The sorted set of the workers of a queue."""
    return f"{queue}:workers"


def worker_name() -> str:
    """This process's name as a worker: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat:
    """A thread that tells the shared Redis every few seconds that this worker is alive."""

    def __init__(self, url: str, queue: str, name: str, processes: int) -> None:
        self.client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self.key = workers_key(queue)
        self.member = f"{name}|{processes}"
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._beat_forever, name="qb-heartbeat", daemon=True)
        self._failing = False

    def start(self) -> None:
        """Beat once now (the servers see the worker at once), then every few seconds."""
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and leave the set, noting when this worker left."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(HEARTBEAT_SECONDS)
        try:
            with self.client.pipeline() as pipe:
                pipe.zrem(self.key, self.member)
                pipe.set(f"{self.key}:left", time.time(), ex=int(FORGET_SECONDS))
                pipe.execute()
        except (redis.RedisError, OSError) as exc:  # it drops out of the count by itself
            log.warning("could not sign this worker off: %s", exc)
        self.client.close()

    def beat(self) -> None:
        """Say once that this worker is alive; an unreachable Redis is logged once."""
        now = time.time()
        try:
            with self.client.pipeline() as pipe:
                pipe.zadd(self.key, {self.member: now})
                pipe.zremrangebyscore(self.key, "-inf", now - FORGET_SECONDS)
                pipe.expire(self.key, int(FORGET_SECONDS))
                pipe.execute()
        except (redis.RedisError, OSError) as exc:
            if not self._failing:
                log.warning("worker heartbeat failed (%s); the servers may count it as gone", exc)
            self._failing = True
            return
        if self._failing:
            log.info("worker heartbeat works again")
        self._failing = False

    def _beat_forever(self) -> None:
        while not self._stopping.wait(HEARTBEAT_SECONDS):
            self.beat()


async def read_workers(client: aioredis.Redis, queue: str, now: float) -> WorkerCount:
    """The workers of ``queue`` as their heartbeats tell them, at time ``now``."""
    key = workers_key(queue)
    async with client.pipeline(transaction=False) as pipe:
        pipe.zrange(key, 0, -1, withscores=True)
        pipe.get(f"{key}:left")
        members, left = await pipe.execute()
    alive = 0
    last = float(left) if left is not None else None
    for member, seen in members:
        if seen >= now - ALIVE_SECONDS:
            _, _, processes = bytes(member).decode().rpartition("|")
            alive += int(processes) if processes.isdigit() else 1
        last = seen if last is None else max(last, seen)
    return WorkerCount(alive, None if last is None else max(0.0, now - last))
