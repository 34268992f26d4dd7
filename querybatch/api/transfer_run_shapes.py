"""Transfer runs as the API answers them, in the shapes the official SDK parses: a list of
``TransferRunItem`` and one ``TransferRunDetail``, each wrapped in ``{"meta", "data"}``."""

from __future__ import annotations

from datetime import UTC, date, datetime

from pydantic import BaseModel, Field

from querybatch.api.destination_shapes import WithMeta
from querybatch.api.schemas import RequestMeta
from querybatch.engine.transfer_runs import RunDetail, TransferRunRecord

# A run that is loading is still running, as the hosted service's statuses tell it.
_SHOWN_STATUS = {"LOADING": "RUNNING"}


class RunItem(BaseModel):
    """One run in a transfer's list (``TransferRunItem``)."""

    id: int
    status: str
    type: str
    message: str
    created_time: datetime | None
    ended_time: datetime | None
    total_duration: float | None
    total_rows: int | None
    data_date: date


class RunList(WithMeta):
    """A page of a transfer's runs."""

    data: list[RunItem]


class QueryDetailInfo(BaseModel):
    """One query of a run's batch (``QueryDetails``)."""

    status: str
    rows: int
    duration: float | None
    error_description: str | None


class RunDetailInfo(BaseModel):
    """One run with its queries (``TransferRunDetail``)."""

    id: int
    status: str
    type: str
    external_id: str = Field(description="the run's query batch id (empty before it has one)")
    message: str
    created_time: datetime | None
    queued_time: datetime | None
    started_time: datetime | None
    ended_time: datetime | None
    data_date: date
    query_amount: int
    failed_query_amount: int
    total_duration: float | None
    total_rows: int | None
    backfill_id: int | None
    query_details: list[QueryDetailInfo]


class RunDetailAnswer(WithMeta):
    """``{"meta", "data": TransferRunDetail}``."""

    data: RunDetailInfo


def _time(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _took(run: TransferRunRecord) -> float | None:
    if run.started_at is None or run.ended_at is None:
        return None
    return round(run.ended_at - run.started_at, 3)


def run_item(run: TransferRunRecord) -> RunItem:
    """A run as a list shows it."""
    return RunItem(
        id=run.id,
        status=_SHOWN_STATUS.get(run.status, run.status),
        type=run.run_type,
        message=run.error_message or "",
        created_time=_time(run.created_at),
        ended_time=_time(run.ended_at),
        total_duration=_took(run),
        total_rows=run.rows_loaded,
        data_date=run.data_date,
    )


def run_list(meta: RequestMeta, runs: list[TransferRunRecord]) -> RunList:
    """A page of runs, wrapped."""
    return RunList(meta=meta, data=[run_item(r) for r in runs])


def run_detail(meta: RequestMeta, found: RunDetail) -> RunDetailAnswer:
    """One run and its queries, wrapped."""
    run = found.run
    details = [
        QueryDetailInfo(
            status=q.status, rows=q.rows, duration=q.duration, error_description=q.error
        )
        for q in found.queries
    ]
    return RunDetailAnswer(
        meta=meta,
        data=RunDetailInfo(
            id=run.id,
            status=_SHOWN_STATUS.get(run.status, run.status),
            type=run.run_type,
            external_id=run.batch_id or "",
            message=run.error_message or "",
            created_time=_time(run.created_at),
            queued_time=_time(run.created_at),
            started_time=_time(run.started_at),
            ended_time=_time(run.ended_at),
            data_date=run.data_date,
            query_amount=len(details),
            failed_query_amount=sum(1 for q in details if q.status in ("FAILURE", "STOPPED")),
            total_duration=_took(run),
            total_rows=run.rows_loaded,
            backfill_id=run.backfill_id,
            query_details=details,
        ),
    )
