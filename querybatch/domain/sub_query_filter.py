"""Which of a batch's sub-queries a status page shows, and how the failures are summed up."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from querybatch.domain.status import QueryStatus

# Account ids are matched as part of an id, so the text is bounded and of the characters
# account ids are made of: no quote, comma or backslash can reach across ids in the stored
# list, and lower-casing them means the same on SQLite and PostgreSQL.
ACCOUNT_MAX_LENGTH = 64
ACCOUNT_PATTERN = re.compile(r"[A-Za-z0-9_.:@+/ -]{1,64}")
STATUSES_MAX = len(QueryStatus)

# A failure summary's bounds: its groups (most frequent first) and the accounts named per group.
FAILURE_GROUPS_MAX = 100
FAILURE_ACCOUNTS_MAX = 20


@dataclass(frozen=True, slots=True)
class SubQueryFilter:
    """Sub-queries of any of ``statuses`` (all when empty), one of whose accounts holds
    ``account`` (case-insensitive; any when None), whose date range holds ``day`` (any when
    None)."""

    statuses: frozenset[QueryStatus] = frozenset()
    account: str | None = None
    day: date | None = None

    @property
    def is_empty(self) -> bool:
        """True when it keeps every sub-query (a plain status page)."""
        return not self.statuses and self.account is None and self.day is None


@dataclass(frozen=True, slots=True)
class AccountCount:
    """An account a group of failures hit, and how many of them."""

    account: str
    count: int


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """The failed sub-queries of one error code and message."""

    code: str
    message: str
    count: int
    first_date: str
    last_date: str
    accounts: tuple[AccountCount, ...]  # the most frequent first, at most FAILURE_ACCOUNTS_MAX
    account_count: int  # distinct accounts in the group


@dataclass(frozen=True, slots=True)
class FailureSummary:
    """A batch's failures grouped by reason, the largest groups first."""

    failures: int
    groups: tuple[FailureGroup, ...]
    truncated: bool  # more groups than ``groups`` holds
