"""A batch's sub-queries as the batch page looks at them: filtered pages, failures by reason.

Every read starts from the batch's own index entries (``batch_id, status, position``, or the
``batch_id, position`` key), so its cost is bounded by the batch, never by the store. A
status filter walks only the index entries of those statuses. An account or a date is
matched on the batch's rows of ``sub_query_keys`` (narrow: the accounts and the date range of
each sub-query, no JSON to parse), written from the specs a slice at a time
(:meth:`SubQueryViews.write_keys`) when the batch page first opens or on the first such filter
(engine.query_batches); the positions they match are then looked up by the
``batch_id, position`` key, with a status filter on the index. A deep page finds its
positions first and reads only the rows it shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Text,
    and_,
    cast,
    desc,
    func,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from querybatch.domain.status import QueryStatus
from querybatch.domain.sub_query_filter import (
    AccountCount,
    FailureGroup,
    FailureSummary,
    SubQueryFilter,
)
from querybatch.store.database import Database
from querybatch.store.jobs import BATCH_PAGE_COLUMNS, sub_query_state
from querybatch.store.records import SubQueryState
from querybatch.store.repository import reads, writes
from querybatch.store.tables import queries, results, sub_query_keys

_SPEC = type_coerce(queries.c.spec, Text)


class SubQueryViews:
    """The repository of filtered status pages and failure summaries."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @reads
    def has_keys(self, batch_id: str, last_position: int) -> bool:
        """True once the batch's ``sub_query_keys`` rows are all written (they are written in
        the order of the positions, so the last one is written last)."""
        with self.db.reading() as conn:
            found = conn.execute(
                select(sub_query_keys.c.position).where(
                    sub_query_keys.c.batch_id == batch_id,
                    sub_query_keys.c.position == last_position,
                )
            ).first()
        return found is not None

    @writes
    def write_keys(self, batch_id: str, first: int, last: int) -> None:
        """Write the ``sub_query_keys`` rows of the batch's sub-queries at positions ``first``
        to ``last`` from their specs, in one statement (a batch's specs never change, so the
        rows stay true). A slice at a time, so that the store's writer is not held for the
        whole of a large batch.

        Rows already there are kept: two servers (or requests) that prepare a batch at once
        both write, and the second writes nothing.
        """
        with self.db.writing() as conn:
            dialect = conn.dialect
            rows = select(
                queries.c.batch_id,
                queries.c.position,
                func.lower(_accounts_text(dialect)),
                _spec_text(dialect, "start_date"),
                _spec_text(dialect, "end_date"),
            ).where(queries.c.batch_id == batch_id, queries.c.position.between(first, last))
            insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
            conn.execute(
                insert(sub_query_keys)
                .from_select(["batch_id", "position", "accounts", "start_date", "end_date"], rows)
                .on_conflict_do_nothing()
            )

    @reads
    def filtered_page(
        self, batch_id: str, keep: SubQueryFilter, offset: int, limit: int
    ) -> tuple[list[SubQueryState], int]:
        """``limit`` of the batch's sub-queries that ``keep`` keeps, in batch order, after
        the first ``offset`` of them; and how many it keeps in all.

        An account or a date filter reads the batch's ``sub_query_keys`` rows: write them
        first (:meth:`write_keys`), or it keeps nothing.
        """
        with self.db.reading() as conn:
            where = _conditions(batch_id, keep)
            positions = (
                select(queries.c.position)
                .where(*where)
                .order_by(queries.c.position)
                .limit(limit)
                .offset(offset)
                .scalar_subquery()
            )
            page = (
                select(*BATCH_PAGE_COLUMNS)
                .outerjoin(results, results.c.id == queries.c.result_id)
                .where(queries.c.batch_id == batch_id, queries.c.position.in_(positions))
                .order_by(queries.c.position)
            )
            rows = conn.execute(page).all()
            total = conn.execute(select(func.count()).where(*where)).scalar_one()
        return [sub_query_state(*row) for row in rows], int(total)

    @reads
    def failure_summary(self, batch_id: str, max_groups: int, max_accounts: int) -> FailureSummary:
        """The batch's failed sub-queries grouped by error code and message, the largest
        ``max_groups`` groups first, each with its ``max_accounts`` most frequent accounts."""
        failed = (queries.c.batch_id == batch_id, queries.c.status == QueryStatus.FAILURE.value)
        with self.db.reading() as conn:
            code = func.coalesce(queries.c.error_code, "")
            message = func.coalesce(queries.c.error_message, "")
            dialect = conn.dialect
            grouped = conn.execute(
                select(
                    code,
                    message,
                    func.count(),
                    func.min(_spec_text(dialect, "start_date")),
                    func.max(_spec_text(dialect, "end_date")),
                )
                .where(*failed)
                .group_by(code, message)
                .order_by(desc(func.count()), code, message)
                .limit(max_groups + 1)
            ).all()
            failures = conn.execute(select(func.count()).where(*failed)).scalar_one()
            accounts = _accounts_by_group(conn, failed, max_accounts)
        groups = tuple(
            FailureGroup(
                code=row[0],
                message=row[1],
                count=int(row[2]),
                first_date=row[3] or "",
                last_date=row[4] or "",
                accounts=tuple(accounts.get((row[0], row[1]), ([], 0))[0]),
                account_count=accounts.get((row[0], row[1]), ([], 0))[1],
            )
            for row in grouped[:max_groups]
        )
        return FailureSummary(int(failures), groups, len(grouped) > max_groups)


def _conditions(batch_id: str, keep: SubQueryFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [queries.c.batch_id == batch_id]
    if keep.statuses:
        values = sorted(status.value for status in keep.statuses)
        where.append(queries.c.status.in_(values))
    keys: list[ColumnElement[bool]] = []
    if keep.account is not None:
        # The stored list is lower case already: the column is compared as it is.
        keys.append(sub_query_keys.c.accounts.contains(keep.account.lower(), autoescape=True))
    if keep.day is not None:
        day = keep.day.isoformat()
        keys.append(and_(sub_query_keys.c.start_date <= day, sub_query_keys.c.end_date >= day))
    if keys:
        matched = select(sub_query_keys.c.position).where(
            sub_query_keys.c.batch_id == batch_id, *keys
        )
        where.append(queries.c.position.in_(matched))
    return where


def _spec_text(dialect: Dialect, key: str) -> ColumnElement[Any]:
    """A text value of the stored spec (its JSON is kept as text on both databases)."""
    if dialect.name == "postgresql":
        value: ColumnElement[Any] = cast(_SPEC, JSON)[key].as_string()
        return value
    return func.json_extract(_SPEC, f"$.{key}")


def _accounts_text(dialect: Dialect) -> ColumnElement[Any]:
    """The spec's list of accounts as JSON text (``["a","b"]``)."""
    if dialect.name == "postgresql":
        listed: ColumnElement[Any] = cast(cast(_SPEC, JSON)["accounts"], Text)
        return listed
    return func.json_extract(_SPEC, "$.accounts")


def _accounts_by_group(
    conn: Connection, failed: Sequence[ColumnElement[bool]], limit: int
) -> dict[tuple[str, str], tuple[list[AccountCount], int]]:
    """Per (code, message): its ``limit`` most frequent accounts and how many it hit."""
    code = func.coalesce(queries.c.error_code, "").label("code")
    message = func.coalesce(queries.c.error_message, "").label("message")
    if conn.dialect.name == "postgresql":
        items = func.json_array_elements_text(cast(_SPEC, JSON)["accounts"]).table_valued("value")
    else:
        items = func.json_each(_SPEC, "$.accounts").table_valued("value")
    account = items.c.value
    counted = (
        select(code, message, account.label("account"), func.count().label("hits"))
        .select_from(queries)
        .join(items, literal_column("1") == 1)
        .where(*failed)
        .group_by(code, message, account)
        .subquery()
    )
    partition = (counted.c.code, counted.c.message)
    ranked = select(
        counted.c.code,
        counted.c.message,
        counted.c.account,
        counted.c.hits,
        func.row_number()
        .over(partition_by=partition, order_by=(desc(counted.c.hits), counted.c.account))
        .label("rank"),
        func.count().over(partition_by=partition).label("accounts"),
    ).subquery()
    rows = conn.execute(
        select(ranked.c.code, ranked.c.message, ranked.c.account, ranked.c.hits, ranked.c.accounts)
        .where(ranked.c.rank <= limit)
        .order_by(ranked.c.code, ranked.c.message, ranked.c.rank)
    ).all()
    found: dict[tuple[str, str], tuple[list[AccountCount], int]] = {}
    for group_code, group_message, name, hits, distinct in rows:
        entry = found.setdefault((group_code, group_message), ([], int(distinct)))
        entry[0].append(AccountCount(str(name), int(hits)))
    return found
