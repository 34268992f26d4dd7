"""The leader's reading of its workers' notices: the sub-queries that ended, and the batches
their ends stopped, from workers of this release and of the one before (a bare list)."""

from __future__ import annotations

from pathlib import Path

import orjson
from fakes import spec

from querybatch.domain.query import QuerySpec
from querybatch.engine.executors.celery import CeleryExecutor
from querybatch.settings import Settings
from querybatch.store.records import WorkItem
from querybatch.store.store import Store


def item(query_id: int, attempt: int = 1) -> WorkItem:
    return WorkItem(
        query_id=query_id,
        batch_id="qrb_notice",
        account="acct",
        attempt=attempt,
        spec=QuerySpec.model_validate(spec("acc-1")),
        fingerprint="f",
        exclude_account_errors=False,
    )


def test_ends_and_stops_are_heard_in_either_form(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'qb.db'}", result_ttl=60)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'qb.db'}", data_dir=tmp_path)
    executor = CeleryExecutor(settings, store)
    done: list[int] = []
    stopped: list[list[str]] = []
    executor._on_done = lambda items: done.extend(i.query_id for i in items)
    executor._on_stopped = stopped.append
    try:
        # Handed out as submit() records them (without reaching for a broker).
        for query_id in (1, 2, 3):
            executor._dispatched[query_id] = item(query_id)
        executor._heard(orjson.loads(orjson.dumps([[1, 1]])))  # an earlier release's notice
        executor._heard(orjson.loads(orjson.dumps({"ended": [[2, 1], [3, 9]], "stopped": []})))
        assert done == [1, 2] and stopped == []  # 3's notice is of another attempt
        executor._heard({"ended": [[3, 1]], "stopped": ["qrb_notice"]})
        assert done == [1, 2, 3] and stopped == [["qrb_notice"]]
        executor._heard({"stopped": ["qrb_other"]})  # no "ended": nothing ends, nothing fails
        assert done == [1, 2, 3] and stopped == [["qrb_notice"], ["qrb_other"]]
    finally:
        executor._sender.shutdown()
        store.close()
