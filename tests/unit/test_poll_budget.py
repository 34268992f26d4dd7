"""The polls' share of the event loop: a token bucket of loop time, spent only while the
engine works."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from querybatch.api.poll_budget import REQUEST_SECONDS, PollBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def budget(share: float, *, at_work: bool = True, burst: float = 0.02) -> tuple[PollBudget, Clock]:
    clock = Clock()
    return PollBudget(share, lambda: at_work, burst=burst, clock=clock), clock


def test_a_full_bucket_answers_at_once_and_debt_waits_for_its_share() -> None:
    polls, clock = budget(0.1)
    assert polls.debt_wait() == 0
    polls.charge(0.02 - REQUEST_SECONDS)  # the burst, spent (the HTTP server's part with it)
    assert polls.debt_wait() == 0
    polls.charge(0.01 - REQUEST_SECONDS)  # 10 ms in debt: at 10% of the loop, 100 ms pays it
    assert polls.debt_wait() == pytest.approx(0.1)
    clock.now += 0.06
    assert polls.debt_wait() == pytest.approx(0.04)
    clock.now += 0.04
    assert polls.debt_wait() == 0


def test_the_bucket_never_holds_more_than_its_burst() -> None:
    polls, clock = budget(0.5, burst=0.02)
    clock.now += 3600  # an idle hour earns no more than one burst
    polls.charge(0.03 - REQUEST_SECONDS)
    assert polls.debt_wait() == pytest.approx(0.02)


def test_polls_are_free_while_the_engine_has_nothing_to_do() -> None:
    polls, _ = budget(0.1, at_work=False)
    polls.charge(5.0)
    assert polls.debt_wait() == 0
    assert polls.balance() == pytest.approx(0.02)  # the charge was not kept either


def test_a_share_of_one_never_waits() -> None:
    polls, _ = budget(1.0)
    polls.charge(10.0)
    assert polls.unbounded
    assert polls.debt_wait() == 0


@pytest.mark.parametrize("share", [0.0, -0.1, 1.5])
def test_a_share_outside_zero_to_one_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="share"):
        PollBudget(share, lambda: True)


@given(
    share=st.floats(0.01, 1.0),
    costs=st.lists(st.floats(0.0, 0.05), min_size=1, max_size=200),
)
def test_polls_answered_back_to_back_never_exceed_their_share_plus_one_burst(
    share: float, costs: list[float]
) -> None:
    """Serve polls as the lane does (wait out the debt, then spend): whatever they cost,
    the loop time they took is at most share * wall time + burst + the last poll's cost."""
    polls, clock = budget(share, burst=0.02)
    start, spent = clock.now, 0.0
    for cost in costs:
        clock.now += polls.debt_wait()
        clock.now += cost + REQUEST_SECONDS  # the poll takes the loop for this long
        spent += cost + REQUEST_SECONDS
        polls.charge(cost)
    assert spent <= share * (clock.now - start) + 0.02 + max(costs) + REQUEST_SECONDS + 1e-9


async def test_wait_turn_sleeps_the_debt_away_on_the_real_clock() -> None:
    polls = PollBudget(0.5, lambda: True, burst=0.0)
    polls.charge(0.05 - REQUEST_SECONDS)  # 100 ms to pay at half the loop
    started = time.perf_counter()
    await asyncio.wait_for(polls.wait_turn(), 5)
    assert time.perf_counter() - started >= 0.09
    assert polls.debt_wait() == 0
