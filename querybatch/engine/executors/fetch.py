"""Turning a stored sub-query spec into the request its connector is asked."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from functools import lru_cache
from typing import Any

from querybatch.connectors.base import FetchRequest
from querybatch.domain.filters import Filter, parse_filter, parse_order


@lru_cache(maxsize=4096)
def cached_filter(text: str) -> Filter:
    """Parse a filter once per distinct text (batches repeat the same filter many times)."""
    return parse_filter(text)


def fetch_request(spec: Mapping[str, Any]) -> FetchRequest:
    """The connector's view of a stored query spec (cheap: runs once per sub-query)."""
    return FetchRequest(
        ds_id=spec["ds_id"],
        accounts=tuple(spec["accounts"]),
        start_date=date.fromisoformat(spec["start_date"]),
        end_date=date.fromisoformat(spec["end_date"]),
        fields=tuple(spec["fields"]),
        filter=cached_filter(spec["filter"]) if spec.get("filter") else None,
        order_rows=parse_order(spec["order_rows"]) if spec.get("order_rows") else (),
        max_rows=spec.get("max_rows"),
        settings=spec.get("settings") or {},
        segments=tuple(spec.get("segments") or ()),
        users=tuple(spec.get("users") or ()),
    )
