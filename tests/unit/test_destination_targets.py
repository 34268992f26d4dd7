"""The outbound policy of destinations: internal hosts refused unless the operator allows
them, checked at create/update and again (pinned) at connect time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from querybatch.destinations import registry
from querybatch.destinations.postgresql import PostgresDestination
from querybatch.domain.teams import team_id_of
from querybatch.engine.destination_targets import DestinationTargets, parse_allow
from querybatch.engine.destinations import DestinationInput, Destinations
from querybatch.engine.secret_box import SecretBox
from querybatch.engine.service import Caller
from querybatch.errors import ConfigurationError, DestinationHostRefused, DestinationUnreachable
from querybatch.store.store import Store

ACME = Caller("acme", "key_1")
TEAM = team_id_of("acme")
DNS: dict[str, list[str]] = {}


async def fake_dns(host: str, port: int) -> list[str]:
    if host not in DNS:
        raise OSError("no such host")
    return DNS[host]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'd.db'}", result_ttl=3600)
    yield opened
    opened.close()


def service(store: Store, tmp_path: Path, **policy: Any) -> Destinations:
    return Destinations(
        store,
        registry.destination_types(),
        SecretBox(b"server-secret"),
        tmp_path / "destinations",
        targets=DestinationTargets(resolver=fake_dns, **policy),
    )


def pg(host: str) -> DestinationInput:
    fields = {"host": host, "port": 1, "database_name": "dw", "username": "u", "password": "pw"}
    return DestinationInput("DWH_POSTGRESQL", "dw", fields)


def s3(endpoint: str) -> DestinationInput:
    fields = {
        "storage": "s3",
        "bucket": "bkt",
        "endpoint_url": endpoint,
        "access_key_id": "k",
        "secret_access_key": "s",
    }
    return DestinationInput("DWH_FILES", "lake", fields)


INTERNAL = [
    pg("127.0.0.1"),
    pg("localhost"),
    pg("10.1.2.3"),
    pg("::ffff:127.0.0.1"),
    pg("169.254.169.254"),
    pg("rebind.example"),  # resolves to a private address
    pg("a.example,127.0.0.1"),  # a libpq host list
    s3("http://169.254.169.254"),
    s3("http://127.0.0.1:9000"),
]


async def test_an_internal_host_is_refused_by_default(store: Store, tmp_path: Path) -> None:
    DNS["rebind.example"] = ["8.8.8.8", "192.168.1.9"]
    destinations = service(store, tmp_path)
    for given in INTERNAL:
        with pytest.raises(DestinationHostRefused) as refused:
            await destinations.create(ACME, TEAM, given)
        assert refused.value.status == 400
        assert refused.value.code == "DESTINATION_HOST_NOT_ALLOWED"
        with pytest.raises(DestinationHostRefused):
            await destinations.test_connection(ACME, TEAM, given, None)
    assert await destinations.list_all(ACME, TEAM) == []


async def test_the_operator_allows_internal_hosts(store: Store, tmp_path: Path) -> None:
    everything = service(store, tmp_path, allow_internal=True)
    assert (await everything.create(ACME, TEAM, pg("127.0.0.1"))).id
    listed = service(store, tmp_path, allow=parse_allow(["10.0.0.0/8", "db.internal"]))
    assert (await listed.create(ACME, TEAM, pg("10.1.2.3"))).id
    assert (await listed.create(ACME, TEAM, pg("db.internal"))).id
    with pytest.raises(DestinationHostRefused):
        await listed.create(ACME, TEAM, pg("127.0.0.1"))


async def test_a_public_host_is_pinned_and_checked_again_at_connect_time(
    store: Store, tmp_path: Path
) -> None:
    DNS["db.example"] = ["93.184.216.34"]
    destinations = service(store, tmp_path)
    view = await destinations.create(ACME, TEAM, pg("db.example"))
    dest = await destinations.destination_for("acme", view.id)
    assert isinstance(dest, PostgresDestination)
    assert dest._params()["hostaddr"] == "93.184.216.34"
    assert dest._params()["host"] == "db.example"  # TLS still checks the name
    DNS["db.example"] = ["10.0.0.7"]  # DNS rebinding after the create
    with pytest.raises(DestinationHostRefused):
        await destinations.destination_for("acme", view.id)


async def test_a_host_that_does_not_resolve_is_checked_when_used(
    store: Store, tmp_path: Path
) -> None:
    destinations = service(store, tmp_path)
    view = await destinations.create(ACME, TEAM, pg("later.example"))
    with pytest.raises(DestinationUnreachable):
        await destinations.destination_for("acme", view.id)
    check = await destinations.test_connection(ACME, TEAM, pg("later.example"), None)
    assert not check.success and check.error and "resolve" in check.error


def test_a_bad_allow_entry_stops_the_server() -> None:
    with pytest.raises(ConfigurationError, match="QB_DESTINATION_ALLOW"):
        parse_allow(["not a host!"])
