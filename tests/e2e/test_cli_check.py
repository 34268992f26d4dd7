"""``querybatch check``: a sources file checked as ``serve`` checks it, with no server."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from cli_support import querybatch

DEPLOYMENTS = ("embedded",)

SHOP = """
[sources.SHOP]
connector = "sql"
url = "sqlite:///{db}"
table = "orders"
date_column = "day"
account_column = "store_id"
dimensions = ["{dimension}"]
metrics = {{ revenue = "sum" }}
"""


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A SQLite database with an empty orders table."""
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (day TEXT, store_id TEXT, product TEXT, revenue REAL)")
    return path


def sources_file(tmp_path: Path, shop: Path, dimension: str) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(SHOP.format(db=shop, dimension=dimension), encoding="utf-8")
    return path


def test_a_good_sources_file_is_ok_and_no_store_is_made(tmp_path: Path, shop: Path) -> None:
    data_dir = tmp_path / "data"
    path = sources_file(tmp_path, shop, "product")
    checked = querybatch("check", "--sources", str(path), QB_DATA_DIR=str(data_dir))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == "ok: 3 sources (DEMO_ADS, DEMO_WEB, SHOP)"
    assert not data_dir.exists()


def test_a_bad_sources_file_gives_the_message_serve_gives(tmp_path: Path, shop: Path) -> None:
    path = sources_file(tmp_path, shop, "colour")
    env = {"QB_DATA_DIR": str(tmp_path / "data"), "QB_PORT": "0"}
    checked = querybatch("check", "--sources", str(path), **env)
    served = querybatch("serve", "--sources", str(path), **env)
    assert checked.returncode == 2
    assert served.returncode != 0
    assert checked.stderr.strip().startswith("error: sources.SHOP.dimensions: column 'colour'")
    assert checked.stderr.strip() == served.stderr.strip()


def test_the_sources_file_of_qb_sources_is_checked_as_json(tmp_path: Path, shop: Path) -> None:
    path = sources_file(tmp_path, shop, "colour")
    checked = querybatch("check", "--json", QB_SOURCES=str(path), QB_DEMO_SOURCES="false")
    assert checked.returncode == 2
    answer = json.loads(checked.stdout)
    assert answer["ok"] is False and answer["sources"] == []
    assert answer["errors"][0].startswith("sources.SHOP.dimensions: column 'colour'")


def test_an_invalid_setting_is_named_by_its_variable(tmp_path: Path) -> None:
    checked = querybatch("check", QB_PORT="eighty", QB_DATA_DIR=str(tmp_path / "data"))
    assert checked.returncode == 2
    assert checked.stderr.startswith("error: QB_PORT: ")
    assert "Traceback" not in checked.stderr


@pytest.mark.parametrize("share", ["0", "-0.5", "1.5", "nan"])
def test_a_poll_share_outside_zero_to_one_stops_the_server_before_it_listens(
    tmp_path: Path, share: str
) -> None:
    env = {"QB_DATA_DIR": str(tmp_path / "data"), "QB_PORT": "0", "QB_POLL_SHARE": share}
    served = querybatch("serve", **env)
    assert served.returncode == 2, served.stderr
    assert served.stderr.startswith("error: QB_POLL_SHARE: ")
    assert not (tmp_path / "data").exists()
