"""What a started server holds in memory: Arrow loads with its first use, not with the server.

pyarrow (about 33 MB of the process) serves Parquet downloads and the DuckDB and Files
destinations; a server that never does either never loads it.
"""

from __future__ import annotations

import pytest

from support import ServerProcess, client, wait_until

DEPLOYMENTS = ("embedded",)  # what one process imports: the same module list either way
pytestmark = pytest.mark.own_server  # what the process has loaded, which other modules change

BATCH = {
    "queries": [
        {
            "ds_id": "DEMO_WEB",
            "ds_accounts": ["web-0001"],
            "fields": "date,sessions",
            "start_date": "2026-01-01",
            "end_date": "2026-01-02",
        }
    ],
}


def arrow_mapped(server: ServerProcess) -> bool:
    """Whether the server process has pyarrow's libraries mapped."""
    assert server.process is not None
    maps = f"/proc/{server.process.pid}/maps"
    with open(maps, encoding="utf-8") as lines:
        return any("pyarrow" in line for line in lines)


def test_pyarrow_loads_with_the_first_parquet_download_not_with_the_server(
    server: ServerProcess,
) -> None:
    with client(server) as api:
        created = api.post("/query/batch", json=BATCH)
        assert created.status_code in (200, 201), created.text
        batch_id = created.json()["data"]["batch_id"]
        wait_until(
            lambda: api.get(f"/query/batch/{batch_id}").json()["data"]["status_code"] == "STOPPED"
        )
        assert api.get(f"/query/batch/{batch_id}/download").status_code == 200
        assert not arrow_mapped(server)
        parquet = api.get(f"/query/batch/{batch_id}/download", params={"format": "parquet"})
        assert parquet.status_code == 200 and parquet.content[:4] == b"PAR1"
    assert arrow_mapped(server)
