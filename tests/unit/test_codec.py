"""Typed specs and settings in, the same bytes on disk and on the broker as before, typed out.

The pinned texts and fingerprints are what earlier versions wrote: a store filled by them
must keep its cache hits and derived schedule ids, and a worker of one version must read the
work items of another.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import orjson
from sqlalchemy import Text, cast, select

from querybatch.domain.batch import BatchSettings, PieceTemplate, PlannedQuery
from querybatch.domain.query import DataRequest, QuerySpec, build_spec, fingerprint_of
from querybatch.store.codec import (
    StoredSettings,
    decode_settings,
    decode_spec,
    encode_settings,
    encode_spec,
    work_item_from_payload,
    work_item_payload,
)
from querybatch.store.records import WorkItem
from querybatch.store.store import Store
from querybatch.store.tables import batches, queries

REQUEST = {
    "ds_id": "DEMO_ADS",
    "ds_accounts": "ads-0001,ads-0002",
    "start_date": "2026-01-01",
    "end_date": "2026-01-31",
    "fields": "date,campaign_name,clicks",
    "filter": "clicks > 3 AND campaign_name =@ brand",
    "order_rows": "clicks desc",
    "max_rows": 50,
    "settings": {"demo_rows_per_day": 2, "x": [1, 2.5, None]},
}
STORED_SPEC = (
    '{"ds_id":"DEMO_ADS","accounts":["ads-0001","ads-0002"],"start_date":"2026-01-01",'
    '"end_date":"2026-01-31","fields":["date","campaign_name","clicks"],"segments":[],'
    '"users":[],"filter":"clicks > 3 AND campaign_name =@ brand","order_rows":["clicks desc"],'
    '"max_rows":50,"settings":{"demo_rows_per_day":2,"x":[1,2.5,null]},'
    '"date_range_type":null,"compare_type":null}'
)
FINGERPRINT = "6aef4da3a99d972606b2ee6ee1a0aef736201e0a105cdfce83e6b67c3f194cea"
STORED_SETTINGS = (
    '{"description":"é","split_accounts_policy":"none","split_dates_policy":"week",'
    '"timeout_minutes":30,"query_concurrency":5,"query_output_format":"json",'
    '"add_exclude_account_errors":false,"add_clean_data_types":false,'
    '"schedule_time":"2026-03-01T10:00:00+02:00","callback_url":"https://hooks.example/x",'
    '"columns":["date","clicks"]}'
)


def spec() -> QuerySpec:
    return build_spec(DataRequest.model_validate(REQUEST), date(2026, 2, 1))


def settings() -> BatchSettings:
    return BatchSettings.model_validate(
        {
            "description": "é",
            "split_dates_policy": "week",
            "schedule_time": "2026-03-01T10:00:00+02:00",
            "callback_url": "https://hooks.example/x",
        }
    )


def test_a_spec_is_stored_as_the_text_earlier_versions_wrote_and_read_back_typed() -> None:
    assert encode_spec(spec()) == STORED_SPEC
    assert decode_spec(STORED_SPEC) == spec()
    assert decode_spec(STORED_SPEC).start_date == date(2026, 1, 1)


def test_the_fingerprint_is_the_one_earlier_versions_computed() -> None:
    assert spec().fingerprint() == FINGERPRINT
    assert fingerprint_of(orjson.loads(STORED_SPEC)) == FINGERPRINT
    assert spec().derived_schedule_id() == FINGERPRINT[:40]


def test_a_planned_piece_is_the_query_it_narrows_in_every_form() -> None:
    whole = spec()
    piece = PlannedQuery.piece(
        "qrb_000000000001_query_2",
        whole,
        PieceTemplate(whole),
        ("ads-0002",),
        date(2026, 1, 5),
        date(2026, 1, 11),
    )
    narrowed = whole.narrowed(("ads-0002",), date(2026, 1, 5), date(2026, 1, 11))
    assert piece.spec == narrowed
    assert orjson.loads(piece.spec_text) == narrowed.canonical()
    assert decode_spec(piece.spec_text) == narrowed
    assert piece.fingerprint == narrowed.fingerprint() != whole.fingerprint()
    assert PlannedQuery.whole("s", whole).fingerprint == FINGERPRINT


def test_batch_settings_are_stored_as_before_and_read_back_typed() -> None:
    assert encode_settings(StoredSettings(settings(), ("date", "clicks"))) == STORED_SETTINGS
    stored = decode_settings(STORED_SETTINGS)
    assert stored == StoredSettings(settings(), ("date", "clicks"))
    assert stored.settings is not None
    assert stored.settings.schedule_time == datetime(2026, 3, 1, 8, tzinfo=UTC)
    assert stored.settings.schedule_time.utcoffset() == timedelta(hours=2)
    # Every query of a batch carries its settings: they are read once per distinct text.
    assert decode_settings(STORED_SETTINGS) is stored


def test_a_batchs_sequence_is_stored_beside_its_settings_and_absent_reads_as_none() -> None:
    stored = StoredSettings(settings(), ("date",), "backfill-7")
    text = encode_settings(stored)
    assert decode_settings(text) == stored
    # Batches stored before sequences existed (and every batch outside one) have none.
    assert decode_settings(STORED_SETTINGS).sequence is None
    assert '"sequence"' not in encode_settings(StoredSettings(settings(), ("date",)))


def test_a_data_requests_batch_stores_no_settings_and_reads_the_defaults() -> None:
    assert encode_settings(StoredSettings(None)) == "{}"
    assert decode_settings("{}") == StoredSettings(BatchSettings(), ())


def test_a_work_item_travels_to_workers_as_the_same_json_as_before() -> None:
    item = WorkItem(7, "qrb_000000000001", "acme", 2, spec(), FINGERPRINT, True, False)
    payload = orjson.dumps(work_item_payload(item))
    assert payload == (
        b'{"query_id":7,"batch_id":"qrb_000000000001","account":"acme","attempt":2,"spec":'
        + STORED_SPEC.encode()
        + b',"fingerprint":"'
        + FINGERPRINT.encode()
        + b'","exclude_account_errors":true,"takeover":false}'
    )
    received = work_item_from_payload(orjson.loads(payload), takeover=True)
    assert received.spec == spec()
    assert (received.query_id, received.takeover) == (7, True)


def test_a_filter_is_parsed_once_for_every_query_that_holds_it() -> None:
    first, second = spec(), spec().narrowed(("ads-0009",), date(2026, 1, 1), date(2026, 1, 1))
    assert first.parsed_filter is not None
    assert first.parsed_filter is second.parsed_filter
    assert first.order_keys is second.order_keys
    assert [(key.field, key.descending) for key in first.order_keys] == [("clicks", True)]


def test_the_store_keeps_the_old_bytes_and_hands_out_typed_records(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'codec.db'}", result_ttl=3600)
    try:
        now = time.time()
        whole = spec()
        batch = store.jobs.create_batch.blocking(
            batch_id="qrb_000000000001",
            kind="batch",
            account="acme",
            key_id="key_1",
            settings=settings(),
            columns=("date", "clicks"),
            query_concurrency=5,
            timeout_seconds=600,
            schedule_time=now,
            subqueries=[PlannedQuery.whole("qrb_000000000001_query_1", whole)],
            now=now,
        )
        assert (batch.settings, batch.columns) == (settings(), ("date", "clicks"))
        query = store.jobs.get_query.blocking("acme", "qrb_000000000001_query_1", now)
        assert query is not None
        assert (query.spec, query.fingerprint, query.batch_settings) == (
            whole,
            FINGERPRINT,
            settings(),
        )
        with store.db.reading() as conn:
            raw_spec = conn.execute(select(cast(queries.c.spec, Text))).scalar()
            raw_settings = conn.execute(select(cast(batches.c.settings, Text))).scalar()
        assert (raw_spec, raw_settings) == (STORED_SPEC, STORED_SETTINGS)
    finally:
        store.close()


def test_a_schedule_time_in_another_zone_comes_back_as_the_same_instant() -> None:
    local = BatchSettings(
        schedule_time=datetime(2026, 3, 1, 5, tzinfo=timezone(-timedelta(hours=3)))
    )
    stored = decode_settings(encode_settings(StoredSettings(local)))
    assert stored.settings is not None and stored.settings.schedule_time == local.schedule_time
