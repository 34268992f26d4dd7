"""The answer of ``GET /query/batch/{batch_id}/failures``: a batch's failures by reason."""

from __future__ import annotations

from pydantic import BaseModel

from querybatch.api.schemas import RequestMeta
from querybatch.domain.sub_query_filter import (
    FAILURE_ACCOUNTS_MAX,
    FAILURE_GROUPS_MAX,
    FailureSummary,
)


class FailureAccount(BaseModel):
    """An account a group of failures hit, and how many failed sub-queries covered it."""

    account: str
    count: int


class FailureGroupItem(BaseModel):
    """The failed sub-queries of one error code and message."""

    code: str
    message: str
    count: int
    first_date: str
    last_date: str
    accounts: list[FailureAccount]
    account_count: int


class FailuresMeta(RequestMeta):
    """``meta`` of a failure summary: the batch, its failure count, whether groups were left out."""

    batch_id: str
    status_code: str
    failures: int
    groups_truncated: bool
    max_groups: int = FAILURE_GROUPS_MAX
    max_accounts: int = FAILURE_ACCOUNTS_MAX


class FailuresResponse(BaseModel):
    """A batch's failures grouped by error code and message, the largest groups first."""

    meta: FailuresMeta
    data: list[FailureGroupItem]


def failure_groups(summary: FailureSummary) -> list[FailureGroupItem]:
    """The summary's groups as answer items."""
    return [FailureGroupItem.model_validate(g, from_attributes=True) for g in summary.groups]
