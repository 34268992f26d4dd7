"""Planning a query batch: validate every query, split it, and number the sub-queries.

Everything is checked before anything is stored, so one bad query among thousands is a
single 400 that names it by index and parameter, and nothing is created.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from querybatch.domain.batch import (
    BatchSettings,
    PieceTemplate,
    PlannedQuery,
    batch_query_schedule_id,
)
from querybatch.domain.query import DataRequest, QuerySpec, SpecError, build_spec, fingerprint_of
from querybatch.domain.splitting import count_subqueries, split_query
from querybatch.engine.planner import Planner

_REQUESTS = TypeAdapter(list[DataRequest])
_SPECS = TypeAdapter(list[QuerySpec])
Piece = tuple[tuple[str, ...], date, date]  # a sub-query's accounts, start and end dates


class SubQueries:
    """The numbered sub-queries of a batch's queries, made as they are read.

    A batch may hold a million: held all at once (a spec's JSON values and fingerprint each),
    they took about 2 kB apiece; made one at a time, the store writes them a slice at a time
    in memory that does not grow with the batch.
    """

    def __init__(
        self,
        batch_id: str,
        specs: list[QuerySpec],
        settings: BatchSettings,
        total: int,
        *,
        interleaved: bool = False,
    ) -> None:
        self.batch_id = batch_id
        self.specs = specs
        self.settings = settings
        self.total = total
        self.interleaved = interleaved

    @classmethod
    def from_plan(cls, batch_id: str, plan: str, settings: BatchSettings, total: int) -> SubQueries:
        """The sub-queries a stored :meth:`plan` makes (the batch's split settings and size
        are stored with the batch itself)."""
        stored = orjson.loads(plan)
        specs = _SPECS.validate_python(stored["specs"])
        return cls(batch_id, specs, settings, total, interleaved=stored["interleaved"])

    def plan(self) -> str:
        """What the sub-queries are made from, as text to store: the queries' specs (their
        account lists resolved, their dates concrete) and the order of their pieces."""
        specs = [spec.model_dump(mode="json") for spec in self.specs]
        return orjson.dumps({"specs": specs, "interleaved": self.interleaved}).decode()

    def __len__(self) -> int:
        return self.total

    def __iter__(self) -> Iterator[PlannedQuery]:
        return self.after(0)

    def after(self, position: int) -> Iterator[PlannedQuery]:
        """The sub-queries after the first ``position`` (those are skipped unmade)."""
        pieces = itertools.islice(self._pieces(), position, None)
        for number, (spec, template, (accounts, start, end)) in enumerate(pieces, position + 1):
            schedule_id = batch_query_schedule_id(self.batch_id, number)
            yield PlannedQuery.piece(schedule_id, spec, template, accounts, start, end)

    def _pieces(self) -> Iterator[tuple[QuerySpec, PieceTemplate, Piece]]:
        """Each query's pieces in turn; interleaved, the first piece of every query, then
        the second of every query, and so on (a query with fewer pieces drops out), which
        holds every query's pieces at once."""
        split = ((spec, PieceTemplate(spec), self._split(spec)) for spec in self.specs)
        if not self.interleaved:
            for spec, template, pieces in split:  # one query's pieces at a time
                for piece in pieces:
                    yield spec, template, piece
            return
        held = list(split)
        for rank in range(max(len(pieces) for _, _, pieces in held)):
            for spec, template, pieces in held:
                if rank < len(pieces):
                    yield spec, template, pieces[rank]

    def _split(self, spec: QuerySpec) -> list[Piece]:
        return split_query(
            spec.accounts,
            spec.start_date,
            spec.end_date,
            self.settings.split_accounts_policy,
            self.settings.split_dates_policy,
        )


@dataclass(frozen=True, slots=True)
class PlannedBatch:
    """A validated batch: its settings and its numbered sub-queries."""

    settings: BatchSettings
    subqueries: SubQueries
    columns: list[str]  # every field id any sub-query returns, in first-seen order


def request_hash(body: dict[str, Any]) -> str:
    """A stable hash of a batch body (same body, same hash) for Idempotency-Key checks.

    The API refuses deep bodies before this; a body orjson still cannot write (nested past
    its recursion limit, an integer past 64 bits) is a SpecError, not a crash.
    """
    try:
        return fingerprint_of(body)
    except orjson.JSONEncodeError as exc:
        raise SpecError("body", f"The body cannot be read as a batch: {exc}") from exc


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
    *,
    interleaved: bool = False,
) -> PlannedBatch:
    """Validate, split and number the queries of a batch (raises SpecError naming the query).

    Sub-queries are numbered query by query, or ``interleaved`` (see ``SubQueries``). The
    per-query work (validation, specs, numbering) runs on a worker thread, so that a
    batch of 100,000 queries does not hold up the event loop and the status calls it serves.
    """
    if not isinstance(raw_queries, list) or not raw_queries:
        raise SpecError("queries", "queries is required: a non-empty array of query objects")
    if len(raw_queries) > max_subqueries:
        raise SpecError(
            "queries",
            f"The batch has {len(raw_queries)} queries; at most {max_subqueries} are allowed",
        )
    requests = await asyncio.to_thread(parse_queries, raw_queries)
    specs, shapes = await asyncio.to_thread(_build_specs, requests, today)
    # Batches repeat one query shape for many accounts and dates: check each shape once.
    for index, spec in shapes:
        try:
            await planner.check(spec)
        except SpecError as exc:
            raise SpecError(f"queries[{index}].{exc.parameter}", str(exc)) from exc
    specs = await planner.resolve_account_lists(
        specs, none_means_all=settings.split_accounts_policy == "all"
    )
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
    subqueries = SubQueries(batch_id, specs, settings, total, interleaved=interleaved)
    return PlannedBatch(settings, subqueries, _columns(specs))


def _build_specs(
    requests: list[DataRequest], today: date
) -> tuple[list[QuerySpec], list[tuple[int, QuerySpec]]]:
    """Every query's spec, and the first query of each distinct shape (to check once)."""
    specs: list[QuerySpec] = []
    shapes: dict[str, tuple[int, QuerySpec]] = {}
    for index, request in enumerate(requests):
        try:
            spec = build_spec(request, today)
        except SpecError as exc:
            raise SpecError(f"queries[{index}].{exc.parameter}", str(exc)) from exc
        shapes.setdefault(spec.shape(today).fingerprint(), (index, spec))
        specs.append(spec)
    return specs, list(shapes.values())


def _columns(specs: list[QuerySpec]) -> list[str]:
    return list(dict.fromkeys(field for spec in specs for field in spec.fields))
