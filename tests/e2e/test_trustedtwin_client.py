"""The official Trusted Twin client (``pip install trustedtwin``), unchanged, against a live
server: it sends the key bare in ``Authorization``, starts with ``who_am_i`` and runs the
whole bulk batch lifecycle."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import httpx
import pytest
import requests
from trustedtwin.tt_api import TTRESTService

from support import ADMIN_KEY, ServerProcess, assert_error, client, wait_until

DEPLOYMENTS = ("embedded",)


def operation(n: int, **overrides: Any) -> dict[str, Any]:
    return {
        "ds_id": "DEMO_ADS",
        "ds_accounts": f"ads-{1 + n % 20:04}",
        "fields": "date,impressions",
        "start_date": "2026-01-01",
        "end_date": "2026-01-03",
        **overrides,
    }


def jsonl(operations: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in operations)


def answer(reply: tuple[int, str], status: int = 200) -> dict[str, Any]:
    code, text = reply
    assert code == status, text
    body: dict[str, Any] = json.loads(text)
    return body


@pytest.fixture
def tt(server: ServerProcess) -> TTRESTService:
    return TTRESTService(tt_auth=ADMIN_KEY, tt_base=server.url)


def upload(tt: TTRESTService, data: bytes) -> str:
    made = answer(tt.create_upload_url(), 201)
    assert made["validity_ts"] > time.time()
    # The signed URL is the credential: the upload goes without the key, as with Trusted Twin.
    put = requests.put(made["url"], data=data, timeout=60)
    assert put.status_code == 200, put.text
    handler: str = made["handler"]
    return handler


def until(tt: TTRESTService, batch: str, statuses: set[str]) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        current = answer(tt.get_batch(batch))
        return current if current["status"] in statuses else None

    found: dict[str, Any] = wait_until(reached, timeout=120, interval=0.05)
    return found


def test_who_am_i_names_the_account_the_key_and_its_role(tt: TTRESTService) -> None:
    me = answer(tt.who_am_i())
    assert me["account"] == "default"
    assert me["role"] == "admin"
    assert me["user"] == me["key"]["id"]
    assert me["key"]["name"] and "secret" not in me["key"]
    assert ADMIN_KEY not in json.dumps(me)
    assert me["statement"] == {"effect": "deny", "actions": []}
    assert isinstance(me["team_id"], int) and me["team_id"] > 0


def test_a_bare_key_an_api_key_and_a_bearer_key_are_the_same_caller(
    server: ServerProcess,
) -> None:
    bare = httpx.get(server.url + "/whoami", headers={"Authorization": ADMIN_KEY})
    bearer = httpx.get(server.url + "/whoami", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    param = httpx.get(server.url + "/whoami", params={"api_key": ADMIN_KEY})
    assert bare.status_code == bearer.status_code == param.status_code == 200
    assert bare.json()["user"] == bearer.json()["user"] == param.json()["user"]


@pytest.mark.parametrize(
    "header", ["qb_not_a_key_of_this_server_at_all_000000", "Basic " + ADMIN_KEY, "Bearer", ""]
)
def test_a_bad_authorization_is_401_advertising_bearer(server: ServerProcess, header: str) -> None:
    code, text = TTRESTService(tt_auth=header or None, tt_base=server.url).who_am_i()
    assert code == 401, text
    response = httpx.get(
        server.url + "/whoami", headers={"Authorization": header} if header else {}
    )
    assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_the_full_bulk_lifecycle_through_the_client(tt: TTRESTService) -> None:
    data = jsonl([operation(n) for n in range(20)])
    digest = hashlib.sha256(data).hexdigest()

    # Created from the client's own body template: every optional field null.
    plain = answer(
        tt.create_batch(
            body={
                "handler": upload(tt, data),
                "operation": "get_data",
                "hash": None,
                "batch_dict": None,
            }
        ),
        201,
    )
    assert plain["status"] == "new" and "hash" not in plain
    hashed = answer(
        tt.create_batch(
            body={
                "handler": upload(tt, data),
                "operation": "get_data",
                "hash": digest,
                "batch_dict": {"team": "ads"},
            }
        ),
        201,
    )
    assert hashed["hash"] == digest

    for batch in (plain["batch"], hashed["batch"]):
        done = until(tt, batch, {"completed", "validation_failed", "hash_mismatch"})
        assert done["status"] == "completed", done
        link = answer(tt.get_batch(batch, params={"download": True}))["download"]
        assert link["validity_ts"] > time.time()
        results = requests.get(link["url"], timeout=60)
        assert results.status_code == 200
        lines = [json.loads(line) for line in results.content.splitlines()]
        assert [line["line"] for line in lines] == list(range(1, 21))
        assert {line["status"] for line in lines} == {"SUCCESS"}

    listed = answer(tt.get_batches(params={"status": "completed", "limit": 1000}))
    assert {plain["batch"], hashed["batch"]} <= set(listed["batches"])
    assert set(listed["batches"].values()) == {"completed"}

    gone = answer(tt.delete_batch(plain["batch"]))
    assert gone["batch"] == plain["batch"]
    code, _ = tt.get_batch(plain["batch"])
    assert code == 404


def test_a_cancel_through_the_client_stops_the_batch(tt: TTRESTService) -> None:
    slow = [operation(n, settings={"demo_latency_ms": 400}) for n in range(200)]
    batch = answer(
        tt.create_batch(body={"handler": upload(tt, jsonl(slow)), "operation": "get_data"}), 201
    )["batch"]
    until(tt, batch, {"processing"})
    cancelled = answer(tt.update_batch(batch, body={"status": "cancel"}))
    assert cancelled["status"] in ("cancel", "cancelling", "cancelled")
    until(tt, batch, {"cancelled"})
    stopped = answer(tt.get_batches(params={"status": ["cancelled", "cancelling"]}))
    assert batch in stopped["batches"]
    completed = answer(tt.get_batches(params={"status": "completed", "limit": 1000}))
    assert batch not in completed["batches"]


def test_an_upload_url_can_be_invalidated(tt: TTRESTService) -> None:
    made = answer(tt.create_upload_url(), 201)
    withdrawn = answer(tt.invalidate_upload_url(made["handler"]))
    assert withdrawn["handler"] == made["handler"]
    put = requests.put(made["url"], data=b"{}\n", timeout=60)
    assert put.status_code == 404


def test_the_status_filter_takes_several_statuses_and_refuses_unknown_ones(
    server: ServerProcess,
) -> None:
    with client(server) as api:
        both = api.get("/batches", params={"status": "completed,cancelled"})
        assert both.status_code == 200
        assert set(both.json()["batches"].values()) <= {"completed", "cancelled"}
        body = assert_error(api.get("/batches", params={"status": "finished"}), 400, "BAD_REQUEST")
        assert "status" in body["error"]["message"]


def test_create_batch_still_refuses_fields_it_does_not_know(server: ServerProcess) -> None:
    with client(server) as api:
        handler = api.post("/cache").json()["handler"]
        body = {"handler": handler, "operation": "get_data", "batch_dictionary": {}}
        assert_error(api.post("/batches", json=body), 400, "BAD_REQUEST")
        bad_dict = {"handler": handler, "operation": "get_data", "batch_dict": {"Bad Key": 1}}
        assert_error(api.post("/batches", json=bad_dict), 400, "BAD_REQUEST")
