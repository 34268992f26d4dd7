"""Transfer runs as a team reads them: a transfer's runs, and one run with its queries.

Runs are made and moved on by the transfer runner (``engine/transfer_runner.py``); this
service only reads them. Team-scoped paths name the caller's own team; a run or transfer
of another tenant is NotFound.
"""

from __future__ import annotations

from dataclasses import dataclass

from querybatch.engine.batch_storing import BatchStoring
from querybatch.engine.catalog import check_team
from querybatch.engine.service import Caller
from querybatch.engine.transfers import Transfers
from querybatch.errors import NotFound
from querybatch.store.store import Store
from querybatch.store.transfer_runs import RunsQuery, TransferRunRecord

__all__ = ["QueryDetail", "RunDetail", "RunsQuery", "TransferRunRecord", "TransferRuns"]

MAX_DETAILS = 1000
"""The most queries a run's detail lists (a transfer reads at most 1,000 accounts)."""


@dataclass(frozen=True, slots=True)
class QueryDetail:
    """One query of a run: its status, rows, seconds and error."""

    status: str
    rows: int
    duration: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class RunDetail:
    """A run and its queries (none once its batch has expired)."""

    run: TransferRunRecord
    queries: tuple[QueryDetail, ...]


class TransferRuns:
    """The one door to reading transfer runs (``/teams/{team_id}/transfer_runs``)."""

    def __init__(self, store: Store, transfers: Transfers, batch_storing: BatchStoring) -> None:
        self.store = store
        self.transfers = transfers
        self.batch_storing = batch_storing  # a run's batch may still be stored behind

    async def list_runs(
        self, caller: Caller, team_id: int, transfer_id: int, query: RunsQuery
    ) -> list[TransferRunRecord]:
        """A page of the transfer's runs whose data date is in the query's range."""
        check_team(caller, team_id)
        await self.transfers.get(caller, team_id, transfer_id)  # NotFound for another's
        return await self.store.transfer_runs.list_for(caller.account, transfer_id, query)

    async def get(self, caller: Caller, team_id: int, run_id: int) -> RunDetail:
        """One of the team's runs, with its queries (its own of a batch shared with other
        runs of its backfill: those of its data date)."""
        check_team(caller, team_id)
        run = await self.store.transfer_runs.get(caller.account, run_id)
        if run is None:
            raise NotFound(f"No transfer run {run_id}")
        queries: list[QueryDetail] = []
        if run.batch_id is not None:
            count = min(run.query_count or MAX_DETAILS, MAX_DETAILS)
            upto = run.query_offset + count
            await self.batch_storing.wait_stored(caller.account, run.batch_id, upto)
            page = await self.store.jobs.batch_page(run.batch_id, run.query_offset, count)
            for state in page:
                took = None
                if state.start_time is not None and state.end_time is not None:
                    took = round(state.end_time - state.start_time, 3)
                queries.append(
                    QueryDetail(
                        state.status.value,
                        state.total_rows or 0,
                        took,
                        None if state.error is None else state.error.message,
                    )
                )
        return RunDetail(run, tuple(queries))
