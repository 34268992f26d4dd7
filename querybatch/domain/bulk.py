"""Bulk file batches (seed bulk-get-batch): statuses, allowed transitions, the create request.

A bulk batch runs one operation per line of an uploaded JSON Lines file. Its lifecycle::

    new -> copying -> copied -> validating -> processing -> processed -> writing_results
                  \\-> hash_mismatch        \\-> validation_failed             -> completed

    cancel (from new .. processed) -> cancelling -> cancelled
    deleting (from any status; the batch and its files are then removed)

``cancelling`` stops the query batch running the operations and writes the results of those
that finished, so they stay downloadable after ``cancelled``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

DESCRIPTION_KEY = r"^[a-z_][0-9a-z_]{0,63}$"
HASH_PATTERN = r"^[a-f0-9]{64}$"


class BulkStatus(StrEnum):
    """Status of a bulk batch (seed bulk-get-batch, "Batch statuses")."""

    NEW = "new"
    COPYING = "copying"
    COPIED = "copied"
    HASH_MISMATCH = "hash_mismatch"
    VALIDATING = "validating"
    VALIDATION_FAILED = "validation_failed"
    PROCESSING = "processing"
    PROCESSED = "processed"
    WRITING_RESULTS = "writing_results"
    COMPLETED = "completed"
    CANCEL = "cancel"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    DELETING = "deleting"

    @property
    def is_final(self) -> bool:
        """True once nothing more happens to the batch (but deleting it)."""
        return self in FINAL_BULK_STATUSES


FINAL_BULK_STATUSES = frozenset(
    {
        BulkStatus.HASH_MISMATCH,
        BulkStatus.VALIDATION_FAILED,
        BulkStatus.COMPLETED,
        BulkStatus.CANCELLED,
    }
)

# A cancel is accepted until the results are being written: from then on the batch is
# about to complete, and cancelling would only throw finished work away.
CANCELLABLE = frozenset(
    {
        BulkStatus.NEW,
        BulkStatus.COPYING,
        BulkStatus.COPIED,
        BulkStatus.VALIDATING,
        BulkStatus.PROCESSING,
        BulkStatus.PROCESSED,
    }
)
CANCEL_STATUSES = frozenset({BulkStatus.CANCEL, BulkStatus.CANCELLING, BulkStatus.CANCELLED})

_FORWARD: dict[BulkStatus, frozenset[BulkStatus]] = {
    BulkStatus.NEW: frozenset({BulkStatus.COPYING}),
    BulkStatus.COPYING: frozenset({BulkStatus.COPIED, BulkStatus.HASH_MISMATCH}),
    BulkStatus.COPIED: frozenset({BulkStatus.VALIDATING}),
    BulkStatus.VALIDATING: frozenset({BulkStatus.VALIDATION_FAILED, BulkStatus.PROCESSING}),
    BulkStatus.PROCESSING: frozenset({BulkStatus.PROCESSED}),
    BulkStatus.PROCESSED: frozenset({BulkStatus.WRITING_RESULTS}),
    BulkStatus.WRITING_RESULTS: frozenset({BulkStatus.COMPLETED}),
    BulkStatus.CANCEL: frozenset({BulkStatus.CANCELLING}),
    BulkStatus.CANCELLING: frozenset({BulkStatus.CANCELLED}),
}

BULK_TRANSITIONS: dict[BulkStatus, frozenset[BulkStatus]] = {
    status: _FORWARD.get(status, frozenset())
    | (frozenset({BulkStatus.CANCEL}) if status in CANCELLABLE else frozenset())
    | (frozenset() if status is BulkStatus.DELETING else frozenset({BulkStatus.DELETING}))
    for status in BulkStatus
}


def parse_statuses(values: list[str]) -> frozenset[BulkStatus]:
    """The statuses named in ``values`` (each one name or a comma-separated list of them).

    Raises ValueError naming the first value that is not a status.
    """
    found: set[BulkStatus] = set()
    for value in values:
        for name in value.split(","):
            try:
                found.add(BulkStatus(name.strip().lower()))
            except ValueError:
                raise ValueError(f"{name.strip()[:40]!r} is not a batch status") from None
    return frozenset(found)


def can_move(current: BulkStatus, target: BulkStatus) -> bool:
    """Whether a bulk batch in ``current`` may move to ``target``."""
    return target in BULK_TRANSITIONS[current]


class IllegalTransition(ValueError):
    """A bug: code tried a transition the table does not allow."""


def check_move(current: BulkStatus, target: BulkStatus) -> None:
    """Raise IllegalTransition unless ``current`` -> ``target`` is allowed."""
    if not can_move(current, target):
        raise IllegalTransition(f"a bulk batch cannot move from {current} to {target}")


# operation name -> the action a role must permit to run it in a bulk batch.
OPERATIONS: dict[str, str] = {"get_data": "get_data"}


class BulkBatchRequest(BaseModel):
    """The body of ``POST /batches``: Trusted Twin's create_batch fields, null where optional.

    ``batch_dict`` is the dictionary Trusted Twin's client template sends with a batch; it
    is kept with the batch as its description (when no ``description`` is given), under the
    same rules.
    """

    model_config = ConfigDict(extra="forbid")

    handler: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    operation: Annotated[str, StringConstraints(max_length=64)]
    hash: Annotated[str, StringConstraints(pattern=HASH_PATTERN)] | None = None
    description: Annotated[dict[str, Any], Field(max_length=100)] | None = None
    batch_dict: Annotated[dict[str, Any], Field(max_length=100)] | None = None

    @field_validator("operation")
    @classmethod
    def _known_operation(cls, value: str) -> str:
        if value not in OPERATIONS:
            raise ValueError(f"operation must be one of: {', '.join(sorted(OPERATIONS))}")
        return value

    @field_validator("description", "batch_dict")
    @classmethod
    def _description_keys(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for key in value or {}:
            if not re.fullmatch(DESCRIPTION_KEY, key):
                raise ValueError(f"description key {key[:80]!r} must match {DESCRIPTION_KEY}")
        return value

    @model_validator(mode="after")
    def _batch_dict_describes(self) -> BulkBatchRequest:
        if self.description is None and self.batch_dict is not None:
            self.description = self.batch_dict
        return self


class LineStatus(StrEnum):
    """Status of one line in a results file."""

    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    STOPPED = "STOPPED"
    INVALID = "INVALID"  # the line is not a valid operation (validation_failed files)
