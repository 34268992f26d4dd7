"""Bulk file batches through a real server: upload, lifecycle, results, cancel, delete, links."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from support import ServerProcess, assert_error, client, run_cli, running_server, wait_until

LIFECYCLE = [
    "new",
    "copying",
    "copied",
    "validating",
    "processing",
    "processed",
    "writing_results",
    "completed",
]


def op(n: int = 0, **overrides: Any) -> dict[str, Any]:
    day = 1 + n % 28
    return {
        "ds_id": "DEMO_ADS",
        "ds_accounts": f"ads-{1 + n % 20:04}",
        "fields": "date,impressions",
        "start_date": f"2026-01-{day:02}",
        "end_date": f"2026-02-{day:02}",
        **overrides,
    }


def jsonl(operations: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(o) + b"\n" for o in operations)


def upload(api: httpx.Client, data: bytes) -> str:
    made = api.post("/cache")
    assert made.status_code == 201, made.text
    # The signed URL is the credential: no API key goes with the PUT.
    put = httpx.put(made.json()["url"], content=data, timeout=60)
    assert put.status_code == 200, put.text
    assert put.json()["sha256"] == hashlib.sha256(data).hexdigest()
    handler: str = made.json()["handler"]
    return handler


def create(api: httpx.Client, data: bytes, **body: Any) -> dict[str, Any]:
    handler = upload(api, data)
    response = api.post("/batches", json={"handler": handler, "operation": "get_data", **body})
    assert response.status_code == 201, response.text
    batch: dict[str, Any] = response.json()
    return batch


def until(
    api: httpx.Client, batch: str, statuses: set[str], seen: list[str] | None = None
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        current: dict[str, Any] = api.get(f"/batches/{batch}").json()
        if seen is not None and (not seen or seen[-1] != current["status"]):
            seen.append(current["status"])
        return current if current["status"] in statuses else None

    found: dict[str, Any] = wait_until(reached, timeout=120, interval=0.02)
    return found


def results(api: httpx.Client, batch: str) -> list[dict[str, Any]]:
    link = api.get(f"/batches/{batch}", params={"download": "true"}).json()["download"]
    assert link["validity_ts"] > time.time()
    response = httpx.get(link["url"], timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [orjson.loads(line) for line in response.content.splitlines()]


def query_batches(server: ServerProcess) -> int:
    return server.count("batches")


def test_a_file_of_thousands_of_operations_runs_to_completion(
    api: httpx.Client, server: ServerProcess
) -> None:
    operations = [op(n) for n in range(3000)]
    data = jsonl(operations)
    digest = hashlib.sha256(data).hexdigest()
    batch = create(api, data, hash=digest, description={"team": "ads", "run_2": 2})
    assert set(batch) == {"meta", "batch", "created_ts", "updated_ts", "status", "hash"}
    assert str(uuid.UUID(batch["batch"])) == batch["batch"]
    assert batch["status"] == "new" and batch["hash"] == digest
    assert batch["created_ts"] == batch["updated_ts"] == round(batch["created_ts"], 3)

    seen: list[str] = []
    done = until(api, batch["batch"], {"completed", "validation_failed"}, seen)
    assert done["status"] == "completed", done
    assert done["lines"] == {"total": 3000, "done": 3000, "failed": 0}
    # Every status shown was written in lifecycle order; none was skipped backwards.
    assert seen == sorted(seen, key=LIFECYCLE.index)
    assert done["updated_ts"] >= done["created_ts"]

    lines = results(api, batch["batch"])
    assert [line["line"] for line in lines] == list(range(1, 3001))
    assert {line["status"] for line in lines} == {"SUCCESS"}
    for line in lines[:5]:
        result = line["result"]
        assert result["fields"] == ["date", "impressions"]
        assert result["total_rows"] == len(result["rows"]) == 32
    # Line 7 holds the rows the same query gives through /query/data.
    direct = api.get("/query/data/json", params={**operations[6], "max_rows": 1000}).json()
    # (json output gives every value as text; the results file keeps the stored types)
    typed = lines[6]["result"]["rows"]
    assert [[str(value) for value in row] for row in typed] == direct["data"][1:]
    # The operations ran as one query batch, in line order.
    stored = server.sql(
        "SELECT query_amount, settings FROM batches WHERE id = "
        "(SELECT query_batch_id FROM bulk_batches WHERE id = :id)",
        id=batch["batch"],
    )
    assert stored[0][0] == 3000
    assert lines[0]["result"]["schedule_id"].endswith("_query_1")


def test_a_wrong_hash_ends_in_hash_mismatch_and_runs_nothing(
    api: httpx.Client, server: ServerProcess
) -> None:
    before = query_batches(server)
    batch = create(api, jsonl([op(n) for n in range(50)]), hash="0" * 64)
    done = until(api, batch["batch"], {"hash_mismatch", "completed"})
    assert done["status"] == "hash_mismatch"
    assert done["hash"] == "0" * 64
    assert (
        api.get(f"/batches/{batch['batch']}", params={"download": "true"}).json()["download"]
        is None
    )
    assert query_batches(server) == before


def test_a_file_with_bad_lines_fails_validation_naming_each_and_runs_nothing(
    api: httpx.Client, server: ServerProcess
) -> None:
    lines = [orjson.dumps(op(n)) for n in range(1000)]
    bad = {
        3: b"{not json",
        10: b"[1, 2]",
        100: orjson.dumps(op(fields="date,no_such_field")),
        250: orjson.dumps(op(ds_id="")),
        500: orjson.dumps(op(start_date="someday")),
        600: b"",
        999: orjson.dumps(op(ds_id="NO_SUCH_SOURCE")),
        1000: orjson.dumps(op(max_rows=0)),
    }
    for number, text in bad.items():
        lines[number - 1] = text
    before = query_batches(server)
    batch = create(api, b"\n".join(lines) + b"\n")
    done = until(api, batch["batch"], {"validation_failed", "completed"})
    assert done["status"] == "validation_failed"
    assert done["lines"] == {"total": 1000, "done": 0, "failed": len(bad)}
    assert query_batches(server) == before
    report = results(api, batch["batch"])
    assert [entry["line"] for entry in report] == sorted(bad)
    assert {entry["status"] for entry in report} == {"INVALID"}
    by_line = {entry["line"]: entry["error"] for entry in report}
    assert "not valid JSON" in by_line[3]["message"]
    assert "JSON object" in by_line[10]["message"]
    assert "'fields'" in by_line[100]["message"] and "no_such_field" in by_line[100]["description"]
    assert "'ds_id'" in by_line[250]["message"]
    assert "'start_date'" in by_line[500]["message"]
    assert "empty" in by_line[600]["message"]
    assert "'ds_id'" in by_line[999]["message"]
    assert "'max_rows'" in by_line[1000]["message"]


def test_an_empty_file_fails_validation(api: httpx.Client) -> None:
    batch = create(api, b"")
    done = until(api, batch["batch"], {"validation_failed", "completed"})
    assert done["status"] == "validation_failed"
    assert results(api, batch["batch"])[0]["line"] == 0


def slow_batch(api: httpx.Client, n: int = 300, latency: int = 500) -> dict[str, Any]:
    slow = [op(i, settings={"demo_latency_ms": latency}) for i in range(n)]
    return create(api, jsonl(slow))


def test_a_cancel_while_processing_keeps_the_results_of_finished_operations(
    api: httpx.Client, server: ServerProcess
) -> None:
    batch = slow_batch(api)
    until(api, batch["batch"], {"processing"})

    def some_finished() -> bool:
        rows = server.sql(
            "SELECT n_success FROM batches WHERE id = "
            "(SELECT query_batch_id FROM bulk_batches WHERE id = :id)",
            id=batch["batch"],
        )
        return bool(rows and rows[0][0] > 0)

    wait_until(some_finished, timeout=30)
    # A batch at work tells its pollers when to ask again; an ended one does not.
    assert int(api.get(f"/batches/{batch['batch']}").headers["retry-after"]) >= 1
    cancel = api.patch(f"/batches/{batch['batch']}", json={"status": "cancel"})
    assert cancel.status_code == 200, cancel.text
    assert cancel.json()["status"] in ("cancel", "cancelling", "cancelled")
    seen: list[str] = []
    done = until(api, batch["batch"], {"cancelled"}, seen)
    assert set(seen) <= {"cancel", "cancelling", "cancelled"}
    assert seen == sorted(seen, key=["cancel", "cancelling", "cancelled"].index)

    lines = results(api, batch["batch"])
    assert [line["line"] for line in lines] == list(range(1, 301))
    statuses = [line["status"] for line in lines]
    assert "SUCCESS" in statuses and "STOPPED" in statuses
    assert done["lines"] == {"total": 300, "done": 300, "failed": statuses.count("STOPPED")}
    assert all(line["result"]["rows"] for line in lines if line["status"] == "SUCCESS")
    assert all(line["error"]["code"] for line in lines if line["status"] == "STOPPED")
    cancel_time = server.sql(
        "SELECT cancel_time FROM batches WHERE id = "
        "(SELECT query_batch_id FROM bulk_batches WHERE id = :id)",
        id=batch["batch"],
    )[0][0]
    assert cancel_time is not None
    # Cancelling again is harmless and changes nothing.
    again = api.patch(f"/batches/{batch['batch']}", json={"status": "cancel"})
    assert again.status_code == 200
    assert again.json()["status"] == "cancelled"
    assert again.json()["updated_ts"] == done["updated_ts"]
    assert "retry-after" not in api.get(f"/batches/{batch['batch']}").headers


def test_a_finished_batch_cannot_be_cancelled_and_stays_as_it_was(api: httpx.Client) -> None:
    batch = create(api, jsonl([op(1)]))
    done = until(api, batch["batch"], {"completed"})
    body = assert_error(
        api.patch(f"/batches/{batch['batch']}", json={"status": "cancel"}), 409, "CONFLICT_ERROR"
    )
    assert "completed" in body["error"]["message"]
    assert api.get(f"/batches/{batch['batch']}").json() | {"meta": None} == done | {"meta": None}


@pytest.mark.deployments("embedded")  # refused while the body is parsed
@pytest.mark.parametrize("body", [{"status": "completed"}, {"status": "nope"}, {}])
def test_a_patch_other_than_cancel_is_refused(api: httpx.Client, body: dict[str, Any]) -> None:
    batch = create(api, jsonl([op(1)]))
    done = until(api, batch["batch"], {"completed"})
    assert_error(api.patch(f"/batches/{batch['batch']}", json=body), 400, "BAD_REQUEST")
    assert api.get(f"/batches/{batch['batch']}").json()["updated_ts"] == done["updated_ts"]


def test_a_deleted_batch_and_its_files_are_gone(api: httpx.Client, server: ServerProcess) -> None:
    batch = create(api, jsonl([op(n) for n in range(20)]))
    batch_id = batch["batch"]
    until(api, batch_id, {"completed"})
    link = api.get(f"/batches/{batch_id}", params={"download": "true"}).json()["download"]
    assert server.sql("SELECT count(*) FROM bulk_files WHERE batch_id = :id", id=batch_id)[0][0]
    deleted = api.delete(f"/batches/{batch_id}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["status"] == "deleting"
    assert_error(api.get(f"/batches/{batch_id}"), 404, "NOT_FOUND")
    assert_error(api.patch(f"/batches/{batch_id}", json={"status": "cancel"}), 404, "NOT_FOUND")
    assert_error(api.delete(f"/batches/{batch_id}"), 404, "NOT_FOUND")
    assert_error(httpx.get(link["url"]), 404, "NOT_FOUND")
    assert server.sql("SELECT count(*) FROM bulk_files WHERE batch_id = :id", id=batch_id) == [(0,)]
    assert server.sql("SELECT count(*) FROM bulk_batches WHERE id = :id", id=batch_id) == [(0,)]
    orphans = (
        "SELECT count(*) FROM bulk_file_chunks WHERE file_id NOT IN (SELECT id FROM bulk_files)"
    )
    assert server.sql(orphans) == [(0,)]
    assert batch_id not in api.get("/batches", params={"limit": 1000}).json()["batches"]


def test_deleting_a_processing_batch_stops_its_operations(
    api: httpx.Client, server: ServerProcess
) -> None:
    batch = slow_batch(api, n=200, latency=1000)
    until(api, batch["batch"], {"processing"})
    query_batch = server.sql(
        "SELECT query_batch_id FROM bulk_batches WHERE id = :id", id=batch["batch"]
    )[0][0]
    assert api.delete(f"/batches/{batch['batch']}").status_code == 200
    assert_error(api.get(f"/batches/{batch['batch']}"), 404, "NOT_FOUND")
    status = server.sql("SELECT status, cancel_time FROM batches WHERE id = :id", id=query_batch)
    assert status[0][0] == "STOPPED" and status[0][1] is not None


def test_uploads_take_one_file_and_can_be_withdrawn(
    api: httpx.Client, server: ServerProcess
) -> None:
    made = api.post("/cache").json()
    assert set(made) == {"meta", "url", "handler", "validity_ts"}
    assert made["validity_ts"] == pytest.approx(time.time() + 3600, abs=30)
    first = jsonl([op(1)])
    assert httpx.put(made["url"], content=first).status_code == 200
    chunks = server.count("bulk_file_chunks")
    assert_error(httpx.put(made["url"], content=b"other"), 409, "CONFLICT_ERROR")
    assert server.count("bulk_file_chunks") == chunks
    # The first file is still the upload's content.
    batch = api.post(
        "/batches",
        json={
            "handler": made["handler"],
            "operation": "get_data",
            "hash": hashlib.sha256(first).hexdigest(),
        },
    ).json()
    assert until(api, batch["batch"], {"completed", "hash_mismatch"})["status"] == "completed"
    # A batch keeps its own copy: withdrawing the upload leaves its results alone.
    withdrawn = api.delete(f"/cache/{made['handler']}")
    assert withdrawn.status_code == 200 and withdrawn.json()["deleted"] is True
    assert_error(api.delete(f"/cache/{made['handler']}"), 404, "NOT_FOUND")
    assert_error(httpx.put(made["url"], content=first), 404, "NOT_FOUND")
    assert len(results(api, batch["batch"])) == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"operation": "get_data"}, 400, "BAD_REQUEST"),
        ({"handler": "{handler}", "operation": "delete_everything"}, 400, "BAD_REQUEST"),
        ({"handler": "{handler}", "operation": "get_data", "hash": "xyz"}, 400, "BAD_REQUEST"),
        (
            {"handler": "{handler}", "operation": "get_data", "description": {"Bad Key": 1}},
            400,
            "BAD_REQUEST",
        ),
        ({"handler": "upl_unknown", "operation": "get_data"}, 404, "NOT_FOUND"),
        ({"handler": "{empty}", "operation": "get_data"}, 409, "CONFLICT_ERROR"),
    ],
)
def test_a_bad_create_request_is_refused_and_creates_nothing(
    api: httpx.Client, server: ServerProcess, body: dict[str, Any], status: int, code: str
) -> None:
    filled = upload(api, jsonl([op(1)]))
    empty = api.post("/cache").json()["handler"]
    names = {"{handler}": filled, "{empty}": empty}
    body = {k: names.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    before = server.count("bulk_batches")
    assert_error(api.post("/batches", json=body), status, code)
    assert server.count("bulk_batches") == before


def test_an_unknown_or_malformed_batch_is_not_found(api: httpx.Client) -> None:
    for batch in (str(uuid.uuid4()), "not-a-uuid", str(uuid.uuid4()).upper()):
        assert_error(api.get(f"/batches/{batch}"), 404, "NOT_FOUND")


def test_the_list_pages_with_a_cursor_and_filters_on_created_ts(
    api: httpx.Client, server: ServerProcess
) -> None:
    # The list of one tenant only: a fresh account.
    key = run_cli(
        server, "keys", "create", "--name", "lister", "--account", "t-list", "--quiet"
    ).stdout.strip()
    with client(server, key) as tenant:
        ids = [create(tenant, jsonl([op(n)]))["batch"] for n in range(5)]
        created = {b: tenant.get(f"/batches/{b}").json()["created_ts"] for b in ids}
        pages: list[dict[str, str]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            page = tenant.get("/batches", params=params).json()
            pages.append(page["batches"])
            cursor = page["cursor"]
            if cursor is None:
                break
        assert [len(p) for p in pages] == [2, 2, 1]
        assert [b for p in pages for b in p] == ids  # oldest first
        window = {"ge": created[ids[1]], "le": created[ids[3]]}
        newest = tenant.get("/batches", params=window).json()
        assert list(newest["batches"]) == [ids[3], ids[2], ids[1]]  # newest first
        first = tenant.get("/batches", params=window | {"limit": 2}).json()
        second = tenant.get("/batches", params=window | {"cursor": first["cursor"]}).json()
        assert [*first["batches"], *second["batches"]] == [ids[3], ids[2], ids[1]]
        since = tenant.get("/batches", params={"ge": created[ids[3]]}).json()
        assert list(since["batches"]) == ids[3:]
        assert set(since["batches"].values()) <= set(LIFECYCLE)
        assert_error(tenant.get("/batches", params={"cursor": "%%%"}), 400, "BAD_REQUEST")
        assert_error(tenant.get("/batches", params={"limit": 1001}), 400, "BAD_REQUEST")
        assert_error(tenant.get("/batches", params={"ge": 10, "le": 5}), 400, "BAD_REQUEST")


# -- links, sizes and restarts: servers of their own ---------------------------------------


@pytest.fixture
def short_links(data_dir: Path) -> Iterator[ServerProcess]:
    with running_server(
        # Long enough for the forged requests to be refused before a busy machine lets the
        # genuine link expire; the tests then wait for the expiry the link itself names.
        data_dir,
        QB_UPLOAD_TTL="5",
        QB_DOWNLOAD_TTL="5",
        QB_MAX_UPLOAD_BYTES="4096",
    ) as started:
        yield started


def tampered(url: str, old: str, new: str) -> str:
    assert old in url
    return url.replace(old, new, 1)


# A link's signature and expiry are checked before the store is read.
@pytest.mark.deployments("embedded")
def test_upload_links_refuse_tampering_and_expire(short_links: ServerProcess) -> None:
    with client(short_links) as api:
        made = api.post("/cache").json()
        other = api.post("/cache").json()
        url = made["url"]
        signature = url.rsplit("signature=", 1)[1]
        forged = [
            tampered(url, signature, signature[::-1]),
            tampered(url, f"expires={made['validity_ts']:.3f}", "expires=9999999999.000"),
            tampered(url, made["handler"], other["handler"]),
            url.split("&signature=")[0],
            url.split("?")[0],
        ]
        for link in forged:
            assert_error(httpx.put(link, content=b"{}\n"), 403, "LINK_INVALID")
        # The genuine link still works under another API prefix: nothing was stored before.
        prefixed = url.replace("/cache/", "/v2/cache/")
        assert httpx.put(prefixed, content=jsonl([op(1)])).status_code == 200
        time.sleep(max(0.0, other["validity_ts"] - time.time()) + 0.2)
        body = assert_error(httpx.put(other["url"], content=b"{}\n"), 403, "LINK_EXPIRED")
        assert "expired" in body["error"]["message"]
        assert short_links.sql(
            "SELECT state FROM bulk_files WHERE id = :id", id=other["handler"]
        ) == [("pending",)]


@pytest.mark.deployments("embedded")  # as the upload links
def test_download_links_refuse_tampering_and_expire(short_links: ServerProcess) -> None:
    with client(short_links) as api:
        first = create(api, jsonl([op(1)]))["batch"]
        second = create(api, jsonl([op(2)]))["batch"]
        for batch in (first, second):
            until(api, batch, {"completed"})
        link = api.get(f"/batches/{first}", params={"download": "true"}).json()["download"]
        url = link["url"]
        signature = url.rsplit("signature=", 1)[1]
        assert_error(httpx.get(tampered(url, first, second)), 403, "LINK_INVALID")
        assert_error(httpx.get(tampered(url, signature, "0" * 64)), 403, "LINK_INVALID")
        assert_error(
            httpx.get(tampered(url, f"expires={link['validity_ts']:.3f}", "expires=1e12")),
            403,
            "LINK_INVALID",
        )
        assert httpx.get(url).status_code == 200
        time.sleep(max(0.0, link["validity_ts"] - time.time()) + 0.2)
        assert_error(httpx.get(url), 403, "LINK_EXPIRED")


def test_an_upload_over_the_size_limit_is_refused_and_leaves_the_upload_empty(
    short_links: ServerProcess,
) -> None:
    with client(short_links) as api:
        made = api.post("/cache").json()
        chunks = short_links.count("bulk_file_chunks")
        files = short_links.count("bulk_files")
        body = assert_error(httpx.put(made["url"], content=b"x" * 5000), 413, "PAYLOAD_TOO_LARGE")
        assert "4096" in body["error"]["message"]

        def streamed() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            for _ in range(10):
                yield b"y" * 1000

        assert_error(httpx.put(made["url"], content=streamed()), 413, "PAYLOAD_TOO_LARGE")
        assert short_links.count("bulk_file_chunks") == chunks
        assert short_links.count("bulk_files") == files
        refused = api.post("/batches", json={"handler": made["handler"], "operation": "get_data"})
        assert_error(refused, 409, "CONFLICT_ERROR")
        assert httpx.put(made["url"], content=b"z" * 4096).status_code == 200


def test_a_restart_resumes_a_batch_where_it_stood(data_dir: Path) -> None:
    server = ServerProcess(data_dir).start()
    try:
        with client(server) as api:
            batch = create(
                api, jsonl([op(n, settings={"demo_latency_ms": 300}) for n in range(100)])
            )
            until(api, batch["batch"], {"processing"})
        server.kill()
        server = ServerProcess(data_dir).start()
        with client(server) as api:
            done = until(api, batch["batch"], {"completed", "cancelled", "validation_failed"})
            assert done["status"] == "completed"
            lines = results(api, batch["batch"])
            assert [line["line"] for line in lines] == list(range(1, 101))
            assert {line["status"] for line in lines} == {"SUCCESS"}
            # The resumed pipeline found the query batch it had created; it made no other.
            assert server.sql("SELECT count(*) FROM batches WHERE kind = 'batch'") == [(1,)]
    finally:
        server.stop()
