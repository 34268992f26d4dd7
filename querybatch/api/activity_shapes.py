"""The tenant's activity as ``GET /query/activity`` answers it: its model and its builder."""

from __future__ import annotations

from pydantic import BaseModel, Field

from querybatch.api import shapes
from querybatch.api.schemas import RequestMeta
from querybatch.engine.query_batches import Activity


class ActivityMeta(RequestMeta):
    """The window the answer covers."""

    minutes: int = Field(description="the window's length in minutes, the current one included")
    since: str = Field(description="the start of the window's first minute (ISO 8601, UTC)")


class MinuteActivity(BaseModel):
    """The tenant's sub-queries that ended in one minute, by outcome."""

    minute: str = Field(description="the minute's start (ISO 8601, UTC)")
    success: int
    failure: int
    stopped: int = Field(description="cancelled or timed out")


class FailureGroup(BaseModel):
    """The failed sub-queries of the window with one error code and message."""

    error_code: str
    error_message: str
    count: int = Field(description="failed sub-queries")
    batches: int = Field(description="batches they belong to (a /query/data query is one)")


class ActivityData(BaseModel):
    """Every minute of the window (oldest first; the last one is still going) and the
    window's failures, most frequent first."""

    per_minute: list[MinuteActivity]
    failures: list[FailureGroup]
    more_failures: bool = Field(description="true when rarer groups than those listed exist")


class ActivityResponse(BaseModel):
    """``GET /query/activity``."""

    meta: ActivityMeta
    data: ActivityData


def activity_response(request_id: str, minutes: int, activity: Activity) -> ActivityResponse:
    """The answer for ``activity`` over a window of ``minutes``."""
    since = activity.minutes[0].start
    return ActivityResponse(
        meta=ActivityMeta(request_id=request_id, minutes=minutes, since=_iso(since)),
        data=ActivityData(
            per_minute=[
                MinuteActivity(
                    minute=_iso(m.start), success=m.success, failure=m.failure, stopped=m.stopped
                )
                for m in activity.minutes
            ],
            failures=[
                FailureGroup(
                    error_code=f.code, error_message=f.message, count=f.count, batches=f.batches
                )
                for f in activity.failures
            ],
            more_failures=activity.more_failures,
        ),
    )


def _iso(epoch: float) -> str:
    return shapes.iso_time(epoch) or ""
