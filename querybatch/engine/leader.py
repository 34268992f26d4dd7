"""Which node schedules: the one holding the scheduler lock of the shared database.

Every node serves the API; one at a time claims and dispatches sub-queries. If the leader
dies, its database session (and with it the advisory lock) goes too, and another node takes
over within a few seconds, adopting the sub-queries the old leader had handed out. A leader
that freezes (SIGSTOP, a hung machine) keeps its session open; once its lock session has
been silent FENCE_SECONDS, a node that wants to lead ends that process's sessions and takes
over. Safety never depends on a single leader: every status change is conditional.
"""

from __future__ import annotations

import logging
import os
import socket
import time

from querybatch import logs
from querybatch.store.database import Database

log = logging.getLogger(__name__)

# A leader's lock session is used every 2 s by a thread of its own; one silent this long is
# frozen or hung, and a node that wants to lead ends its sessions (Database.fence_silent_holder).
FENCE_SECONDS = 10.0


class Leadership:
    """Holds, or keeps trying to take, the scheduler lock."""

    def __init__(
        self, db: Database, recheck_seconds: float = 2.0, fence_seconds: float = FENCE_SECONDS
    ) -> None:
        self.db = db
        self.recheck_seconds = recheck_seconds
        self.fence_seconds = fence_seconds
        self._leader = False
        self._checked = 0.0
        self._fence_checked = 0.0

    @property
    def leader(self) -> bool:
        """Whether this node led at the last check."""
        return self._leader

    async def check(self) -> tuple[bool, bool]:
        """(leads now, just became leader). Cheap between re-checks."""
        now = time.monotonic()
        # A lock the database session lost (the pinger found it dead) is noticed at once.
        held = self.db.holds_lock("scheduler")
        if self._leader and held and now - self._checked < self.recheck_seconds:
            return True, False
        self._checked = now
        was = self._leader
        self._leader = await self.db.read(self.db.try_lock, "scheduler")
        if not self._leader and not was and now - self._fence_checked >= self.recheck_seconds:
            self._fence_checked = now
            self._leader = await self._fence()
        if self._leader != was:
            verb = "became the scheduling leader" if self._leader else "stopped leading"
            node = f"{socket.gethostname()}:{os.getpid()}"
            logs.event(log, "leader_changed", "node {node} " + verb, node=node, leader=self._leader)
        return self._leader, self._leader and not was

    async def _fence(self) -> bool:
        """Take the lock from a leader that went silent; whether this node leads now."""
        fenced = await self.db.read(self.db.fence_silent_holder, "scheduler", self.fence_seconds)
        if fenced is None:
            return False
        logs.event(
            log,
            "leader_fenced",
            "node {node} ended the database sessions of leader {holder}, silent for "
            "{seconds:.0f} s or more (frozen or hung), to take over",
            level=logging.WARNING,
            node=f"{socket.gethostname()}:{os.getpid()}",
            holder=fenced,
            seconds=self.fence_seconds,
        )
        return bool(await self.db.read(self.db.try_lock, "scheduler"))
