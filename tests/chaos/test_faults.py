"""Each fault of issue 16 once, mid-batch, on a cluster of two API nodes and two workers.

A fault may cost the batch at most the lease of the sub-queries it touched plus 10 s beyond
its own duration, and every sub-query's result is stored exactly once. The batch (600
sub-queries of 300 ms, 40 at a time) is a fifth done when the fault starts.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cluster import LEASE_SECONDS, QUEUED_LEASE_SECONDS, Cluster
from workload import SUB_QUERIES, Watch, check_rows, post_batch, stored_once

from support import kill_worker

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

# Every fault here can touch sub-queries still waiting in the broker (or held, not yet
# started, by a worker), so the longer of the two leases is the one they may cost.
LEASE = max(LEASE_SECONDS, QUEUED_LEASE_SECONDS)
SLACK = 10.0  # seconds beyond the lease, as the issue allows
SETTLE = 3.0  # seconds after the fault ends before its results are checked
GRACE = 30.0  # how long past its bound a batch is followed, to measure how late it ends
FROZEN = LEASE_SECONDS + 5  # a frozen process sleeps past its sub-queries' lease
LOG_SIGNS = r"worker_restarted|Traceback|ERROR|CRITICAL|Unrecoverable|leader_changed"


def _since(began: float) -> float:
    return time.monotonic() - began


def _redis_down(seconds: float) -> Callable[[Cluster], float]:
    def fault(cluster: Cluster) -> float:
        began = time.monotonic()
        cluster.redis.stop()  # kill -9: the queued messages go with it
        time.sleep(seconds)
        cluster.redis.start()
        return _since(began)

    return fault


def _database_refused(seconds: float) -> Callable[[Cluster], float]:
    def fault(cluster: Cluster) -> float:
        began = time.monotonic()
        cluster.proxy.refuse()
        time.sleep(seconds)
        cluster.proxy.accept()
        return _since(began)

    return fault


def _database_connections_terminated(cluster: Cluster) -> float:
    began = time.monotonic()
    while _since(began) < 10:
        cluster.proxy.terminate_all()
        time.sleep(0.5)
    return _since(began)


def _kill_a_worker(cluster: Cluster) -> float:
    kill_worker(cluster.workers[0])
    return 0.0


def _kill_the_leading_node(cluster: Cluster) -> float:
    cluster.kill_node(cluster.leader())
    return 0.0


def _kill_the_other_node(cluster: Cluster) -> float:
    cluster.kill_node(cluster.follower())
    return 0.0


def _kill_all_and_restart(cluster: Cluster) -> float:
    """Both nodes and both workers die; 5 s later they start again on the same data (the
    outage lasts until the nodes answer again)."""
    began = time.monotonic()
    cluster.kill_all()
    time.sleep(5)
    cluster.start_processes()
    return _since(began)


def _freeze_a_worker(cluster: Cluster) -> float:
    group = cluster.workers[0].pid
    began = time.monotonic()
    os.killpg(group, signal.SIGSTOP)
    time.sleep(FROZEN)
    os.killpg(group, signal.SIGCONT)
    return _since(began)


def _freeze_the_leading_node(cluster: Cluster) -> float:
    leader = cluster.leader().process
    assert leader is not None
    began = time.monotonic()
    leader.send_signal(signal.SIGSTOP)
    time.sleep(FROZEN)
    leader.send_signal(signal.SIGCONT)
    return _since(began)


@dataclass(frozen=True)
class Fault:
    """A fault, as a function that injects it, ends it, and says how long it lasted."""

    name: str
    inject: Callable[[Cluster], float]


FAULTS = [
    Fault("redis_restart", _redis_down(5)),
    Fault("redis_down_60s", _redis_down(60)),
    Fault("db_refused_10s", _database_refused(10)),
    Fault("db_refused_60s", _database_refused(60)),
    Fault("db_terminated_every_0_5s_for_10s", _database_connections_terminated),
    Fault("kill_worker", _kill_a_worker),
    Fault("kill_leader_node", _kill_the_leading_node),
    Fault("kill_follower_node", _kill_the_other_node),
    Fault("kill_all_and_restart", _kill_all_and_restart),
    Fault("sigstop_worker", _freeze_a_worker),
    Fault("sigstop_leader", _freeze_the_leading_node),
]


def test_an_unfaulted_batch_stores_every_result_once_and_sets_the_baseline(
    baseline: float,
) -> None:
    assert 0 < baseline < 60


@pytest.mark.parametrize("fault", FAULTS, ids=[fault.name for fault in FAULTS])
def test_a_fault_costs_at_most_the_lease_plus_10_s_and_every_result_is_stored_once(
    cluster: Cluster, baseline: float, fault: Fault, record: Callable[..., None]
) -> None:
    batch_id = post_batch(cluster.nodes[0])
    watch = Watch(cluster, batch_id)
    watch.until_succeeded(SUB_QUERIES // 5)
    outage = fault.inject(cluster)
    ended = watch.elapsed()
    bound = baseline + outage + LEASE + SLACK
    stopped = watch.until_stopped(deadline=bound + GRACE)
    makespan = watch.makespan() if stopped else None
    # A process the fault froze may still try to record a run it had begun: look once it
    # has had the time to.
    time.sleep(max(0.0, ended + SETTLE - watch.elapsed()))
    problems = [] if stopped else [f"not stopped {watch.elapsed():.0f} s after the POST"]
    if stopped:
        problems += stored_once(cluster, batch_id) or check_rows(
            cluster.live_node(), batch_id, every=6
        )
    if makespan is not None and makespan > bound:
        problems.append(f"{makespan:.1f} s > bound {bound:.1f} s")
    stall = watch.longest_stall(since=ended)
    record(
        fault=fault.name,
        baseline=round(baseline, 2),
        outage=round(outage, 2),
        makespan=None if makespan is None else round(makespan, 2),
        bound=round(bound, 2),
        recovery=None if makespan is None else round(makespan - baseline - outage, 2),
        stall=round(stall, 2),
        succeeded=watch.succeeded,
        attempts=cluster.sql("SELECT max(attempt) FROM queries WHERE batch_id = %(b)s", b=batch_id)[
            0
        ][0],
        database_connections=cluster.proxy.accepted,
        processes=cluster.processes(),
        problems=problems,
    )
    assert not problems, (
        f"{fault.name}: {problems}; longest stall after the fault {stall:.1f} s; "
        f"{watch.succeeded}/{SUB_QUERIES} succeeded; {cluster.processes()}\n"
        + "\n".join(cluster.log_lines(LOG_SIGNS)[-40:])
    )
