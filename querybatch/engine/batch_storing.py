"""Storing a large batch's sub-queries behind its answer, a slice at a time.

Storing a sub-query is most of what accepting a batch costs (about 13 µs each here: a
million took 14 to 18 s before the answer). A batch of more than ``QB_BATCH_STORE_SLICE``
sub-queries is answered once that many are stored, with its *plan* (its queries' specs,
from which the same sub-queries are made again in the same order); the rest are stored here,
one write of a slice at a time, while its first ones already run. The store says how many
are stored (``batches.n_stored``, NULL once all are), and every write of a slice checks it
first, so a slice is never stored twice whoever writes it.

Whoever reads a sub-query not stored yet waits for it (:meth:`BatchStoring.wait_stored`):
never longer than the answer used to take. A batch cancelled or timed out meanwhile gets the
rest stored as stopped sub-queries; its counters count them so from the stop on.

The node that answered the batch stores the rest. If it stops first, the plan stays in the
store: the node that leads takes over a batch whose storing has not moved for a while (at
once on the embedded default, where no other node can be storing it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from querybatch import logs
from querybatch.domain.batch import PlannedQuery
from querybatch.engine.batches import SubQueries
from querybatch.store.records import PartlyStored
from querybatch.store.store import Store
from querybatch.turns import outside_turn

log = logging.getLogger(__name__)

# The leader looks for batches whose storing stopped this often; one whose count has not
# moved between two looks is taken over (a node storing one writes a slice well within it).
LOOK_SECONDS = 5.0
# A reader of a sub-query not stored yet looks again this often, and gives up waiting (then
# reads what is stored) after this long: storing a million took less than 20 s here.
WAIT_POLL_SECONDS = 0.05
WAIT_MOST_SECONDS = 60.0


@dataclass(slots=True)
class _Storing:
    """A batch being stored here: its sub-queries from the next one on, and how many are."""

    pieces: Iterator[PlannedQuery]
    stored: int
    total: int


class BatchStoring:
    """Stores the rest of batches answered before all their sub-queries were stored."""

    def __init__(
        self,
        store: Store,
        slice_size: int,
        on_stored: Callable[[], None],
        *,
        alone: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.slice_size = slice_size
        self.on_stored = on_stored  # more sub-queries can be claimed (wakes the scheduler)
        self.alone = alone  # no other node can be storing a batch (the embedded default)
        self.clock = clock
        self._storing: dict[str, _Storing] = {}
        self._task: asyncio.Task[None] | None = None
        self._looking: asyncio.Task[None] | None = None
        self._last_look = float("-inf")
        self._seen: dict[str, int] = {}  # batch id -> its stored count at the last look

    def hand_over(self, batch_id: str, subqueries: SubQueries, stored: int) -> None:
        """Store the sub-queries of a batch just stored in part, after its first ``stored``."""
        self._storing[batch_id] = _Storing(subqueries.after(stored), stored, len(subqueries))
        self._run()

    def look(self) -> None:
        """Take over, in the background, the batches whose storing stopped (the leading node
        calls this on its ticks; it looks at most every :data:`LOOK_SECONDS`)."""
        now = self.clock()
        if now - self._last_look < LOOK_SECONDS or self._looking_now():
            return
        self._last_look = now
        self._looking = asyncio.create_task(self._look(), name="qb-batch-storing-look")

    async def wait_stored(self, account: str, batch_id: str, position: int) -> bool:
        """Return once the tenant's batch has its first ``position`` sub-queries stored (at
        once when it has, when there is no such batch or it never holds that many), or after
        :data:`WAIT_MOST_SECONDS`; whether it waited (what was read before may have been
        stored since)."""
        deadline = self.clock() + WAIT_MOST_SECONDS
        stored = await self.store.jobs.stored_through(account, batch_id, position)
        if stored is None or stored >= position:
            return False
        async with outside_turn():  # a poll waiting here holds no other poll up
            while self.clock() < deadline:
                await asyncio.sleep(WAIT_POLL_SECONDS)
                stored = await self.store.jobs.stored_through(account, batch_id, position)
                if stored is None or stored >= position:
                    break
        return True

    async def stop(self) -> None:
        """Stop storing (the plans stay in the store: the next start goes on)."""
        for task in (self._task, self._looking):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._storing.clear()

    # -- internals ----------------------------------------------------------------------------

    def _looking_now(self) -> bool:
        return self._looking is not None and not self._looking.done()

    def _run(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._store_all(), name="qb-batch-storing")

    async def _store_all(self) -> None:
        """A slice of each batch in turn, until every batch here is stored."""
        while self._storing:
            for batch_id in list(self._storing):
                storing = self._storing.get(batch_id)
                if storing is not None:
                    await self._store_slice(batch_id, storing)
            self.on_stored()

    async def _store_slice(self, batch_id: str, storing: _Storing) -> None:
        try:
            stored = await self.store.jobs.store_more(
                batch_id, storing.stored, storing.pieces, self.slice_size
            )
        except Exception as exc:
            # Some pieces were made and not stored: what is stored is known only to the
            # store now, so the next look takes the batch over from there.
            del self._storing[batch_id]
            logs.retrying(log, f"storing the sub-queries of batch {batch_id} failed", exc)
            return
        if stored is None or stored >= storing.total:
            del self._storing[batch_id]
            if stored is not None:
                log.debug("stored all %d sub-queries of batch %s", storing.total, batch_id)
            return
        storing.stored = stored

    async def _look(self) -> None:
        try:
            partly = await self.store.jobs.stored_in_part()
        except Exception as exc:
            logs.retrying(log, "looking for batches stored in part failed", exc)
            return
        seen, self._seen = self._seen, {batch.batch_id: batch.stored for batch in partly}
        for batch in partly:
            if batch.batch_id in self._storing:
                continue
            if self.alone or seen.get(batch.batch_id) == batch.stored:
                await self._take_over(batch)

    async def _take_over(self, batch: PartlyStored) -> None:
        # The plan is read only here: a look reads only the counts of the batches.
        try:
            planned = await self.store.jobs.plan_of(batch.batch_id)
            if planned is None:  # all stored since the look
                return
            settings, plan = planned
            subqueries = await asyncio.to_thread(
                SubQueries.from_plan, batch.batch_id, plan, settings, batch.query_amount
            )
        except Exception as exc:  # a plan this version cannot read: say so, every look
            logs.retrying(log, f"the plan of batch {batch.batch_id} cannot be read", exc)
            return
        if batch.batch_id in self._storing:  # its answer handed it over meanwhile
            return
        logs.event(
            log,
            "batch_storing_resumed",
            "storing the sub-queries of batch {batch_id} from {stored} of {total} on",
            batch_id=batch.batch_id,
            stored=batch.stored,
            total=batch.query_amount,
        )
        self.hand_over(batch.batch_id, subqueries, batch.stored)
