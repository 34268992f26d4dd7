"""The sources file: parsing, building sources through entry points, and every mistake."""

from __future__ import annotations

import importlib.metadata
import os
import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from querybatch.connectors import registry
from querybatch.connectors.base import FetchRequest
from querybatch.connectors.demo import DemoConnector
from querybatch.connectors.registry import ENTRY_POINT_GROUP, SourceRegistry, connector_types
from querybatch.connectors.sources import build_sources, load_sources
from querybatch.connectors.sql import SqlConnector
from querybatch.errors import AccountErrors, ConfigurationError
from querybatch.settings import Settings

EXAMPLE = Path(__file__).parents[2] / "examples" / "plugin_connector"

SHOP = """
[sources.SHOP]
connector = "sql"
url = "sqlite:///{db}"
table = "orders"
date_column = "day"
account_column = "store_id"
dimensions = ["day", "store_id", "product"]
metrics = {{ revenue = "sum", units = "sum" }}
"""


@pytest.fixture
def shop_db(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE orders (day DATE, store_id TEXT, product TEXT, revenue REAL, units INT)"
        )
        conn.execute("INSERT INTO orders VALUES ('2024-01-01', 's1', 'p', 2.5, 1)")
    return path


def write(tmp_path: Path, text: str, name: str = "sources.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_toml_file_adds_its_sources_beside_the_demo_ones(tmp_path: Path, shop_db: Path) -> None:
    sources = build_sources(Settings(sources=write(tmp_path, SHOP.format(db=shop_db))))
    assert set(sources) == {"DEMO_ADS", "DEMO_WEB", "SHOP"}
    assert isinstance(sources["SHOP"], SqlConnector)


def test_yaml_files_are_read_too(tmp_path: Path, shop_db: Path) -> None:
    text = f"""
sources:
  SHOP:
    connector: sql
    url: sqlite:///{shop_db}
    table: orders
    date_column: day
    account_column: store_id
    metrics: {{units: sum}}
"""
    sources = load_sources(write(tmp_path, text, "sources.yaml"))
    assert isinstance(sources["SHOP"], SqlConnector)


def test_the_file_wins_over_a_demo_source_and_demos_can_be_turned_off(tmp_path: Path) -> None:
    text = '[sources.DEMO_ADS]\nconnector = "demo"\ndataset = "web"\naccounts = 3\n'
    path = write(tmp_path, text)
    sources = build_sources(Settings(sources=path))
    assert isinstance(sources["DEMO_ADS"], DemoConnector)
    assert sources["DEMO_ADS"].demo_config.dataset == "web"  # type: ignore[attr-defined]
    assert set(build_sources(Settings(sources=path, demo_sources=False))) == {"DEMO_ADS"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[sources.SHOP\nconnector = 1", r"^sources file .*: invalid TOML: "),
        ("title = 'x'\n", r"^sources file .*: no sources table"),
        (
            "other = 1\n[sources.A]\nconnector='demo'\ndataset='ads'",
            r"unknown top-level key 'other'",
        ),
        ("sources = 3\n", r"sources must be a table of sources$"),
        ("[sources]\nSHOP = 3\n", r"^sources\.SHOP: expected a table of settings$"),
        ('[sources."bad id"]\nconnector = "demo"\n', r"^sources\.bad id: a ds_id is 1 to 50"),
        ("[sources.SHOP]\nurl = 'x'\n", r"^sources\.SHOP\.connector: field required$"),
        (
            "[sources.SHOP]\nconnector = 'oracle'\n",
            r"^sources\.SHOP\.connector: unknown connector type 'oracle' \(installed: demo, ",
        ),
        (
            "[sources.SHOP]\nconnector = 'sql'\nurl = 'sqlite://'\ndate_column = 'd'\n"
            "account_column = 'a'\n",
            r"^sources\.SHOP\.table: field required$",
        ),
        (
            "[sources.SHOP]\nconnector = 'sql'\nurl = 'sqlite://'\ntable = 't'\n"
            "date_column = 'd'\naccount_column = 'a'\ncolour = 'red'\n",
            r"^sources\.SHOP\.colour: unknown key$",
        ),
        (
            "[sources.SHOP]\nconnector = 'sql'\nurl = 'sqlite://'\ntable = 't'\n"
            "date_column = 'd'\naccount_column = 'a'\nmetrics = { m = 'median' }\n",
            r"^sources\.SHOP\.metrics\.m: input should be 'sum', 'avg', 'min', 'max' or 'count'$",
        ),
        (
            "[sources.SHOP]\nconnector = 'sql'\nurl = 'sqlite://'\ntable = 't'\n"
            "date_column = 'd'\naccount_column = 'a'\ndimensions = ['x; DROP TABLE t']\n",
            r"^sources\.SHOP\.dimensions: 'x; DROP TABLE t' is not a valid field id",
        ),
        (
            "[sources.API]\nconnector = 'http'\nurl = 'ftp://x'\naccounts = ['a']\n",
            r"^sources\.API\.url: must start with http:// or https://$",
        ),
        (
            "[sources.F]\nconnector = 'files'\npath = 'x.csv'\ndate_column = 'd'\n",
            r"^sources\.F\.account_column: field required$",
        ),
    ],
)
def test_every_mistake_is_one_line_naming_the_source_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        load_sources(write(tmp_path, text))
    assert "\n" not in caught.value.message


def test_bad_yaml_and_a_missing_file_are_one_line_too(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigurationError, match=r"invalid YAML: .* at line [0-9]+, column [0-9]+$"
    ) as caught:
        load_sources(write(tmp_path, "sources:\n  SHOP: [unclosed\n", "s.yml"))
    assert "\n" not in caught.value.message
    with pytest.raises(ConfigurationError, match=r"^sources file .*nope\.toml: cannot read it"):
        load_sources(tmp_path / "nope.toml")


async def test_problems_found_when_opening_name_the_source_and_key(
    tmp_path: Path, shop_db: Path
) -> None:
    text = SHOP.format(db=shop_db).replace('table = "orders"', 'table = "order"')
    sources = SourceRegistry(load_sources(write(tmp_path, text)))
    with pytest.raises(ConfigurationError, match=r"^sources\.SHOP\.table: table or view 'order'"):
        await sources.open()


def test_serve_with_a_bad_sources_file_exits_with_one_line_and_no_traceback(
    tmp_path: Path, shop_db: Path
) -> None:
    text = SHOP.format(db=shop_db).replace('account_column = "store_id"', 'account_column = "shop"')
    path = write(tmp_path, text)
    env = {
        **os.environ,
        "QB_DATA_DIR": str(tmp_path / "data"),
        "QB_PORT": "0",
        # Rich wraps at the terminal width (80 columns when not a terminal); see the report.
        "COLUMNS": "500",
    }
    done = subprocess.run(
        [sys.executable, "-m", "querybatch", "serve", "--sources", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: sources.SHOP.account_column: column 'shop' does not exist")
    assert "Traceback" not in done.stderr + done.stdout


# --- the documented plugin example (examples/plugin_connector) --------------------------

INLINE = """
[sources.TARGETS]
connector = "inline"
dimensions = ["date", "account", "channel"]
metrics = ["target"]
rows = [
  { date = "2024-01-01", account = "north", channel = "search", target = 100 },
  { date = "2024-01-01", account = "north", channel = "social", target = 20 },
  { date = "2024-01-02", account = "south", channel = "social", target = 80 },
]
"""


@pytest.fixture
def inline_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example package's entry point, as pip would register it, beside the real ones."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    installed = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    plugin = importlib.metadata.EntryPoint("inline", "qb_inline:InlineConnector", ENTRY_POINT_GROUP)

    def entry_points(**kw: Any) -> list[importlib.metadata.EntryPoint]:
        assert kw == {"group": ENTRY_POINT_GROUP}
        return [*installed, plugin]

    monkeypatch.setattr(registry, "entry_points", entry_points)


def test_the_example_plugin_declares_the_entry_point_the_docs_show() -> None:
    text = (EXAMPLE / "pyproject.toml").read_text()
    assert '[project.entry-points."querybatch.connectors"]' in text
    assert 'inline = "qb_inline:InlineConnector"' in text


def test_the_example_plugin_is_discovered_through_its_entry_point(inline_installed: None) -> None:
    types = connector_types()
    assert {"demo", "sql", "files", "http", "inline"} <= set(types)
    assert types["inline"].__module__ == "qb_inline"


async def test_the_example_plugin_serves_a_source_of_the_sources_file(
    tmp_path: Path, inline_installed: None
) -> None:
    sources = SourceRegistry(load_sources(write(tmp_path, INLINE)))
    await sources.open()
    connector = sources["TARGETS"]
    assert [f.field_id for f in await connector.fields()] == [
        "date",
        "account",
        "channel",
        "target",
    ]
    (login,) = await connector.accounts()
    assert [a.account_id for a in login.accounts] == ["north", "south"]
    request = FetchRequest("TARGETS", ("north",), date(2024, 1, 1), date(2024, 1, 2), ("target",))
    assert [row async for chunk in connector.fetch(request) for row in chunk] == [(120,)]
    with pytest.raises(AccountErrors):
        bad = FetchRequest("TARGETS", ("east",), date(2024, 1, 1), date(2024, 1, 2), ("target",))
        async for _ in connector.fetch(bad):
            pass
    await sources.close()


def test_two_packages_claiming_one_name_are_refused(
    monkeypatch: pytest.MonkeyPatch, inline_installed: None
) -> None:
    twice = importlib.metadata.EntryPoint("sql", "qb_inline:InlineConnector", ENTRY_POINT_GROUP)
    found = registry.entry_points(group=ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda **kw: [*found, twice])
    with pytest.raises(ConfigurationError, match="connector type 'sql' is installed twice"):
        connector_types()
