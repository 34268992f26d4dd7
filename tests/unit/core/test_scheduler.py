"""The scheduler: fair turns, concurrency limits, leases, cancel and timeout, tick by tick.

The scheduler runs against the real store with a fake executor and a hand-moved clock; each
test calls :meth:`Scheduler.tick` itself and :meth:`Scheduler.settle` to let claims land.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest
from fakes import (
    BrokerExecutor,
    FakeClock,
    FakeExecutor,
    PrefetchingExecutor,
    batch_of,
    claim,
    create_batch,
    outcome,
    queries_of,
    record,
    stop_batch,
)

from querybatch.domain.status import BatchStatus, QueryStatus
from querybatch.engine.leader import Leadership
from querybatch.engine.scheduler import BITE_WAIT_SECONDS, Scheduler, SchedulerSettings
from querybatch.store.records import WorkItem
from querybatch.store.store import Store

LEASE = 30.0


@dataclass
class Rig:
    """A scheduler, its fake executor, and the batches they reported as stopped."""

    store: Store
    clock: FakeClock
    executor: FakeExecutor
    scheduler: Scheduler
    stopped: list[str] = field(default_factory=list)

    async def tick(self) -> None:
        """One scheduler round, and whatever it claimed handed out."""
        await self.scheduler.tick()
        await self.scheduler.settle()

    async def finish(
        self, items: list[WorkItem], status: QueryStatus = QueryStatus.SUCCESS
    ) -> None:
        """These runs end; the slots they free are filled."""
        await self.executor.finish(items, status)
        await self.scheduler.settle()

    def accounts(self) -> list[str]:
        """The tenants of the sub-queries handed out, in order."""
        return [item.account for item in self.executor.submitted]


async def rig(
    store: Store,
    clock: FakeClock,
    *,
    slots: int = 100,
    account_concurrency: int = 100,
    max_attempts: int = 4,
    prefetch: bool = False,
    leadership: Leadership | None = None,
    executor_class: type[FakeExecutor] | None = None,
    claim_lease: float = LEASE,
) -> Rig:
    """A scheduler on the test's store and clock, handing out to a fake executor."""
    chosen = executor_class or (PrefetchingExecutor if prefetch else FakeExecutor)
    executor = chosen(store, clock, slots)
    stopped: list[str] = []
    scheduler = Scheduler(
        store,
        executor,
        SchedulerSettings(
            account_concurrency=account_concurrency,
            lease_seconds=LEASE,
            claim_lease_seconds=claim_lease,
            max_attempts=max_attempts,
        ),
        stopped.extend,
        leadership,
        clock=clock,
    )
    # As in the engine, batches stopped by a tick or by runs' ends are heard in one place.
    await executor.start(scheduler.on_done, stopped.extend)
    return Rig(store, clock, executor, scheduler, stopped)


@pytest.fixture
async def r(store: Store, clock: FakeClock) -> Rig:
    """A scheduler with a roomy executor and generous limits."""
    return await rig(store, clock)


async def buffered(r: Rig, slots: int) -> None:
    """Let every lane claim its sub-queries while no slot is free, then open ``slots``."""
    r.executor.slots = 0
    await r.tick()
    assert r.executor.submitted == []
    r.executor.slots = slots
    await r.tick()


# -- fairness -------------------------------------------------------------------------------


async def test_tenants_take_turns_for_scarce_slots(store: Store, clock: FakeClock) -> None:
    r = await rig(store, clock)
    for tenant in ("a", "b", "c"):
        await create_batch(store, f"qrb_{tenant}", account=tenant, size=50, now=clock())
    await buffered(r, slots=3)
    for _ in range(3):
        await r.finish([r.executor.running()[0]])
    assert Counter(r.accounts()) == {"a": 2, "b": 2, "c": 2}


async def test_a_huge_batch_does_not_starve_a_small_batch_of_another_tenant(
    store: Store, clock: FakeClock
) -> None:
    r = await rig(store, clock)
    await create_batch(
        store, "qrb_huge", account="big", size=1000, query_concurrency=50, now=clock()
    )
    await create_batch(store, "qrb_tiny", account="small", size=2, query_concurrency=2, now=clock())
    await buffered(r, slots=2)
    await r.finish(r.executor.running_of("qrb_huge")[:1])
    # The huge batch was first in line, yet the slot its run freed went to the small one.
    assert r.accounts() == ["big", "small", "small"]


async def test_the_batches_of_one_tenant_take_turns(store: Store, clock: FakeClock) -> None:
    r = await rig(store, clock)
    await create_batch(store, "qrb_first", size=500, query_concurrency=20, now=clock())
    await create_batch(store, "qrb_second", size=500, query_concurrency=20, now=clock())
    await buffered(r, slots=2)
    for _ in range(4):
        await r.finish([r.executor.running()[0]])
    assert Counter(i.batch_id for i in r.executor.submitted) == {"qrb_first": 3, "qrb_second": 3}


async def test_the_batches_of_a_sequence_run_one_after_the_other(
    store: Store, clock: FakeClock
) -> None:
    r = await rig(store, clock)
    await create_batch(store, "qrb_first", size=4, query_concurrency=20, sequence="s", now=clock())
    clock.advance(1)
    await create_batch(store, "qrb_next", size=4, query_concurrency=20, sequence="s", now=clock())
    await buffered(r, slots=2)
    while running := r.executor.running():
        await r.finish(running[:1])
    # Taking turns, the two would have ended together; in a sequence the next one waits.
    assert [i.batch_id for i in r.executor.submitted] == ["qrb_first"] * 4 + ["qrb_next"] * 4


async def test_the_batch_made_first_leads_its_sequence_whatever_order_the_lanes_came_in(
    store: Store, clock: FakeClock
) -> None:
    r = await rig(store, clock)
    made = clock()
    await create_batch(store, "qrb_b", size=3, query_concurrency=9, sequence="s", now=made + 1)
    await create_batch(store, "qrb_a", size=3, query_concurrency=9, sequence="s", now=made)
    clock.advance(1)
    await buffered(r, slots=1)
    while running := r.executor.running():
        await r.finish(running)
    assert [i.batch_id for i in r.executor.submitted] == ["qrb_a"] * 3 + ["qrb_b"] * 3


async def test_the_next_batch_of_a_sequence_takes_the_slots_the_first_cannot_fill(
    store: Store, clock: FakeClock
) -> None:
    r = await rig(store, clock)
    await create_batch(store, "qrb_first", size=9, query_concurrency=2, sequence="s", now=clock())
    clock.advance(1)
    await create_batch(store, "qrb_next", size=9, query_concurrency=3, sequence="s", now=clock())
    await buffered(r, slots=4)
    assert Counter(i.batch_id for i in r.executor.running()) == {"qrb_first": 2, "qrb_next": 2}


async def test_a_sequence_takes_turns_with_the_tenants_other_batches(
    store: Store, clock: FakeClock
) -> None:
    r = await rig(store, clock)
    for name in ("qrb_s1", "qrb_s2"):
        await create_batch(store, name, size=50, query_concurrency=20, sequence="s", now=clock())
        clock.advance(1)
    await create_batch(store, "qrb_own", size=50, query_concurrency=20, now=clock())
    await buffered(r, slots=3)
    for _ in range(6):
        await r.finish([r.executor.running()[0]])
    submitted = Counter(i.batch_id for i in r.executor.submitted)
    # Each of its lanes' turns goes to the sequence's first batch: the other batch keeps
    # its own turn, as it would beside two batches taking turns.
    assert submitted == {"qrb_s1": 6, "qrb_own": 3}


async def test_sequences_of_different_names_or_tenants_do_not_wait_for_each_other(
    store: Store, clock: FakeClock
) -> None:
    r = await rig(store, clock)
    await create_batch(store, "qrb_x", size=9, query_concurrency=9, sequence="x", now=clock())
    await create_batch(store, "qrb_y", size=9, query_concurrency=9, sequence="y", now=clock())
    await create_batch(
        store, "qrb_z", account="other", size=9, query_concurrency=9, sequence="x", now=clock()
    )
    await buffered(r, slots=6)
    # The tenants take turns (three slots each), then each tenant's lanes take theirs.
    assert Counter(i.batch_id for i in r.executor.running()) == {
        "qrb_x": 2,
        "qrb_y": 1,
        "qrb_z": 3,
    }


# -- limits ---------------------------------------------------------------------------------


async def test_a_tenant_never_runs_more_sub_queries_than_its_account_concurrency(
    store: Store, clock: FakeClock
) -> None:
    r = await rig(store, clock, account_concurrency=3)
    await create_batch(store, "qrb_one", size=10, query_concurrency=5, now=clock())
    await create_batch(store, "qrb_two", size=10, query_concurrency=5, now=clock())
    await r.tick()
    assert len(r.executor.running()) == 3
    await r.finish(r.executor.running()[:2])
    await r.tick()
    assert len(r.executor.running()) == 3
    assert len(r.executor.submitted) == 5


async def test_one_tenant_at_its_account_concurrency_does_not_hold_up_another(
    store: Store, clock: FakeClock
) -> None:
    r = await rig(store, clock, account_concurrency=2)
    await create_batch(
        store, "qrb_busy", account="busy", size=10, query_concurrency=10, now=clock()
    )
    await create_batch(store, "qrb_calm", account="calm", size=2, query_concurrency=2, now=clock())
    await r.tick()
    assert Counter(r.accounts()) == {"busy": 2, "calm": 2}


async def test_a_batch_never_runs_more_sub_queries_than_its_query_concurrency(
    store: Store, clock: FakeClock
) -> None:
    r = await rig(store, clock, prefetch=True)
    await create_batch(store, "qrb_narrow", size=10, query_concurrency=2, now=clock())
    await r.tick()
    assert len(r.executor.running()) == 2
    for _ in range(3):
        await r.finish(r.executor.running()[:1])
        await r.tick()
        assert len(r.executor.running()) == 2
    assert len(r.executor.submitted) == 5


async def test_the_executor_is_never_handed_more_than_its_free_slots(
    store: Store, clock: FakeClock
) -> None:
    r = await rig(store, clock, slots=4)
    await create_batch(store, "qrb_one", account="a", size=10, query_concurrency=10, now=clock())
    await create_batch(store, "qrb_two", account="b", size=10, query_concurrency=10, now=clock())
    await r.tick()
    await r.tick()
    assert len(r.executor.submitted) == 4
    await r.finish(r.executor.running()[:1])
    assert len(r.executor.submitted) == 5


async def test_sub_queries_of_a_batch_are_handed_out_in_their_order(
    store: Store, clock: FakeClock
) -> None:
    r = await rig(store, clock)
    await create_batch(store, "qrb_ordered", size=6, query_concurrency=2, now=clock())
    for _ in range(3):
        await r.tick()
        await r.finish(r.executor.running())
    queries = await queries_of(store, "qrb_ordered")
    assert [i.query_id for i in r.executor.submitted] == [q.id for q in queries]


async def test_a_batch_scheduled_for_later_starts_when_its_time_comes(
    r: Rig, store: Store, clock: FakeClock
) -> None:
    await create_batch(store, "qrb_later", size=1, schedule_time=clock() + 600, now=clock())
    await r.tick()
    clock.advance(599)
    await r.tick()
    assert r.executor.submitted == []
    clock.advance(2)
    await r.tick()
    assert len(r.executor.submitted) == 1


# -- leases and lost runners ----------------------------------------------------------------


@pytest.mark.parametrize("began", [False, True], ids=["claimed", "running"])
async def test_a_sub_query_whose_runner_was_lost_runs_again_once_its_lease_lapses(
    r: Rig, store: Store, clock: FakeClock, began: bool
) -> None:
    await create_batch(store, "qrb_lost", size=1, now=clock())
    await r.tick()
    [item] = r.executor.submitted
    if began:
        await r.executor.begin([item])
    r.executor.lose([item])
    clock.advance(LEASE * 2 / 3)  # the store is asked for lapsed leases: none yet
    await r.tick()
    assert len(r.executor.submitted) == 1
    clock.advance(LEASE / 2 + 1)
    await r.tick()
    first, again = r.executor.submitted
    assert (again.query_id, again.attempt) == (first.query_id, first.attempt + 1)
    [query] = await queries_of(store, "qrb_lost")
    assert (query.status, query.attempt) == (QueryStatus.QUEUED, 2)


async def test_a_run_still_going_keeps_its_lease_while_the_scheduler_renews_it(
    r: Rig, store: Store, clock: FakeClock
) -> None:
    await create_batch(store, "qrb_slow", size=1, now=clock())
    await r.tick()
    [item] = r.executor.submitted
    await r.executor.begin([item])
    for _ in range(10):  # five leases long, one tick every half lease
        clock.advance(LEASE / 2)
        await r.tick()
    [query] = await queries_of(store, "qrb_slow")
    assert (query.status, query.attempt) == (QueryStatus.RUNNING, 1)
    assert r.executor.submitted == [item]


async def test_a_claimed_sub_query_waiting_for_a_free_slot_keeps_its_lease(
    r: Rig, store: Store, clock: FakeClock
) -> None:
    await create_batch(store, "qrb_waiting", size=2, now=clock())
    r.executor.slots = 0
    for _ in range(10):  # five leases long, one tick every half lease
        await r.tick()
        clock.advance(LEASE / 2)
    assert {(q.status, q.attempt) for q in await queries_of(store, "qrb_waiting")} == {
        (QueryStatus.QUEUED, 1)
    }
    r.executor.slots = 2
    await r.tick()
    assert [i.attempt for i in r.executor.submitted] == [1, 1]


async def test_a_sub_query_handed_to_a_broker_keeps_the_claim_lease_however_long_it_waited(
    store: Store, clock: FakeClock
) -> None:
    # Nobody renews a sub-query waiting in a broker's queue, so the leader's renewals while it
    # waited for a slot must not shorten its claim lease to a running sub-query's.
    r = await rig(store, clock, executor_class=BrokerExecutor, claim_lease=4 * LEASE)
    await create_batch(store, "qrb_brokered", size=1, now=clock())
    r.executor.slots = 0
    for _ in range(4):  # two leases long, renewed on the way
        await r.tick()
        clock.advance(LEASE / 2)
    r.executor.slots = 1
    await r.tick()
    [item] = r.executor.submitted
    for _ in range(6):  # three leases long in the queue, within the claim lease
        clock.advance(LEASE / 2)
        await r.tick()
    [query] = await queries_of(store, "qrb_brokered")
    assert (query.status, query.attempt) == (QueryStatus.QUEUED, 1)
    assert r.executor.submitted == [item]


async def test_runs_that_hang_in_half_a_lanes_slots_do_not_stop_the_rest_of_the_lane(
    store: Store, clock: FakeClock
) -> None:
    # A stopped worker's runs hold their slots until their leases lapse; the lane's other
    # slots keep working meanwhile, in bites smaller than half the concurrency if need be.
    r = await rig(store, clock, executor_class=BrokerExecutor)
    await create_batch(store, "qrb_stuck", size=40, query_concurrency=10, now=clock())
    began = clock()
    await r.tick()
    hanging, alive = r.executor.running_of("qrb_stuck")[:6], r.executor.running_of("qrb_stuck")[6:]
    for _ in range(5):
        await r.finish(alive)
        await r.tick()
        alive = [i for i in r.executor.running_of("qrb_stuck") if i not in hanging]
        assert len(alive) in (0, 4)
        clock.advance(BITE_WAIT_SECONDS)
        await r.tick()
        alive = [i for i in r.executor.running_of("qrb_stuck") if i not in hanging]
        assert len(alive) == 4  # the free slots are filled within a second, leases far off
    assert clock() - began < LEASE
    assert len(r.executor.submitted) == 10 + 5 * 4


async def test_a_sub_query_lost_max_attempts_times_ends_as_abandoned(
    store: Store, clock: FakeClock
) -> None:
    r = await rig(store, clock, max_attempts=3)
    await create_batch(store, "qrb_poison", size=1, now=clock())
    await r.tick()
    for _ in range(3):
        r.executor.lose(r.executor.running())
        clock.advance(LEASE + 1)
        await r.tick()
    assert [i.attempt for i in r.executor.submitted] == [1, 2, 3]
    [query] = await queries_of(store, "qrb_poison")
    assert query.status == QueryStatus.FAILURE
    assert query.error is not None
    assert (query.error.code, query.error.message) == (
        "QUERY_ABANDONED",
        "Abandoned after 3 attempts",
    )
    assert (await batch_of(store, "qrb_poison")).status == BatchStatus.STOPPED
    clock.advance(LEASE + 1)
    await r.tick()
    assert len(r.executor.submitted) == 3


async def test_nothing_is_taken_back_or_abandoned_while_the_broker_is_down(
    store: Store, clock: FakeClock
) -> None:
    # Handed to a broker that is gone, nothing can start: lapsing leases must not use up
    # attempts until the sub-query is abandoned without ever having run.
    class BrokerDown(BrokerExecutor):
        up = False

        async def healthy(self) -> bool:
            return self.up

    r = await rig(store, clock, max_attempts=2, executor_class=BrokerDown)
    await create_batch(store, "qrb_outage", size=1, now=clock())
    await r.tick()
    for _ in range(5):
        clock.advance(LEASE + 1)
        await r.tick()
    [query] = await queries_of(store, "qrb_outage")
    assert (query.status, query.attempt) == (QueryStatus.QUEUED, 1)
    assert isinstance(r.executor, BrokerDown)
    r.executor.up = True  # back: what lapsed meanwhile is taken back as usual
    r.executor.lose(r.executor.running_of("qrb_outage"))
    clock.advance(LEASE + 1)
    await r.tick()
    [query] = await queries_of(store, "qrb_outage")
    assert query.attempt == 2


async def test_a_new_leader_counts_what_the_old_one_handed_out_against_the_limits(
    store: Store, clock: FakeClock
) -> None:
    class TakingOver(Leadership):
        taken = False

        async def check(self) -> tuple[bool, bool]:
            became, self.taken = not self.taken, True
            return True, became

    await create_batch(store, "qrb_adopted", size=5, query_concurrency=2, now=clock())
    handed_out = await claim(store, "qrb_adopted", 2, clock())
    r = await rig(store, clock, leadership=TakingOver(store.db))
    await r.tick()
    assert [i.query_id for i in r.executor.adopted] == [i.query_id for i in handed_out]
    assert r.executor.submitted == []
    await r.finish(handed_out[:1])
    assert len(r.executor.submitted) == 1


async def test_a_node_that_does_not_lead_hands_out_nothing(store: Store, clock: FakeClock) -> None:
    class Following(Leadership):
        async def check(self) -> tuple[bool, bool]:
            return False, False

    r = await rig(store, clock, leadership=Following(store.db))
    await create_batch(store, "qrb_elsewhere", size=3, now=clock())
    await r.tick()
    assert r.executor.submitted == []
    assert [q.status for q in await queries_of(store, "qrb_elsewhere")] == [
        QueryStatus.SCHEDULED
    ] * 3


async def test_a_leader_that_steps_down_gives_back_what_it_claimed_and_never_handed_out(
    store: Store, clock: FakeClock
) -> None:
    # The next leader cannot know of sub-queries claimed ahead here; given back, they are
    # claimed again at once rather than when their claim leases lapse.
    class SteppingDown(Leadership):
        leads = True

        async def check(self) -> tuple[bool, bool]:
            return self.leads, False

    leadership = SteppingDown(store.db)
    r = await rig(store, clock, leadership=leadership, prefetch=True, slots=2)
    await create_batch(store, "qrb_handed", size=6, query_concurrency=2, now=clock())
    await r.tick()
    handed_out = r.executor.running_of("qrb_handed")
    assert len(handed_out) == 2
    leadership.leads = False
    await r.tick()
    queries = await queries_of(store, "qrb_handed")
    # Two handed out, two claimed ahead and given back (their attempt stays used), two
    # never claimed.
    assert [(q.status, q.attempt) for q in queries] == [(QueryStatus.QUEUED, 1)] * 2 + [
        (QueryStatus.SCHEDULED, 1)
    ] * 2 + [(QueryStatus.SCHEDULED, 0)] * 2
    batch = await batch_of(store, "qrb_handed")
    assert (batch.counts.queued, batch.counts.running) == (6, 0)
    # Claimed again by whoever leads next, under a new claim.
    again = await claim(store, "qrb_handed", 4, clock())
    assert [(i.query_id, i.attempt) for i in again] == [(q.id, q.attempt + 1) for q in queries[2:]]


# -- cancel and timeout ---------------------------------------------------------------------


async def cancel(r: Rig, batch_id: str) -> None:
    """Cancel a batch as the engine does: stop it in the store, then let its runs go."""
    in_flight = await stop_batch(r.store, batch_id, r.clock(), cancelled=True)
    await r.scheduler.stop_lane(batch_id, in_flight)


async def test_cancelling_a_batch_lets_its_running_sub_queries_go_and_keeps_finished_results(
    store: Store, clock: FakeClock
) -> None:
    r = await rig(store, clock, prefetch=True)
    await create_batch(store, "qrb_cancel", size=6, query_concurrency=2, now=clock())
    await r.tick()
    await r.finish(r.executor.running()[:1])
    running = r.executor.running()
    await cancel(r, "qrb_cancel")
    assert {i.query_id for i in running} <= set(r.executor.cancelled)
    assert r.executor.running() == []
    queries = await queries_of(store, "qrb_cancel")
    assert queries[0].status == QueryStatus.SUCCESS
    assert queries[0].result is not None
    assert [q.status for q in queries[1:]] == [QueryStatus.STOPPED] * 5
    assert {q.error.message for q in queries[1:] if q.error} == {"Cancelled"}
    batch = await batch_of(store, "qrb_cancel")
    assert batch.status == BatchStatus.STOPPED
    assert batch.cancel_time == clock()


async def test_nothing_of_a_cancelled_batch_starts_afterwards(
    store: Store, clock: FakeClock
) -> None:
    r = await rig(store, clock, prefetch=True)
    await create_batch(store, "qrb_cancel", size=20, query_concurrency=4, now=clock())
    await r.tick()
    handed_out = len(r.executor.submitted)
    await cancel(r, "qrb_cancel")
    await r.tick()
    clock.advance(LEASE + 1)
    await r.tick()
    assert len(r.executor.submitted) == handed_out
    assert r.executor.running() == []


async def test_a_late_outcome_of_a_cancelled_run_changes_nothing(
    r: Rig, store: Store, clock: FakeClock
) -> None:
    await create_batch(store, "qrb_cancel", size=2, query_concurrency=2, now=clock())
    await r.tick()
    items = r.executor.running()
    await r.executor.begin(items)
    await cancel(r, "qrb_cancel")
    _, applied, _ = await record(
        store, (), [outcome(i, QueryStatus.SUCCESS, clock()) for i in items], now=clock()
    )
    assert applied == [False, False]
    assert {q.status for q in await queries_of(store, "qrb_cancel")} == {QueryStatus.STOPPED}


async def test_a_batch_stopped_by_another_node_is_let_go_at_the_next_tick(
    r: Rig, store: Store, clock: FakeClock
) -> None:
    await create_batch(store, "qrb_remote", size=5, query_concurrency=2, now=clock())
    await r.tick()
    running = r.executor.running()
    await stop_batch(store, "qrb_remote", clock(), cancelled=True)
    await r.tick()
    assert sorted(r.executor.cancelled) == sorted(i.query_id for i in running)
    assert len(r.executor.submitted) == 2


async def test_a_batch_still_running_at_its_timeout_is_stopped(
    r: Rig, store: Store, clock: FakeClock
) -> None:
    await create_batch(
        store, "qrb_timeout", size=4, query_concurrency=2, timeout_seconds=60, now=clock()
    )
    await r.tick()
    await r.finish(r.executor.running()[:1])
    running = r.executor.running()
    clock.advance(61)
    await r.tick()
    assert r.stopped == ["qrb_timeout"]
    assert sorted(r.executor.cancelled) == sorted(i.query_id for i in running)
    batch = await batch_of(store, "qrb_timeout")
    assert (batch.status, batch.end_time, batch.cancel_time) == (
        BatchStatus.STOPPED,
        clock(),
        None,
    )
    queries = await queries_of(store, "qrb_timeout")
    assert queries[0].status == QueryStatus.SUCCESS
    assert [(q.status, q.error and q.error.message) for q in queries[1:]] == [
        (QueryStatus.STOPPED, "Timed out")
    ] * 3
    assert len(r.executor.submitted) == 3


async def test_a_batch_is_not_stopped_before_its_timeout(
    r: Rig, store: Store, clock: FakeClock
) -> None:
    await create_batch(
        store, "qrb_timeout", size=4, query_concurrency=2, timeout_seconds=60, now=clock()
    )
    await r.tick()
    clock.advance(59)
    await r.tick()
    assert r.stopped == []
    assert (await batch_of(store, "qrb_timeout")).status == BatchStatus.RUNNING


async def test_a_batch_has_a_lane_from_when_it_is_due_until_it_ends(
    store: Store, clock: FakeClock
) -> None:
    r = await rig(store, clock)
    await create_batch(store, "qrb_later", size=2, now=clock(), schedule_time=clock() + 3600)
    await r.tick()
    assert not r.scheduler.lanes  # nothing due: expiry may go at full speed
    await create_batch(store, "qrb_now", size=2, now=clock())
    await r.tick()
    assert list(r.scheduler.lanes) == ["qrb_now"]
    await r.finish(r.executor.running())
    clock.advance(1)
    await r.tick()
    assert not r.scheduler.lanes


async def test_a_batch_stopped_while_the_lanes_are_read_does_not_come_back(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = await rig(store, clock)
    await create_batch(store, "qrb_cancelled", size=3, now=clock())
    await r.tick()
    assert list(r.scheduler.lanes) == ["qrb_cancelled"]
    read = store.runs.active_lanes

    async def read_then_cancel() -> object:
        records = await read()  # the batch is not stopped yet when this is read
        in_flight = await stop_batch(store, "qrb_cancelled", clock(), cancelled=True)
        await r.scheduler.stop_lane("qrb_cancelled", in_flight)
        return records

    monkeypatch.setattr(store.runs, "active_lanes", read_then_cancel)
    clock.advance(1)
    await r.tick()
    assert not r.scheduler.lanes
    monkeypatch.setattr(store.runs, "active_lanes", read)
    clock.advance(1)
    await r.tick()
    assert not r.scheduler.lanes and not r.scheduler._stopped_at
