"""The scheduler: which sub-query runs next, under every limit, fairly.

Each batch with work to do is a *lane* with its own ``query_concurrency``. The scheduler
claims sub-queries of a lane from the store in order (SCHEDULED -> QUEUED) into a small
buffer, and hands them to the executor while three limits hold: the lane's concurrency,
the tenant's concurrency over all its lanes, and the executor's free slots. When slots are
scarce, tenants take turns, and within a tenant its lanes take turns, so a huge batch never
starves a small one. A finished run frees its slot at once and the next buffered sub-query
starts without a round trip to the store.

Batches of a *sequence* (the batches of one backfill) run one after the other: each of their
turns goes to the sequence's oldest batch with a sub-query ready, so the next batch waits
behind the one running and takes only the slots it cannot fill. Taking turns instead, the
batches of a backfill ended together and left the tenant's slots idle while the next ones
were made; in a sequence, one is always half done when another ends.

Housekeeping runs on every tick: new and stopped batches, timeouts, lease renewal, putting
back sub-queries whose runs went silent, and the expiry sweep.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from querybatch import logs
from querybatch.engine.executors.base import Executor
from querybatch.engine.executors.lifecycle import log_stopped
from querybatch.engine.expiry import Expiry
from querybatch.engine.leader import Leadership
from querybatch.store.records import LaneRecord, WorkItem
from querybatch.store.store import Store

log = logging.getLogger(__name__)

BITE_WAIT_SECONDS = 1.0  # how long a lane with less room than a bite waits before it claims

StoppedCallback = Callable[[list[str]], None]
Clock = Callable[[], float]


class Background(Protocol):
    """Work the leading node starts on its ticks, in the background (the transfer runs, the
    packing of stopped batches)."""

    def start(self) -> None:
        """Start a pass unless one runs or one is not due yet."""

    def poke(self) -> None:
        """Have the next ``start`` begin a pass at once (batches stopped)."""

    async def stop(self) -> None:
        """Stop what runs; the node stops."""


class Looker(Protocol):
    """Work the leading node looks for on its ticks (batches whose storing stopped)."""

    def look(self) -> None:
        """Look, in the background, unless it looked a moment ago."""


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    """The limits and periods the scheduler works with."""

    account_concurrency: int = 100
    lease_seconds: float = 30.0
    claim_lease_seconds: float = 30.0
    tick_seconds: float = 0.25
    sweep_seconds: float = 30.0
    max_attempts: int = 4  # claims of one sub-query before a lapsed one is abandoned


@dataclass(slots=True)
class Lane:
    """A batch as the scheduler tracks it between store reads."""

    record: LaneRecord
    buffer: deque[WorkItem] = field(default_factory=deque)
    in_flight: int = 0
    exhausted: bool = False
    claiming: bool = False
    announced: bool = False  # its "started" line was logged
    short_since: float | None = None  # since when it has had room, but less than a bite

    @property
    def batch_id(self) -> str:
        return self.record.batch_id

    @property
    def account(self) -> str:
        return self.record.account

    def ready(self) -> bool:
        """Whether it has a claimed sub-query and room to start it."""
        return bool(self.buffer) and self.in_flight < self.record.query_concurrency


class Scheduler:
    """Claims sub-queries and hands them to an executor under the concurrency limits."""

    def __init__(
        self,
        store: Store,
        executor: Executor,
        settings: SchedulerSettings,
        on_stopped: StoppedCallback,
        leadership: Leadership | None = None,
        clock: Clock = time.time,
        expiry: Expiry | None = None,
    ) -> None:
        self.leadership = leadership
        self.expiry = expiry
        self.transfer_runs: Background | None = None  # set once the transfers service exists
        self.packing: Background | None = None  # packs stopped batches' rows (batch_packs)
        self.batch_storing: Looker | None = None  # takes over batches whose storing stopped
        # Leases, timeouts and claims all read the time here, so a test can move it by hand.
        self.clock = clock
        self.store = store
        self.executor = executor
        self.settings = settings
        self.on_stopped = on_stopped
        self.lanes: dict[str, Lane] = {}
        self.tenant_in_flight: dict[str, int] = defaultdict(int)
        self._tenant_lanes: dict[str, deque[str]] = defaultdict(deque)
        self._tenant_turns: deque[str] = deque()
        # Each tenant's sequences: their lanes, oldest first.
        self._sequences: dict[tuple[str, str], list[Lane]] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._last_renewal = self._last_requeue = self._last_sweep = 0.0
        self._claims: set[asyncio.Task[None]] = set()
        # Lanes stopped here, by the count of stops when each was: a refresh whose read began
        # before a stop must not bring that batch's lane back (it read the batch not stopped).
        self._stops = 0
        self._stopped_at: dict[str, int] = {}

    # -- the loop ---------------------------------------------------------------------------

    def wake(self) -> None:
        """Look at the store now rather than at the next tick (a batch was created)."""
        self._wake.set()

    async def run(self) -> None:
        """Schedule until :meth:`stop`; errors of one round are logged, never fatal."""
        while not self._stopping:
            try:
                await self.tick()
            except Exception as exc:
                logs.retrying(log, "scheduler round failed", exc)
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.tick_seconds)
            except TimeoutError:
                pass
            self._wake.clear()

    def stop(self) -> None:
        """End :meth:`run` after its current round."""
        self._stopping = True
        self._wake.set()

    async def tick(self) -> None:
        """One round of housekeeping, claiming and dispatching (only on the leading node)."""
        adopted: list[WorkItem] = []
        if self.leadership is not None:
            leads, became = await self.leadership.check()
            if not leads:
                await self._step_down()
                return
            if became:
                adopted = await self.store.runs.in_flight_items()
                self.executor.adopt(adopted)
        now = self.clock()
        await self._refresh_lanes(now)
        self._count_adopted(adopted)
        await self._stop_timed_out(now)
        await self._maintain_leases(now)
        if self.expiry is not None and now - self._last_sweep >= self.settings.sweep_seconds:
            self._last_sweep = now
            self.expiry.start()  # in the background, a slice at a time
        if self.transfer_runs is not None:
            self.transfer_runs.start()  # paced by itself; only the leader gets this far
        if self.packing is not None:
            self.packing.start()  # the same
        if self.batch_storing is not None:
            self.batch_storing.look()
        self._refill()
        self._pump()

    async def settle(self) -> None:
        """Return once every claim started so far has landed and been dispatched.

        Claims run in the background of :meth:`tick` and :meth:`on_done`; a caller that drives
        ticks itself (a test, a drain-then-stop run) awaits this to see their effect.
        """
        while pending := [task for task in self._claims if not task.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    # -- executor events --------------------------------------------------------------------

    def on_done(self, items: Sequence[WorkItem]) -> None:
        """Runs ended: free their slots and start what can start."""
        for item in items:
            self.tenant_in_flight[item.account] -= 1
            lane = self.lanes.get(item.batch_id)
            if lane is not None:
                lane.in_flight -= 1
        self._pump()
        self._refill()

    async def stop_lane(self, batch_id: str, in_flight: Sequence[int]) -> None:
        """A batch was stopped (cancel, timeout): forget its buffer, stop its runs."""
        self._stops += 1
        self._stopped_at[batch_id] = self._stops
        self._forget(batch_id)
        if in_flight:
            await self.executor.cancel(in_flight)

    # -- leadership -------------------------------------------------------------------------

    def _count_adopted(self, items: Sequence[WorkItem]) -> None:
        """Sub-queries a former leader handed out count against the limits until they end."""
        for item in items:
            self.tenant_in_flight[item.account] += 1
            lane = self.lanes.get(item.batch_id)
            if lane is not None:
                lane.in_flight += 1

    async def _step_down(self) -> None:
        """Not leading (any more): give back what was claimed and never handed out (the new
        leader cannot know of it), and forget everything; the leader tracks it now."""
        if self.lanes or self.tenant_in_flight:
            claimed = [item for lane in self.lanes.values() for item in lane.buffer]
            self.lanes.clear()
            self.tenant_in_flight.clear()
            self._tenant_lanes.clear()
            self._tenant_turns.clear()
            self._sequences.clear()
            self.executor.forget()
            await self._give_back(claimed)

    async def _give_back(self, claimed: list[WorkItem]) -> None:
        """Put sub-queries claimed here, and never handed out, back on the schedule."""
        if claimed:
            try:
                released = await self.store.runs.release_claims(claimed, self.clock())
            except Exception as exc:  # the store is down: their claim leases lapse
                log.warning("could not give back %d claimed sub-queries: %s", len(claimed), exc)
                return
            if released:
                logs.event(
                    log,
                    "claims_given_back",
                    "gave back {count} claimed sub-queries that were never handed out "
                    "(this node stepped down, or their batch stopped while claiming)",
                    count=released,
                )

    # -- lanes ------------------------------------------------------------------------------

    async def _refresh_lanes(self, now: float) -> None:
        stops_before = self._stops
        records = await self.store.runs.active_lanes()
        seen = set()
        for record in records:
            if record.schedule_time > now:
                continue
            if self._stopped_at.get(record.batch_id, 0) > stops_before:
                continue  # stopped while this was read
            seen.add(record.batch_id)
            lane = self.lanes.get(record.batch_id)
            if lane is None:
                lane = self.lanes[record.batch_id] = Lane(record)
                self._tenant_lanes[record.account].append(record.batch_id)
                if record.account not in self._tenant_turns:
                    self._tenant_turns.append(record.account)
                if record.sequence is not None:
                    bisect.insort(
                        self._sequences.setdefault((record.account, record.sequence), []),
                        lane,
                        key=_age,
                    )
            else:
                lane.record = record
                if record.queued > len(lane.buffer):
                    lane.exhausted = False
        # A read that began after a stop saw its batch stopped: that stop needs no memory.
        self._stopped_at = {b: n for b, n in self._stopped_at.items() if n > stops_before}
        for batch_id in [b for b in self.lanes if b not in seen]:
            # Stopped elsewhere (another node cancelled it) or finished: nothing of it may run.
            running = [i.query_id for i in self.executor.running() if i.batch_id == batch_id]
            await self.stop_lane(batch_id, running)

    def _forget(self, batch_id: str) -> None:
        lane = self.lanes.pop(batch_id, None)
        if lane is None:
            return
        lanes = self._tenant_lanes[lane.account]
        if batch_id in lanes:
            lanes.remove(batch_id)
        if not lanes:
            del self._tenant_lanes[lane.account]
            if lane.account in self._tenant_turns:
                self._tenant_turns.remove(lane.account)
        if lane.record.sequence is not None:
            key = (lane.account, lane.record.sequence)
            sequence = self._sequences.get(key, [])
            if lane in sequence:
                sequence.remove(lane)
            if not sequence:
                self._sequences.pop(key, None)

    async def _stop_timed_out(self, now: float) -> None:
        for lane in list(self.lanes.values()):
            start = lane.record.start_time
            if start is not None and start + lane.record.timeout_seconds < now:
                in_flight, _ = await self.store.runs.stop_batch(lane.batch_id, now, cancelled=False)
                await self.stop_lane(lane.batch_id, in_flight)
                self.on_stopped([lane.batch_id])
                await log_stopped(self.store, [lane.batch_id], "timed out")

    async def _maintain_leases(self, now: float) -> None:
        lease = self.settings.lease_seconds
        if now - self._last_renewal >= lease / 3:
            self._last_renewal = now
            await self.store.runs.renew_leases(self.executor.running(), now + lease)
            # Claimed and not handed over yet: once handed over they may wait in a queue that
            # nobody renews them in, so they keep the claim's (longer, for a broker) lease.
            buffered = [i for lane in self.lanes.values() for i in lane.buffer]
            await self.store.runs.renew_leases(buffered, now + self.settings.claim_lease_seconds)
        if now - self._last_requeue >= lease / 2:
            self._last_requeue = now
            if not await self.executor.healthy():
                # The broker is down: nothing handed out can start, and taking it back would
                # only use up attempts (a long outage would abandon sub-queries that never ran).
                return
            moved = await self.store.runs.requeue(now, max_attempts=self.settings.max_attempts)
            if moved:
                logs.event(
                    log,
                    "leases_lapsed",
                    "took back {count} sub-queries whose runs went unheard of; they run again",
                    level=logging.WARNING,
                    count=moved,
                )
                for lane in self.lanes.values():
                    lane.exhausted = False

    # -- claiming ---------------------------------------------------------------------------

    def _refill(self) -> None:
        """Claim for every lane with room for a bite: at least half its concurrency, not one
        by one; or whatever room it has once it has waited BITE_WAIT_SECONDS for more.

        Without the second rule, runs that hang (a stopped worker, a lost message) and hold
        half a lane's slots until their leases lapse would stop the whole lane meanwhile.
        """
        if self._stopping:
            return  # runs cancelled at shutdown end here: nothing new is claimed
        depth = 2 if self.executor.prefetch else 1
        now = self.clock()
        for lane in self.lanes.values():
            wanted = lane.record.query_concurrency * depth - lane.in_flight - len(lane.buffer)
            if lane.exhausted or lane.claiming or wanted < 1:
                lane.short_since = None
                continue
            if wanted < max(1, lane.record.query_concurrency // 2):
                if lane.short_since is None:
                    lane.short_since = now
                if now - lane.short_since < BITE_WAIT_SECONDS:
                    continue
            lane.short_since = None
            lane.claiming = True
            task = asyncio.create_task(self._claim(lane, wanted))
            self._claims.add(task)
            task.add_done_callback(self._claims.discard)

    async def _claim(self, lane: Lane, wanted: int) -> None:
        now = self.clock()
        try:
            items = await self.store.runs.claim(
                lane.record,
                wanted,
                now,
                now + self.settings.claim_lease_seconds,
            )
        except Exception as exc:
            if not self._stopping:
                logs.retrying(log, f"claiming sub-queries of {lane.batch_id} failed", exc)
            items = []
        finally:
            lane.claiming = False
        if len(items) < wanted:
            lane.exhausted = True
        if items and lane.record.start_time is None and not lane.announced:
            lane.announced = True
            logs.event(
                log,
                "batch_started",
                "batch {batch_id} started (tenant {tenant})",
                batch_id=lane.batch_id,
                tenant=lane.account,
            )
        if self.lanes.get(lane.batch_id) is lane:
            lane.buffer.extend(items)
            self._pump()
        else:  # stepped down (or the batch stopped) while claiming: nobody would hand them out
            await self._give_back(items)

    # -- dispatching ------------------------------------------------------------------------

    def _pump(self) -> None:
        free = self.executor.capacity()
        if free <= 0 or not self._tenant_turns:
            return
        chosen: list[WorkItem] = []
        limit = self.settings.account_concurrency
        progress = True
        while free > 0 and progress:
            progress = False
            for account in list(self._tenant_turns):
                if self.tenant_in_flight[account] >= limit:
                    continue
                lane = self._next_ready_lane(account)
                if lane is None:
                    continue
                chosen.append(lane.buffer.popleft())
                lane.in_flight += 1
                self.tenant_in_flight[account] += 1
                free -= 1
                progress = True
                if free == 0:
                    break
        if chosen:
            self._tenant_turns.rotate(-1)
            self.executor.submit(chosen)

    def _next_ready_lane(self, account: str) -> Lane | None:
        turns = self._tenant_lanes.get(account)
        if not turns:
            return None
        for _ in range(len(turns)):
            lane = self.lanes[turns[0]]
            turns.rotate(-1)
            if lane.record.sequence is not None:
                lane = self._sequence_lead(lane)
            if lane.ready():
                return lane
        return None

    def _sequence_lead(self, lane: Lane) -> Lane:
        """The oldest lane of the lane's sequence with a sub-query ready (else the lane)."""
        assert lane.record.sequence is not None
        for member in self._sequences.get((lane.account, lane.record.sequence), ()):
            if member.ready():
                return member
        return lane


def _age(lane: Lane) -> tuple[float, str]:
    """How a sequence orders its lanes: the batch made first leads."""
    return (lane.record.schedule_time, lane.batch_id)
