"""Which server the client commands talk to when no --url is given."""

from __future__ import annotations

import pytest

from querybatch.cli.http import server_url
from querybatch.errors import BadRequest


@pytest.fixture(autouse=True)
def _no_server_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("QB_URL", "QB_HOST", "QB_PORT"):
        monkeypatch.delenv(name, raising=False)


def test_with_no_settings_it_is_the_address_serve_listens_on_by_default() -> None:
    assert server_url() == "http://127.0.0.1:8080"


def test_qb_url_wins_over_qb_host_and_qb_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QB_URL", "http://qb.internal:9000/")
    monkeypatch.setenv("QB_PORT", "1234")
    assert server_url() == "http://qb.internal:9000"


def test_the_url_option_wins_over_qb_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QB_URL", "http://qb.internal:9000")
    assert server_url("http://127.0.0.1:7000") == "http://127.0.0.1:7000"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:9001"),
        ("::", "http://[::1]:9001"),
        ("::1", "http://[::1]:9001"),
    ],
)
def test_an_address_to_listen_on_becomes_one_to_connect_to(
    monkeypatch: pytest.MonkeyPatch, host: str, url: str
) -> None:
    monkeypatch.setenv("QB_HOST", host)
    monkeypatch.setenv("QB_PORT", "9001")
    assert server_url() == url


def test_a_port_that_is_not_a_number_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QB_PORT", "eighty")
    with pytest.raises(BadRequest, match="QB_PORT is not a port number: 'eighty'"):
        server_url()
