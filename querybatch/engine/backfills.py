"""Backfills: a transfer's history loaded a data date at a time (``/teams/{team_id}/backfills``).

A backfill makes one Backfill run per data date of its range at once; the transfer runner
starts them after the recurring runs, as many at a time as keep a few batches of the
tenant's concurrency of sub-queries under way (``BACKFILL_DEPTH``), in a sequence, so a long
backfill runs as fast as one batch of the same sub-queries yet never holds back the schedule:
the scheduler's turns between a tenant's batches give the recurring runs' batches their
share. A cancel
stops the runs that have not started; what has loaded stays. Team-scoped paths name the
caller's own team; a backfill or transfer of another tenant is NotFound.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime

from querybatch.engine.catalog import check_team
from querybatch.engine.service import Caller
from querybatch.errors import BadRequest, Conflict, NotFound
from querybatch.store.backfills import BackfillState
from querybatch.store.store import Store

__all__ = ["MAX_DAYS", "BackfillState", "Backfills"]

MAX_DAYS = 3660
"""The most data dates one backfill loads (about ten years)."""


class Backfills:
    """The one door to backfills."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        created: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self._clock = clock
        # Told of each new backfill (the runner's poke): its first runs start on the next
        # scheduler tick, not up to a second later at the runner's next paced pass.
        self._created = created

    async def create(
        self, caller: Caller, team_id: int, transfer_id: int, first: date, last: date
    ) -> BackfillState:
        """A backfill of the transfer from ``first`` to ``last`` (both included, before
        today UTC); 409 while another backfill of the transfer has runs to go."""
        check_team(caller, team_id)
        today = datetime.fromtimestamp(self._clock(), UTC).date()
        if last < first:
            raise BadRequest(
                "Invalid value for parameter 'range_end'", "range_end is before range_start"
            )
        if last >= today:
            raise BadRequest(
                "Invalid value for parameter 'range_end'",
                f"A backfill loads days that have ended: {today.isoformat()} (UTC) or later "
                "cannot be loaded yet",
            )
        if (last - first).days + 1 > MAX_DAYS:
            raise BadRequest(
                "Invalid value for parameter 'range_start'",
                f"A backfill covers at most {MAX_DAYS} days",
            )
        made = await self.store.backfills.create(
            caller.account, transfer_id, first, last, self._clock()
        )
        if made is None:
            raise NotFound(f"No transfer {transfer_id}")
        if made == "busy":
            raise Conflict(
                "A backfill of this transfer is under way",
                "Wait for it to end, or cancel it, before starting another.",
            )
        self._created()
        return made

    async def get(self, caller: Caller, team_id: int, backfill_id: int) -> BackfillState:
        """One of the team's backfills, with its counters and error report."""
        check_team(caller, team_id)
        found = await self.store.backfills.get(caller.account, backfill_id)
        if found is None:
            raise NotFound(f"No backfill {backfill_id}")
        return found

    async def latest(self, caller: Caller, team_id: int, transfer_id: int) -> BackfillState:
        """The transfer's newest backfill (NotFound when it has none)."""
        check_team(caller, team_id)
        if await self.store.transfers.get(caller.account, transfer_id) is None:
            raise NotFound(f"No transfer {transfer_id}")
        found = await self.store.backfills.latest(caller.account, transfer_id)
        if found is None:
            raise NotFound(f"Transfer {transfer_id} has no backfill")
        return found

    async def incomplete(self, caller: Caller, team_id: int) -> list[BackfillState]:
        """The team's backfills neither completed nor cancelled, newest first."""
        check_team(caller, team_id)
        return await self.store.backfills.incomplete(caller.account)

    async def cancel(self, caller: Caller, team_id: int, backfill_id: int) -> BackfillState:
        """Cancel a backfill: runs not started never start; loaded rows stay."""
        check_team(caller, team_id)
        found = await self.store.backfills.cancel(caller.account, backfill_id, self._clock())
        if found is None:
            raise NotFound(f"No backfill {backfill_id}")
        return found
