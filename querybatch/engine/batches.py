"""Planning a query batch: validate every query, split it, and number the sub-queries.

Everything is checked before anything is stored, so one bad query among thousands is a
single 400 that names it by index and parameter, and nothing is created.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from querybatch.domain.batch import BatchSettings, batch_query_schedule_id
from querybatch.domain.query import DataRequest, QuerySpec, SpecError, build_spec
from querybatch.domain.splitting import count_subqueries, split_query
from querybatch.engine.planner import Planner

_REQUESTS = TypeAdapter(list[DataRequest])


@dataclass(frozen=True, slots=True)
class PlannedBatch:
    """A validated batch: its settings and its numbered sub-queries."""

    settings: BatchSettings
    subqueries: list[tuple[str, dict[str, Any], str]]  # (schedule id, spec, fingerprint)
    columns: list[str]  # every field id any sub-query returns, in first-seen order


def request_hash(body: dict[str, Any]) -> str:
    """A stable hash of a batch body (same body, same hash) for Idempotency-Key checks."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def parse_queries(raw: list[dict[str, Any]]) -> list[DataRequest]:
    """Validate every query of a batch at once; the first error names its index."""
    try:
        return _REQUESTS.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        index, *where = first["loc"]
        name = ".".join(str(part) for part in where) or "query"
        raise SpecError(f"queries[{index}].{name}", first["msg"]) from exc


async def plan_batch(
    batch_id: str,
    settings: BatchSettings,
    raw_queries: list[dict[str, Any]],
    planner: Planner,
    today: date,
    max_subqueries: int,
) -> PlannedBatch:
    """Validate, split and number the queries of a batch (raises SpecError naming the query)."""
    if not isinstance(raw_queries, list) or not raw_queries:
        raise SpecError("queries", "queries is required: a non-empty array of query objects")
    if len(raw_queries) > max_subqueries:
        raise SpecError(
            "queries",
            f"The batch has {len(raw_queries)} queries; at most {max_subqueries} are allowed",
        )
    requests = parse_queries(raw_queries)
    specs: list[QuerySpec] = []
    checked: set[str] = set()
    for index, request in enumerate(requests):
        try:
            spec = build_spec(request, today)
            # Batches repeat one query shape for many accounts and dates: check each once.
            shape = spec.model_copy(update={"accounts": (), "start_date": today, "end_date": today})
            key = shape.fingerprint()
            if key not in checked:
                await planner.check(spec)
                checked.add(key)
        except SpecError as exc:
            raise SpecError(f"queries[{index}].{exc.parameter}", str(exc)) from exc
        specs.append(await _with_accounts(spec, settings, planner))
    total = sum(
        count_subqueries(
            len(spec.accounts),
            spec.start_date,
            spec.end_date,
            settings.split_accounts_policy,
            settings.split_dates_policy,
        )
        for spec in specs
    )
    if total > max_subqueries:
        raise SpecError(
            "queries",
            f"The batch would hold {total} sub-queries after splitting; at most "
            f"{max_subqueries} are allowed",
        )
    if total == 0:
        raise SpecError("queries", "The batch holds no sub-query after splitting")
    return PlannedBatch(settings, _numbered(batch_id, specs, settings), _columns(specs))


async def _with_accounts(spec: QuerySpec, settings: BatchSettings, planner: Planner) -> QuerySpec:
    """Splitting per account with no accounts named means: every account of the source."""
    if settings.split_accounts_policy != "all" or spec.accounts:
        return spec
    logins = await planner.sources[spec.ds_id].accounts(spec.users)
    every = tuple(dict.fromkeys(a.account_id for login in logins for a in login.accounts))
    return spec.model_copy(update={"accounts": every})


def _numbered(
    batch_id: str, specs: list[QuerySpec], settings: BatchSettings
) -> list[tuple[str, dict[str, Any], str]]:
    numbered: list[tuple[str, dict[str, Any], str]] = []
    for spec in specs:
        base = spec.model_dump(mode="json")
        pieces = split_query(
            spec.accounts,
            spec.start_date,
            spec.end_date,
            settings.split_accounts_policy,
            settings.split_dates_policy,
        )
        for accounts, start, end in pieces:
            piece = {
                **base,
                "accounts": list(accounts),
                "start_date": start.isoformat(),
                "end_date": end.isoformat(),
            }
            fingerprint = hashlib.sha256(
                orjson.dumps(piece, option=orjson.OPT_SORT_KEYS)
            ).hexdigest()
            schedule_id = batch_query_schedule_id(batch_id, len(numbered) + 1)
            numbered.append((schedule_id, piece, fingerprint))
    return numbered


def _columns(specs: list[QuerySpec]) -> list[str]:
    return list(dict.fromkeys(field for spec in specs for field in spec.fields))
