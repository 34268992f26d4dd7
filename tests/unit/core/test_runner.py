"""The runner: one sub-query against a data source, retried, classified, its rows chunked.

The runner needs no store: its chunk writer here keeps chunks in a dict. Sleeps between
retries are recorded instead of slept, so backoff is checked without waiting for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from fakes import DAY, FilteringConnector, Hold, ScriptedConnector, spec, within

from querybatch.connectors.base import FetchRequest
from querybatch.connectors.registry import SourceRegistry
from querybatch.domain.fields import Row
from querybatch.domain.query import QuerySpec
from querybatch.domain.status import QueryStatus
from querybatch.engine.executors.runner import RetryPolicy, Runner
from querybatch.engine.executors.throttle import SourceThrottle
from querybatch.errors import (
    AccountErrors,
    ConnectorError,
    TransientConnectorError,
    UpstreamRateLimited,
)
from querybatch.store.records import Outcome, WorkItem
from querybatch.store.results import CHUNK_ROWS, decode_rows

POLICY = RetryPolicy(retries=3, backoff=1.0, rate_limit_waits=5)


class RecordingThrottle(SourceThrottle):
    """A throttle that notes each pause instead of waiting it out."""

    def __init__(self) -> None:
        super().__init__()
        self.pauses: list[tuple[str, float]] = []

    def pause(self, ds_id: str, seconds: float) -> None:
        self.pauses.append((ds_id, seconds))


class Chunks:
    """Where the runner writes full chunks: kept in memory, by result id."""

    def __init__(self) -> None:
        self.written: dict[str, dict[int, list[Row]]] = {}
        self.dropped: list[str] = []

    async def write(self, result_id: str, seq: int, rows: Sequence[Row]) -> None:
        self.written.setdefault(result_id, {})[seq] = list(rows)

    async def drop(self, result_id: str) -> None:
        self.dropped.append(result_id)
        self.written.pop(result_id, None)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every delay the code asks asyncio to sleep, returned at once instead."""
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float, result: Any = None) -> Any:
        slept.append(delay)
        return await real_sleep(0, result)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return slept


@pytest.fixture
def chunks() -> Chunks:
    return Chunks()


@pytest.fixture
def throttle() -> RecordingThrottle:
    return RecordingThrottle()


def runner(
    sources: SourceRegistry,
    chunks: Chunks,
    throttle: SourceThrottle,
    policy: RetryPolicy = POLICY,
) -> Runner:
    return Runner(sources, chunks.write, chunks.drop, policy, throttle)


def item(stored: dict[str, Any] | None = None, *, exclude_account_errors: bool = False) -> WorkItem:
    return WorkItem(
        query_id=7,
        batch_id="qrb_runner",
        account="acme",
        attempt=2,
        spec=QuerySpec.model_validate(stored or spec("acc-1")),
        fingerprint="fp",
        exclude_account_errors=exclude_account_errors,
    )


def rows_of(outcome: Outcome, chunks: Chunks) -> list[list[Any]]:
    """Every row of a successful outcome: the written chunks, then those it carries."""
    assert outcome.result is not None
    written = chunks.written.get(outcome.result.id, {})
    rows = [list(row) for seq in sorted(written) for row in written[seq]]
    for _, _, payload in outcome.result.last_chunks:
        rows += decode_rows(payload)
    return rows


# -- success --------------------------------------------------------------------------------


async def test_a_sub_query_ends_in_success_with_the_rows_of_its_source(
    sources: SourceRegistry, chunks: Chunks, throttle: RecordingThrottle
) -> None:
    outcome = await runner(sources, chunks, throttle).run(item())
    assert (outcome.query_id, outcome.batch_id, outcome.attempt) == (7, "qrb_runner", 2)
    assert (outcome.status, outcome.error, outcome.ds_id) == (QueryStatus.SUCCESS, None, "FAKE")
    assert outcome.result is not None
    assert (outcome.result.total_rows, outcome.result.total_columns) == (1, 2)
    assert rows_of(outcome, chunks) == [[DAY.isoformat(), 1]]


async def test_a_large_result_is_written_in_chunks_and_its_tail_travels_with_the_outcome(
    sources: SourceRegistry,
    connector: ScriptedConnector,
    chunks: Chunks,
    throttle: RecordingThrottle,
) -> None:
    rows: list[Row] = [(DAY.isoformat(), n) for n in range(2 * CHUNK_ROWS + 5)]
    connector.script.append(rows)
    outcome = await runner(sources, chunks, throttle).run(item())
    assert outcome.result is not None
    assert sorted(chunks.written[outcome.result.id]) == [0, 1]
    assert [(seq, n) for seq, n, _ in outcome.result.last_chunks] == [(2, 5)]
    assert outcome.result.total_rows == len(rows)
    assert rows_of(outcome, chunks) == [list(row) for row in rows]


async def test_the_filter_and_row_limit_are_applied_when_the_source_does_not_apply_them(
    sources: SourceRegistry, chunks: Chunks, throttle: RecordingThrottle
) -> None:
    stored = spec("acc-1", fields=("account", "clicks")) | {
        "accounts": ["acc-1", "acc-2", "acc-3", "acc-4"],
        "filter": "account != acc-2",
        "max_rows": 2,
    }
    outcome = await runner(sources, chunks, throttle).run(item(stored))
    assert rows_of(outcome, chunks) == [["acc-1", 1], ["acc-3", 1]]


async def test_a_filter_the_source_applies_itself_is_not_applied_again(
    chunks: Chunks, throttle: RecordingThrottle
) -> None:
    connector = FilteringConnector()
    stored = spec("acc-1", fields=("account", "clicks")) | {
        "accounts": ["acc-1", "acc-2"],
        "filter": "account != acc-2",
    }
    outcome = await runner(SourceRegistry({"FAKE": connector}), chunks, throttle).run(item(stored))
    assert connector.calls[0].filter is not None
    assert rows_of(outcome, chunks) == [["acc-1", 1], ["acc-2", 1]]


# -- retries --------------------------------------------------------------------------------


async def test_a_transient_error_is_retried_with_doubling_backoff_until_it_succeeds(
    sources: SourceRegistry,
    connector: ScriptedConnector,
    chunks: Chunks,
    throttle: RecordingThrottle,
    sleeps: list[float],
) -> None:
    connector.script.extend(TransientConnectorError("Upstream timed out") for _ in range(3))
    outcome = await runner(sources, chunks, throttle).run(item())
    assert outcome.status == QueryStatus.SUCCESS
    assert len(connector.calls) == 4
    # Each delay is backoff * 2**n, spread by +-20% so that retries do not come in waves.
    assert len(sleeps) == 3
    for n, delay in enumerate(sleeps):
        assert 0.8 * 2**n <= delay <= 1.2 * 2**n


async def test_a_transient_error_that_persists_fails_after_the_configured_retries(
    sources: SourceRegistry,
    connector: ScriptedConnector,
    chunks: Chunks,
    throttle: RecordingThrottle,
    sleeps: list[float],
) -> None:
    connector.script.extend(TransientConnectorError("Upstream timed out") for _ in range(10))
    outcome = await runner(sources, chunks, throttle, RetryPolicy(retries=2)).run(item())
    assert outcome.status == QueryStatus.FAILURE
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.message) == (
        "CONNECTOR_TRANSIENT_ERROR",
        "Upstream timed out",
    )
    assert outcome.result is None
    assert len(connector.calls) == 3
    assert len(sleeps) == 2


async def test_a_connector_error_that_is_not_transient_fails_at_once(
    sources: SourceRegistry,
    connector: ScriptedConnector,
    chunks: Chunks,
    throttle: RecordingThrottle,
    sleeps: list[float],
) -> None:
    connector.script.append(ConnectorError("Access denied", "The token was revoked"))
    outcome = await runner(sources, chunks, throttle).run(item())
    assert outcome.status == QueryStatus.FAILURE
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.message, outcome.error.description) == (
        "CONNECTOR_ERROR",
        "Access denied",
        "The token was revoked",
    )
    assert len(connector.calls) == 1
    assert sleeps == []


async def test_an_upstream_rate_limit_pauses_the_source_without_using_up_the_retries(
    sources: SourceRegistry,
    connector: ScriptedConnector,
    chunks: Chunks,
    throttle: RecordingThrottle,
    sleeps: list[float],
) -> None:
    connector.script.extend(UpstreamRateLimited("Slow down", retry_after=2.5) for _ in range(4))
    policy = RetryPolicy(retries=1, backoff=1.0, rate_limit_waits=4)
    outcome = await runner(sources, chunks, throttle, policy).run(item())
    assert outcome.status == QueryStatus.SUCCESS
    assert throttle.pauses == [("FAKE", 2.5)] * 4
    assert sleeps == []


async def test_a_source_that_keeps_limiting_the_rate_fails_the_sub_query(
    sources: SourceRegistry,
    connector: ScriptedConnector,
    chunks: Chunks,
    throttle: RecordingThrottle,
) -> None:
    connector.script.extend(UpstreamRateLimited("Slow down", retry_after=1) for _ in range(10))
    policy = RetryPolicy(retries=1, backoff=1.0, rate_limit_waits=2)
    outcome = await runner(sources, chunks, throttle, policy).run(item())
    assert outcome.error is not None
    assert (outcome.status, outcome.error.code) == (QueryStatus.FAILURE, "UPSTREAM_RATE_LIMITED")
    assert len(connector.calls) == 3


async def test_rows_written_before_a_failure_are_dropped(
    sources: SourceRegistry,
    connector: ScriptedConnector,
    chunks: Chunks,
    throttle: RecordingThrottle,
) -> None:
    class BreaksHalfway(ScriptedConnector):
        async def fetch(self, request: FetchRequest) -> AsyncIterator[Sequence[Row]]:
            yield [(DAY.isoformat(), n) for n in range(CHUNK_ROWS + 1)]
            raise ConnectorError("The connection dropped")

    source = SourceRegistry({"FAKE": BreaksHalfway()})
    outcome = await runner(source, chunks, throttle).run(item())
    assert outcome.status == QueryStatus.FAILURE
    assert len(chunks.dropped) == 1
    assert chunks.written == {}


# -- classification -------------------------------------------------------------------------


async def test_a_connector_that_raises_unexpectedly_gives_an_internal_error_outcome(
    sources: SourceRegistry,
    connector: ScriptedConnector,
    chunks: Chunks,
    throttle: RecordingThrottle,
) -> None:
    connector.script.append(KeyError("a bug in the connector"))
    outcome = await runner(sources, chunks, throttle).run(item())
    assert outcome.error is not None
    assert (outcome.status, outcome.error.code) == (QueryStatus.FAILURE, "INTERNAL_ERROR")
    assert "a bug in the connector" in (outcome.error.description or "")


async def test_a_sub_query_of_an_unknown_data_source_fails(
    sources: SourceRegistry, chunks: Chunks, throttle: RecordingThrottle
) -> None:
    outcome = await runner(sources, chunks, throttle).run(item(spec("acc-1") | {"ds_id": "GONE"}))
    assert outcome.error is not None
    assert (outcome.status, outcome.error.code) == (QueryStatus.FAILURE, "CONNECTOR_ERROR")
    assert "GONE" in outcome.error.message


async def test_failing_accounts_are_left_out_when_the_batch_excludes_account_errors(
    sources: SourceRegistry,
    connector: ScriptedConnector,
    chunks: Chunks,
    throttle: RecordingThrottle,
) -> None:
    connector.script.append(AccountErrors({"acc-2": "No access"}))
    stored = spec("acc-1", fields=("account", "clicks")) | {"accounts": ["acc-1", "acc-2"]}
    outcome = await runner(sources, chunks, throttle).run(item(stored, exclude_account_errors=True))
    assert outcome.status == QueryStatus.SUCCESS
    assert outcome.excluded_accounts == {"acc-2": "No access"}
    assert connector.calls[-1].accounts == ("acc-1",)
    assert rows_of(outcome, chunks) == [["acc-1", 1]]


async def test_failing_accounts_fail_the_sub_query_when_the_batch_does_not_exclude_them(
    sources: SourceRegistry,
    connector: ScriptedConnector,
    chunks: Chunks,
    throttle: RecordingThrottle,
) -> None:
    connector.script.append(AccountErrors({"acc-2": "No access"}))
    stored = spec("acc-1") | {"accounts": ["acc-1", "acc-2"]}
    outcome = await runner(sources, chunks, throttle).run(item(stored))
    assert outcome.error is not None
    assert (outcome.status, outcome.error.code) == (QueryStatus.FAILURE, "ACCOUNT_ERROR")
    assert outcome.error.description == "acc-2: No access"
    assert len(connector.calls) == 1


async def test_a_cancelled_run_stops_its_fetch_and_is_not_turned_into_an_outcome(
    sources: SourceRegistry,
    connector: ScriptedConnector,
    chunks: Chunks,
    throttle: RecordingThrottle,
) -> None:
    hold = Hold()
    connector.script.append(hold)
    run = asyncio.create_task(runner(sources, chunks, throttle).run(item()))
    await within(hold.entered.wait())
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert hold.cancelled
