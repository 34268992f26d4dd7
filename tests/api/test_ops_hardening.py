"""Operations hardening: rate limits follow the key wherever it is sent, no secret reaches the
logs or other users on disk, csv files cannot carry spreadsheet formulas, and /healthz tells
the truth about a store that refuses writes."""

from __future__ import annotations

import csv
import io
import resource
import secrets
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import (
    ADMIN_KEY,
    ServerProcess,
    assert_error,
    client,
    run_cli,
    running_server,
    scaleout,
    wait_until,
)

# The access log, the data directory, csv escaping and which window a request is charged to
# are the API node's own; windows used up (kept in Redis by a scale-out) and the store's
# health run in both deployments (BOTH).
DEPLOYMENTS = ("embedded",)
BOTH = pytest.mark.deployments("embedded", "scaleout")

QUERY = {
    "ds_id": "DEMO_ADS",
    "ds_accounts": "ads-0001",
    "fields": "date,clicks",
    "start_date": "2026-01-01",
    "end_date": "2026-01-01",
}


def new_key(server: ServerProcess) -> str:
    """A fresh analyst key, made by the CLI so that no request of the server is spent on it."""
    made = run_cli(server, "keys", "create", "--name", "limits", "--quiet")
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]


def remaining(response: httpx.Response) -> int:
    return int(response.headers["x-ratelimit-remaining"])


# -- rate limits ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(deployment: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("limited"), QB_RATE_LIMIT="5") as server:
        yield server


@BOTH
def test_a_key_sent_in_a_json_body_is_refused_once_its_window_is_used_up(
    limited: ServerProcess,
) -> None:
    key = new_key(limited)
    url = limited.url + "/query/data/json"
    answers = [httpx.post(url, json={**QUERY, "api_key": key}, timeout=60) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert [remaining(a) for a in answers] == [4, 3, 2, 1, 0]
    refused = httpx.post(url, json={**QUERY, "api_key": key}, timeout=60)
    assert_error(refused, 429, "TOO_MANY_REQUESTS")
    assert 0 < int(refused.headers["retry-after"]) <= 3601


def test_a_key_counts_to_one_window_whichever_way_it_is_sent(limited: ServerProcess) -> None:
    key = new_key(limited)
    url = limited.url + "/query/data/json"
    as_form = httpx.post(url, data={**QUERY, "api_key": key}, timeout=60)
    as_json_parameter = httpx.get(url, params={"json": f'{{"api_key": "{key}"}}', **QUERY})
    as_parameter = httpx.get(url, params={**QUERY, "api_key": key})
    as_header = httpx.get(url, params=QUERY, headers={"Authorization": f"Bearer {key}"})
    answers = [as_form, as_json_parameter, as_parameter, as_header]
    assert [a.status_code for a in answers] == [200] * 4
    assert [remaining(a) for a in answers] == [4, 3, 2, 1]


def test_keys_behind_one_address_do_not_use_up_each_other(limited: ServerProcess) -> None:
    first, second = new_key(limited), new_key(limited)
    url = limited.url + "/query/data/json"
    for _ in range(6):
        httpx.post(url, json={**QUERY, "api_key": first}, timeout=60)
    answer = httpx.post(url, json={**QUERY, "api_key": second}, timeout=60)
    assert answer.status_code == 200
    assert remaining(answer) == 4


@BOTH
def test_wrong_keys_count_to_the_client_address_and_not_to_a_window_of_their_own(
    limited: ServerProcess,
) -> None:
    # uvicorn trusts X-Forwarded-For from loopback: each test address is a client of its own.
    address = {"X-Forwarded-For": "203.0.113.7"}
    url = limited.url + "/query/data/json"
    wrong = [
        httpx.post(
            url, json={**QUERY, "api_key": f"qb_{secrets.token_urlsafe(32)}"}, headers=address
        )
        for _ in range(5)
    ]
    assert [w.status_code for w in wrong] == [401] * 5
    assert [remaining(w) for w in wrong] == [4, 3, 2, 1, 0]
    refused = httpx.post(url, json={**QUERY, "api_key": "qb_yet_another_guess"}, headers=address)
    assert_error(refused, 429, "TOO_MANY_REQUESTS")
    # A real key from that address still has its own window, and other addresses theirs.
    key = new_key(limited)
    assert httpx.post(url, json={**QUERY, "api_key": key}, headers=address).status_code == 200
    elsewhere = httpx.post(
        url, json={**QUERY, "api_key": "qb_a_guess"}, headers={"X-Forwarded-For": "203.0.113.8"}
    )
    assert_error(elsewhere, 401, "UNAUTHORIZED")


def test_health_is_not_counted_nor_refused_when_the_address_is_used_up(
    limited: ServerProcess,
) -> None:
    address = {"X-Forwarded-For": "203.0.113.9"}
    for _ in range(6):
        httpx.get(limited.url + "/query/status", params={"schedule_id": "x"}, headers=address)
    health = httpx.get(limited.url + "/healthz", headers=address)
    assert health.status_code == 200
    assert health.headers["x-ratelimit-remaining"] == "0"


# -- secrets in logs and on disk ---------------------------------------------------------------


def test_credentials_in_request_urls_are_redacted_from_the_access_log(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", log_level="info").start()
    signature = "ab" * 32
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            http.get("/query/accounts", params={"ds_id": "DEMO_ADS", "api_key": ADMIN_KEY})
            http.get("/query/data/json", params={"json": f'{{"api_key": "{ADMIN_KEY}"}}'})
            http.put("/cache/upl_x", params={"expires": "1", "signature": signature})
            http.get("/healthz", params={"token": "tok-secret", "password": "pass-secret"})
    finally:
        server.stop()
    log = server.log()
    assert "GET /query/accounts?ds_id=DEMO_ADS&api_key=[REDACTED]" in log
    for secret in (ADMIN_KEY, ADMIN_KEY[12:], signature, "tok-secret", "pass-secret"):
        assert secret not in log


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_fresh_data_directory_and_its_database_are_private_to_the_server_user(
    tmp_path: Path,
) -> None:
    fresh = tmp_path / "fresh" / "data"
    with running_server(tmp_path / "server", QB_DATA_DIR=str(fresh)) as server:
        with client(server) as api:
            assert api.get("/query/data/json", params=QUERY).status_code == 200
        assert _mode(fresh) == 0o700
        files = [fresh / f"querybatch.db{suffix}" for suffix in ("", "-wal", "-shm")]
        assert [_mode(f) for f in files] == [0o600] * 3


def test_a_data_directory_and_database_left_open_are_made_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "querybatch.db").touch(mode=0o644)
    (data / "querybatch.db").chmod(0o644)
    with running_server(data) as server:
        assert _mode(data) == 0o700
        assert _mode(data / "querybatch.db") == 0o600
        assert "readable by others" in server.log()


# -- csv formula injection ---------------------------------------------------------------------

FORMULAS = ["=1+2", "+SUM(A1)", "-5", "@cmd", "\tx", "\r=x"]
TEXTS = ["plain", "a=b", "'quoted"]
SOURCES = """
[sources.EVIL]
connector = "sql"
url = "sqlite:///{db}"
table = "orders"
date_column = "day"
account_column = "store_id"
dimensions = ["product"]
metrics = {{ units = "sum" }}
"""


def _evil_sources(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / "evil.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (day TEXT, store_id TEXT, product TEXT, units INTEGER)")
        conn.executemany(
            "INSERT INTO orders VALUES ('2024-03-01', 's1', ?, -5)",
            [(product,) for product in FORMULAS + TEXTS],
        )
    sources = directory / "sources.toml"
    sources.write_text(SOURCES.format(db=db))
    return sources


EVIL_QUERY = {
    "ds_id": "EVIL",
    "ds_accounts": "s1",
    "fields": "product,units",
    "start_date": "2024-03-01",
    "end_date": "2024-03-01",
}


@pytest.fixture(scope="module")
def escaping(deployment: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("escaping")
    with running_server(directory / "data", QB_SOURCES=str(_evil_sources(directory))) as server:
        yield server


@pytest.fixture(scope="module")
def verbatim(deployment: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("verbatim")
    with running_server(
        directory / "data",
        QB_SOURCES=str(_evil_sources(directory)),
        QB_CSV_ESCAPE_FORMULAS="false",
    ) as server:
        yield server


def _cells(text: str, delimiter: str = ",") -> dict[str, str]:
    """product -> units of a csv or tsv answer, read as a spreadsheet's importer reads it."""
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    return {row[-2]: row[-1] for row in rows[1:]}


def _batch_csv(api: httpx.Client) -> str:
    created = api.post("/query/batch", json={"queries": [EVIL_QUERY]})
    assert created.status_code in (200, 201), created.text
    batch_id = created.json()["data"]["batch_id"]

    def stopped() -> bool:
        data = api.get(f"/query/batch/{batch_id}").json()["data"]
        return bool(data["status_code"] == "STOPPED")

    wait_until(stopped)
    return api.get(f"/query/batch/{batch_id}/download", params={"format": "csv"}).text


@pytest.mark.parametrize("fmt, delimiter", [("csv", ","), ("tsv", "\t")])
def test_text_cells_that_a_spreadsheet_would_run_are_written_after_a_quote(
    escaping: ServerProcess, fmt: str, delimiter: str
) -> None:
    with client(escaping) as api:
        text = api.get(f"/query/data/{fmt}", params=EVIL_QUERY).text
    cells = _cells(text, delimiter)
    assert set(cells) == {"'" + f for f in FORMULAS} | set(TEXTS)
    # The numbers stay numbers: a negative one is not text a spreadsheet would run.
    assert set(cells.values()) == {"-5"}


def test_the_batch_download_escapes_formulas_too(escaping: ServerProcess) -> None:
    with client(escaping) as api:
        cells = _cells(_batch_csv(api))
    assert set(cells) == {"'" + f for f in FORMULAS} | set(TEXTS)
    assert set(cells.values()) == {"-5"}


def test_with_escaping_turned_off_csv_holds_the_values_as_they_are(
    verbatim: ServerProcess,
) -> None:
    with client(verbatim) as api:
        answers = [
            _cells(api.get("/query/data/csv", params=EVIL_QUERY).text),
            _cells(api.get("/query/data/tsv", params=EVIL_QUERY).text, "\t"),
            _cells(_batch_csv(api)),
        ]
    for cells in answers:
        assert set(cells) == set(FORMULAS + TEXTS)


# -- health ------------------------------------------------------------------------------------


class WritesRefused:
    """Make the server's store refuse writes, and take that back.

    Embedded: the server process may not write a byte more to any file (RLIMIT_FSIZE, as a
    full disk); SQLite answers "disk I/O error". Scale-out: a trigger refuses the writes of
    the health check's table, standing in for a PostgreSQL that refuses writes.
    """

    def __init__(self, server: ServerProcess) -> None:
        self.server = server

    def _execute(self, *statements: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(
            self.server.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
        )
        try:
            with engine.begin() as conn:
                for statement in statements:
                    conn.execute(text(statement))
        finally:
            engine.dispose()

    def __enter__(self) -> WritesRefused:
        if scaleout():
            self._execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'writes are refused'; END $$",
                "CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON server_state "
                "FOR EACH STATEMENT EXECUTE FUNCTION refuse()",
            )
        else:
            assert self.server.process is not None
            resource.prlimit(
                self.server.process.pid, resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY)
            )
        return self

    def __exit__(self, *_: Any) -> None:
        if scaleout():
            self._execute("DROP TRIGGER refuse ON server_state", "DROP FUNCTION refuse()")
        else:
            assert self.server.process is not None
            unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
            resource.prlimit(self.server.process.pid, resource.RLIMIT_FSIZE, unlimited)


def _health(server: ServerProcess) -> httpx.Response:
    return httpx.get(server.url + "/healthz", timeout=5)


@BOTH
@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs Linux prlimit")
def test_healthz_says_the_store_is_unwritable_while_it_refuses_writes(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as server:
        assert _health(server).json()["store"] == "ok"
        with WritesRefused(server):
            unhealthy = wait_until(lambda: (r := _health(server)).status_code == 503 and r)
            assert unhealthy.json()["status"] == "unavailable"
            assert unhealthy.json()["store"] == "unwritable"
            assert unhealthy.json()["store_error"]
            if not scaleout():
                with client(server) as api:
                    write = api.post("/query/batch", json={"queries": [QUERY]})
                assert_error(write, 503, "SERVICE_UNAVAILABLE")
        wait_until(lambda: _health(server).status_code == 200)
        healthy = _health(server).json()
        assert (healthy["status"], healthy["store"], healthy["executor"]) == ("ok", "ok", "ok")
        assert "store_error" not in healthy
