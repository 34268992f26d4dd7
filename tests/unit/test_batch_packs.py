"""Packs of a stopped batch's rows: the same download, byte for byte, read from fewer rows."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from querybatch.api.download import download_stream
from querybatch.domain.batch import BatchSettings, PlannedQuery
from querybatch.domain.query import QuerySpec
from querybatch.domain.status import BatchStatus, QueryStatus
from querybatch.engine.batch_packs import PACK_MAX_ROWS, Packer
from querybatch.engine.batch_rows import batch_stored_rows
from querybatch.engine.result_rows import Columns
from querybatch.store.codec import encode_spec
from querybatch.store.packs import PackedRange
from querybatch.store.records import BatchRecord, ErrorInfo, NewResult, Outcome
from querybatch.store.results import CHUNK_ROWS, encode_rows
from querybatch.store.runs import new_result_id
from querybatch.store.store import Store
from querybatch.store.tables import batch_packs

TTL = 3600.0
FORMATS = ("ndjson", "csv", "parquet")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The store on SQLite, and on PostgreSQL in a schema of its own."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'packs.db'}"
    else:
        url = request.getfixturevalue("pg_schema")[0]
    opened = Store.open(url, result_ttl=TTL)
    yield opened
    opened.close()


def fields_of(position: int) -> list[str]:
    """Most sub-queries ask for the batch's fields in order; some for fewer, or another order."""
    if position % 7 == 0:
        return ["clicks"]
    if position % 11 == 0:
        return ["campaign", "date"]
    return ["date", "campaign", "clicks"]


def rows_of(position: int, fields: list[str]) -> list[list[Any]]:
    """A few rows, some of whose text a plain copy of the JSON would get wrong."""
    campaigns = ["plain", "a,b", "[x]", 'say "hi"', "naïve ☃", "back\\slash", None, "{}", "%s %%"]
    rows = []
    for n in range(position % 4):
        values = {
            "date": f"2026-01-{1 + n % 28:02}",
            "campaign": campaigns[(position + n) % len(campaigns)] if position % 3 == 0 else "c",
            "clicks": position * 10 + n,
        }
        rows.append([values[field] for field in fields])
    return rows


def plan(batch_id: str, n: int) -> list[PlannedQuery]:
    planned = []
    for position in range(1, n + 1):
        spec = {
            "ds_id": "DEMO_ADS",
            "accounts": [f"acc-{position}"],
            "start_date": "2026-01-01",
            "end_date": "2026-01-01",
            "fields": fields_of(position),
        }
        query = QuerySpec.model_validate(spec)
        planned.append(
            PlannedQuery(
                f"{batch_id}_query_{position}",
                query,
                query.accounts,
                query.start_date,
                query.end_date,
                encode_spec(spec),
                f"{batch_id}-fp{position}",
            )
        )
    return planned


def finished_batch(store: Store, n: int, *, large: int = 0) -> BatchRecord:
    """A stopped batch of ``n`` sub-queries: every 13th fails, and the one at ``large`` (if
    any) holds more rows than a pack takes, in several chunks."""
    batch_id = "qrb_000000000001"
    now = time.time()
    store.jobs.create_batch.blocking(
        batch_id=batch_id,
        kind="batch",
        account="acme",
        key_id="key_1",
        settings=BatchSettings(),
        columns=("date", "campaign", "clicks"),
        query_concurrency=n,
        timeout_seconds=600,
        schedule_time=now,
        subqueries=plan(batch_id, n),
        now=now,
    )
    lane = next(lane for lane in store.runs.active_lanes.blocking() if lane.batch_id == batch_id)
    items = store.runs.claim.blocking(lane, n, now, now + 30)
    outcomes = []
    for position, item in enumerate(items, 1):
        if position % 13 == 0:
            outcomes.append(
                Outcome(
                    item.query_id,
                    batch_id,
                    item.attempt,
                    QueryStatus.FAILURE,
                    now,
                    error=ErrorInfo("CONNECTOR_ERROR", "failed"),
                )
            )
            continue
        fields = fields_of(position)
        rows = rows_of(position, fields)
        if position == large:
            rows = [["2026-01-01", f"big-{r}", r] for r in range(PACK_MAX_ROWS + 1)]
        chunks = tuple(
            (seq, len(part), encode_rows(part))
            for seq, part in enumerate(
                rows[start : start + CHUNK_ROWS] for start in range(0, len(rows), CHUNK_ROWS)
            )
        )
        result = NewResult(new_result_id(), len(rows), len(fields), 0.01, chunks)
        outcomes.append(
            Outcome(item.query_id, batch_id, item.attempt, QueryStatus.SUCCESS, now, result=result)
        )
    store.runs.record_runs.blocking([(i, now) for i in items], [], now + 30, now)
    store.runs.record_runs.blocking([], outcomes, now + 30, now)
    stopped = store.jobs.get_batch.blocking("acme", batch_id, time.time())
    assert stopped is not None and stopped.status is BatchStatus.STOPPED
    return stopped


def columns_of(batch: BatchRecord) -> Columns:
    ids = ["schedule_id", *batch.columns]
    types = {"schedule_id": "string", "date": "date", "campaign": "string", "clicks": "int"}
    return Columns(ids, ids, [types[i] for i in ids])


async def download(store: Store, batch: BatchRecord, fmt: str) -> bytes:
    columns = columns_of(batch)
    packed = "lines" if fmt == "ndjson" else "rows"
    blocks = batch_stored_rows(store, batch.id, columns, through=batch.query_amount, packed=packed)
    return b"".join([part async for part in download_stream(fmt, columns, blocks)])


def packed_ranges(store: Store) -> list[tuple[int, int]]:
    with store.db.reading() as conn:
        rows = conn.execute(
            select(batch_packs.c.first_position, batch_packs.c.last_position).order_by(
                batch_packs.c.first_position
            )
        )
        return [(int(first), int(last)) for first, last in rows]


async def test_a_download_is_the_same_read_from_packs_as_from_each_result(store: Store) -> None:
    batch = finished_batch(store, 2500, large=1500)
    assert batch.columns == ("date", "campaign", "clicks")
    before = {fmt: await download(store, batch, fmt) for fmt in FORMATS}
    assert before["ndjson"].count(b"\n") > 2000

    packer = Packer(store, every=30.0, least_queries=1, pause=0.0)
    assert await packer.run_pass() == 2
    # The middle range holds a result larger than a pack takes: it is read as before.
    assert packed_ranges(store) == [(0, 1000), (2000, 2500)]
    assert store.packs.unpacked.blocking(time.time(), 1, 10) == []
    for fmt in FORMATS:
        assert await download(store, batch, fmt) == before[fmt], fmt
    assert await packer.run_pass() == 0  # nothing left to pack


async def test_a_batch_too_small_or_not_stopped_is_not_packed(store: Store) -> None:
    batch = finished_batch(store, 50)
    assert await Packer(store, every=30.0).run_pass() == 0  # fewer than it takes
    assert packed_ranges(store) == []
    assert await Packer(store, every=30.0, least_queries=50, pause=0.0).run_pass() == 1
    assert packed_ranges(store) == [(0, 50)]
    # Once expired, a batch is not packed any more (nor read).
    later = store.packs.unpacked.blocking(batch.end_time + TTL + 1, 1, 10)  # type: ignore[operator]
    assert later == []


async def test_a_range_is_packed_once_whoever_packs_it(store: Store) -> None:
    batch = finished_batch(store, 20)
    pack = PackedRange(1, b"r", 1, b"l", 1)
    assert store.packs.write.blocking(batch.id, 0, 20, pack)
    assert not store.packs.write.blocking(batch.id, 0, 20, pack)  # another packer
    assert packed_ranges(store) == [(0, 20)]


async def test_expiry_deletes_a_batch_s_packs_a_few_at_a_time_before_it(store: Store) -> None:
    batch = finished_batch(store, 2500)
    await Packer(store, every=30.0, least_queries=1, pause=0.0).run_pass()
    assert len(packed_ranges(store)) == 3
    assert batch.end_time is not None
    expired = batch.end_time + TTL + 1
    first = store.upkeep.expire_slice.blocking(expired, 100)
    # A pack counts for 100 sub-queries: one pack, and no room left.
    assert (first.queries, first.batches, first.done) == (0, 0, False)
    assert len(packed_ranges(store)) == 2
    while not store.upkeep.expire_slice.blocking(expired, 1000).done:
        pass
    assert packed_ranges(store) == []
    with store.db.reading() as conn:
        assert conn.execute(select(func.count()).select_from(batch_packs)).scalar() == 0


async def test_a_pass_starts_when_poked_or_when_it_is_due() -> None:
    clock = [1000.0]
    packer = Packer(None, every=30.0, clock=lambda: clock[0])  # type: ignore[arg-type]
    started: list[float] = []

    async def counted_pass() -> None:
        started.append(clock[0])

    async def start() -> None:
        packer.start()
        if packer._task is not None:
            await packer._task

    packer._logged_pass = counted_pass  # type: ignore[method-assign]
    await start()  # the first start looks at once
    await start()  # not poked, not due
    clock[0] += 10
    packer.poke()
    await start()
    await start()
    clock[0] += 30
    await start()
    assert started == [1000.0, 1010.0, 1040.0]


async def test_a_range_its_download_cannot_lay_out_is_left_unpacked_and_not_looked_at_again(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    batch = finished_batch(store, 150)
    # A column list without a field the sub-queries return: the download fails on it too.
    broken = dataclasses.replace(batch, columns=("date", "clicks"))
    packer = Packer(store, every=30.0, least_queries=1, pause=0.0)
    assert await packer._pack_batch(broken, 0) == 0
    assert "not packed" in caplog.text
    assert packed_ranges(store) == []
    assert store.packs.unpacked.blocking(time.time(), 1, 10) == []  # looked at: not again
