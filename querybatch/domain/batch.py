"""Query batch settings (seeds supermetrics-create-batch / get-batch) and batch ids."""

from __future__ import annotations

import secrets
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from querybatch.domain.splitting import SplitAccountsPolicy, SplitDatesPolicy

OutputFormat = Literal["json", "keyjson", "ndjson", "csv", "tsv", "parquet"]


class BatchSettings(BaseModel):
    """Everything of a batch but its queries; stored with it and echoed in the QueryBatch."""

    model_config = ConfigDict(extra="ignore")

    description: Annotated[str, StringConstraints(max_length=2048)] = ""
    split_accounts_policy: SplitAccountsPolicy = "none"
    split_dates_policy: SplitDatesPolicy = "none"
    timeout_minutes: Annotated[int, Field(ge=5, le=60)] = 30
    query_concurrency: Annotated[int, Field(ge=1)] = 5
    query_output_format: OutputFormat = "json"
    add_exclude_account_errors: bool = False
    add_clean_data_types: bool = False
    schedule_time: AwareDatetime | None = None
    callback_url: (
        Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://")] | None
    ) = None


def new_batch_id() -> str:
    """A fresh batch id in the shape clients know: ``qrb_`` and 12 hex digits."""
    return f"qrb_{secrets.token_hex(6)}"


def batch_query_schedule_id(batch_id: str, position: int) -> str:
    """The schedule id of the ``position``-th (from 1) sub-query of a batch."""
    return f"{batch_id}_query_{position}"
