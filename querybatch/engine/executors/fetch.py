"""Turning a sub-query's spec into the request its connector is asked."""

from __future__ import annotations

from querybatch.connectors.base import FetchRequest
from querybatch.domain.query import QuerySpec


def fetch_request(spec: QuerySpec) -> FetchRequest:
    """The connector's view of a query (cheap: runs once per sub-query)."""
    return FetchRequest(
        ds_id=spec.ds_id,
        accounts=spec.accounts,
        start_date=spec.start_date,
        end_date=spec.end_date,
        fields=spec.fields,
        filter=spec.parsed_filter,
        order_rows=spec.order_keys,
        max_rows=spec.max_rows,
        settings=spec.settings,
        segments=spec.segments,
        users=spec.users,
    )
