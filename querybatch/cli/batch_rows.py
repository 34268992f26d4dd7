"""The rows ``querybatch batch results`` prints: keyed by field id or label, values typed.

``batch download`` writes what ``GET /query/batch/{id}/download`` streams: one object per
row keyed by field id, values typed as stored, plus ``schedule_id``. ``batch results``
prints the same by default (``--keys ids``), or keyed by the fields' labels
(``--keys labels``). One sub-query's rows come from ``/query/status``, which answers in the
``json`` format: a header of labels, then values as text unless the batch asked for clean
data types; they are typed again by each field's data type, so both paths print alike.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

import orjson

from querybatch.cli.http import ApiClient, api_error

PAGE_ROWS = 10_000
NUMBERS = {"int": int, "float": float, "currency": float, "percent": float}


class Keys(StrEnum):
    """What the keys of a printed row are."""

    ids = "ids"
    labels = "labels"


def _typed(value: Any, data_type: str) -> Any:
    convert = NUMBERS.get(data_type)
    if convert is None or not isinstance(value, str):
        return value
    if value == "":
        return None  # the json format writes a missing number as ""
    try:
        return convert(value)
    except ValueError:
        return value


def _write(row: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(row).decode() + "\n")


def query_rows(api: ApiClient, schedule_id: str, keys: Keys) -> None:
    """Print one sub-query's rows, ``PAGE_ROWS`` at a time."""
    offset = 0
    while True:
        params = {
            "schedule_id": schedule_id,
            "offset_start": offset,
            "offset_end": offset + PAGE_ROWS - 1,
        }
        page = api.json("GET", "/query/status", params=params)
        fields = sorted(page["meta"]["query"]["fields"], key=lambda f: f["data_column"])
        names = [f["field_id" if keys is Keys.ids else "field_name"] for f in fields]
        types = [f["data_type"] for f in fields]
        rows = page.get("data") or []
        if rows and rows[0] == [f["field_name"] for f in fields]:
            rows = rows[1:]  # the header line of labels
        for row in rows:
            values = row.values() if isinstance(row, dict) else row
            typed = [_typed(v, t) for v, t in zip(values, types, strict=True)]
            _write({"schedule_id": schedule_id, **dict(zip(names, typed, strict=True))})
        if len(rows) < PAGE_ROWS:
            return
        offset += PAGE_ROWS


def _labels(api: ApiClient, batch_id: str) -> dict[str, str]:
    """Field id -> label, for every data source the batch's sub-queries use."""
    sources: set[str] = set()
    offset = 0
    while True:
        page = api.json(
            "GET", f"/query/batch/{batch_id}/status", params={"offset": offset, "limit": 1000}
        )
        sources.update(item["split_info"]["ds_id"] for item in page["data"])
        offset += 1000
        if offset >= page["meta"]["paginate"]["total"]:
            break
    labels: dict[str, str] = {}
    for ds_id in sorted(sources):
        for item in api.json("GET", "/query/fields", params={"ds_id": ds_id})["data"]:
            labels.setdefault(item["field_id"], item["field_name"])
    return labels


def _lines(api: ApiClient, batch_id: str) -> Iterator[str]:
    with api.http.stream(
        "GET", f"/query/batch/{batch_id}/download", params={"format": "ndjson"}
    ) as response:
        if response.status_code >= 400:
            response.read()
            raise api_error(response)
        yield from response.iter_lines()


def batch_rows(api: ApiClient, batch_id: str, keys: Keys) -> None:
    """Print every collected row of the batch, as the batch download has them."""
    labels = _labels(api, batch_id) if keys is Keys.labels else {}
    for line in _lines(api, batch_id):
        if not line:
            continue
        if keys is Keys.ids:
            sys.stdout.write(line + "\n")
            continue
        row = orjson.loads(line)
        _write({labels.get(key, key): value for key, value in row.items()})
