"""Log lines of a batch's life that runs decide: how a batch ended, and each failed sub-query.

They are written where the store says it happened (on the server, or on the Celery worker
that ran the last sub-query), one line each, with the ids an operator searches for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from querybatch import logs
from querybatch.domain.status import QueryStatus
from querybatch.store.records import Outcome
from querybatch.store.store import Store

log = logging.getLogger("querybatch.lifecycle")


async def log_stopped(store: Store, batch_ids: Sequence[str], how: str = "finished") -> None:
    """Say how these batches ended (``finished``, ``cancelled``, ``timed out``): their
    sub-queries per outcome and how long they ran; a store outage only costs the line."""
    if not log.isEnabledFor(logging.INFO) or not batch_ids:
        return
    try:
        records = await store.upkeep.batches_by_id(list(batch_ids))
    except Exception as exc:
        log.warning("could not read how batches %s ended: %s", ", ".join(batch_ids), exc)
        return
    for batch in records:
        start = batch.start_time or batch.created_at
        duration = max(0.0, (batch.end_time or start) - start)
        counts = batch.counts
        logs.event(
            log,
            f"batch_{how.replace(' ', '_')}",
            "{kind} {batch_id} " + how + ": {success} succeeded, {failure} failed, "
            "{stopped} stopped of {queries} in {duration_seconds} s (tenant {tenant})",
            kind="query" if batch.kind == "single" else "batch",
            batch_id=batch.id,
            success=counts.success,
            failure=counts.failure,
            stopped=counts.stopped,
            queries=batch.query_amount,
            duration_seconds=round(duration, 3),
            tenant=batch.account,
        )


def log_failures(outcomes: Iterable[Outcome]) -> None:
    """One WARNING line per failed sub-query, with its error code and reason."""
    for outcome in outcomes:
        if outcome.status is not QueryStatus.FAILURE:
            continue
        error = outcome.error
        logs.event(
            log,
            "subquery_failed",
            "sub-query {query_id} of batch {batch_id} failed ({ds_id}): {code}: {reason}",
            level=logging.WARNING,
            query_id=outcome.query_id,
            batch_id=outcome.batch_id,
            ds_id=outcome.ds_id or "-",
            code=error.code if error else "FAILURE",
            reason=_reason(outcome),
        )


def log_discarded(outcomes: Sequence[Outcome]) -> None:
    """One line per batch for outcomes that arrived after their run lost its sub-query (the
    batch stopped, or the lease lapsed and the sub-query ran again): their rows are dropped,
    so a result is stored once; the line is how a late original run is traced."""
    by_batch: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_batch.setdefault(outcome.batch_id, []).append(outcome)
    for batch_id, late in by_batch.items():
        logs.event(
            log,
            "outcomes_discarded",
            "discarded {count} outcomes of batch {batch_id} that came after their runs lost "
            "their sub-queries (stopped, or run again): sub-query:attempt {runs}",
            count=len(late),
            batch_id=batch_id,
            runs=" ".join(f"{o.query_id}:{o.attempt}" for o in late[:20]),
        )


def _reason(outcome: Outcome) -> str:
    error = outcome.error
    if error is None:
        return "no reason given"
    text = f"{error.message}: {error.description}" if error.description else error.message
    # One line, whatever the data source said.
    return " ".join(text.split())[:1000]
