"""Backfills as the API reads and answers them, in the shapes the official SDK parses:
``{"meta", "data": Backfill}`` and, for the incomplete ones, ``{"meta", "data": [...]}``."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from querybatch.api.destination_shapes import WithMeta
from querybatch.api.schemas import RequestMeta
from querybatch.engine.backfills import BackfillState


class BackfillBody(BaseModel):
    """``CreateBackfillRequest``: the first and last data date, both included."""

    model_config = ConfigDict(extra="forbid")

    range_start: date
    range_end: date


class BackfillStatusBody(BaseModel):
    """``UpdateBackfillStatusBody``: only a cancel."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["CANCELLED"]


class RunError(BaseModel):
    """A failed run of a backfill (``TransferBackfillRunError``)."""

    transfer_run_date: date
    error: str


class BackfillInfo(BaseModel):
    """A backfill and its counters (``Backfill``)."""

    transfer_backfill_id: int
    transfer_id: int
    range_start_date: date
    range_end_date: date
    created_time: datetime
    created_user_id: int
    status: str
    transfer_runs_total: int
    transfer_runs_created: int
    transfer_runs_completed: int
    transfer_runs_failed: int
    removed_time: datetime | None
    removed_user_id: int | None
    start_time: datetime | None
    end_time: datetime | None
    error_report: list[RunError]


class BackfillAnswer(WithMeta):
    """One backfill, wrapped."""

    data: BackfillInfo


class BackfillList(WithMeta):
    """Backfills, wrapped."""

    data: list[BackfillInfo]


def _time(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def backfill_info(state: BackfillState) -> BackfillInfo:
    """A backfill as the SDK's ``Backfill`` (users are keys here: their ids are 0)."""
    return BackfillInfo(
        transfer_backfill_id=state.id,
        transfer_id=state.transfer_id,
        range_start_date=state.range_start,
        range_end_date=state.range_end,
        created_time=datetime.fromtimestamp(state.created_at, UTC),
        created_user_id=0,
        status=state.status,
        transfer_runs_total=state.total,
        transfer_runs_created=state.total,
        transfer_runs_completed=state.counts.get("COMPLETED", 0),
        transfer_runs_failed=state.counts.get("FAILED", 0),
        removed_time=_time(state.cancelled_at),
        removed_user_id=None if state.cancelled_at is None else 0,
        start_time=_time(state.started_at),
        end_time=_time(state.ended_at),
        error_report=[RunError(transfer_run_date=d, error=e) for d, e in state.errors],
    )


def backfill_answer(meta: RequestMeta, state: BackfillState) -> BackfillAnswer:
    """One backfill, wrapped."""
    return BackfillAnswer(meta=meta, data=backfill_info(state))


def backfill_list(meta: RequestMeta, states: list[BackfillState]) -> BackfillList:
    """Backfills, wrapped."""
    return BackfillList(meta=meta, data=[backfill_info(s) for s in states])
