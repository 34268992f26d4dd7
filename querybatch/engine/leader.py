"""Which node schedules: the one holding the scheduler lock of the shared database.

Every node serves the API; one at a time claims and dispatches sub-queries. If the leader
dies, its database session (and with it the advisory lock) goes too, and another node takes
over within a few seconds, adopting the sub-queries the old leader had handed out.
"""

from __future__ import annotations

import logging
import os
import socket
import time

from querybatch import logs
from querybatch.store.database import Database

log = logging.getLogger(__name__)


class Leadership:
    """Holds, or keeps trying to take, the scheduler lock."""

    def __init__(self, db: Database, recheck_seconds: float = 2.0) -> None:
        self.db = db
        self.recheck_seconds = recheck_seconds
        self._leader = False
        self._checked = 0.0

    @property
    def leader(self) -> bool:
        """Whether this node led at the last check."""
        return self._leader

    async def check(self) -> tuple[bool, bool]:
        """(leads now, just became leader). Cheap between re-checks."""
        now = time.monotonic()
        if self._leader and now - self._checked < self.recheck_seconds:
            return True, False
        self._checked = now
        was = self._leader
        self._leader = await self.db.read(self.db.try_lock, "scheduler")
        if self._leader != was:
            verb = "became the scheduling leader" if self._leader else "stopped leading"
            node = f"{socket.gethostname()}:{os.getpid()}"
            logs.event(log, "leader_changed", "node {node} " + verb, node=node, leader=self._leader)
        return self._leader, self._leader and not was
