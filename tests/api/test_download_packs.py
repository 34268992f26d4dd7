"""A stopped batch's rows packed for its downloads, through a real server: the same file, byte
for byte and under the same ETag, before and after, and a download resumed across it."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from support import client, running_server, wait_until

FORMATS = ("ndjson", "csv", "parquet")
BATCH = {
    "split_dates_policy": "day",
    "queries": [
        {
            "ds_id": "DEMO_ADS",
            "ds_accounts": ["ads-0001", "ads-0002"],
            "fields": "date,account_id,campaign_name,impressions,cost",
            "start_date": "2026-01-01",
            "end_date": "2026-04-30",
        }
    ],
}


def packed(database_url: str, batch_id: str) -> bool:
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            through, amount, packs = conn.execute(
                sa.text(
                    "SELECT packed_through, query_amount, "
                    "(SELECT count(*) FROM batch_packs WHERE batch_id = :b) "
                    "FROM batches WHERE id = :b"
                ),
                {"b": batch_id},
            ).one()
    finally:
        engine.dispose()
    return bool(through == amount and packs > 0)


def test_a_download_from_packs_is_the_file_it_was_before_and_resumes_across_them(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    with running_server(data, QB_DOWNLOAD_PACKS="false") as server, client(server) as api:
        made = api.post("/query/batch", json=BATCH)
        assert made.status_code == 201, made.text
        batch_id = made.json()["data"]["batch_id"]
        assert made.json()["data"]["query_amount"] == 120

        def stopped() -> bool:
            batch = api.get(f"/query/batch/{batch_id}").json()["data"]
            return bool(batch["status_code"] == "STOPPED")

        wait_until(stopped)
        before = {fmt: api.get(f"/query/batch/{batch_id}/download?format={fmt}") for fmt in FORMATS}
        assert not packed(server.database_url, batch_id)
    assert before["ndjson"].content.count(b"\n") > 120

    with running_server(data) as server, client(server) as api:
        wait_until(lambda: packed(server.database_url, batch_id))
        for fmt in FORMATS:
            after = api.get(f"/query/batch/{batch_id}/download?format={fmt}")
            assert after.status_code == 200
            assert after.content == before[fmt].content, fmt
            assert after.headers["etag"] == before[fmt].headers["etag"]
        # A download begun before the packs were made, resumed from them.
        whole = before["ndjson"]
        middle = len(whole.content) // 2
        rest = api.get(
            f"/query/batch/{batch_id}/download",
            headers={"Range": f"bytes={middle}-", "If-Range": whole.headers["etag"]},
        )
        assert rest.status_code == 206
        assert rest.content == whole.content[middle:]
