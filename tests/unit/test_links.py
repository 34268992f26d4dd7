"""Signed links: genuine ones pass until they expire; any change to one is refused."""

from __future__ import annotations

import pytest

from querybatch.api.links import Links
from querybatch.errors import LinkExpired, LinkInvalid

LINKS = Links(b"secret")


def parts(url: str) -> tuple[str, str, str]:
    path, _, query = url.removeprefix("http://h").partition("?")
    params = dict(item.split("=") for item in query.split("&"))
    return path, params["expires"], params["signature"]


def test_a_genuine_link_is_valid_until_it_expires() -> None:
    path, expires, signature = parts(LINKS.url("http://h", "PUT", "/cache/upl_1", 100.5))
    assert (path, expires) == ("/cache/upl_1", "100.500")
    assert LINKS.verify("PUT", path, expires, signature, now=100.0) == 100.5
    with pytest.raises(LinkExpired) as caught:
        LINKS.verify("PUT", path, expires, signature, now=100.6)
    assert caught.value.status == 403 and caught.value.code == "LINK_EXPIRED"


@pytest.mark.parametrize(
    ("method", "path", "expires", "signature"),
    [
        ("GET", "/cache/upl_1", "100.500", None),  # another method
        ("PUT", "/cache/upl_2", "100.500", None),  # another path
        ("PUT", "/cache/upl_1", "999.500", None),  # a later expiry
        ("PUT", "/cache/upl_1", "100.500", "0" * 64),  # a forged signature
        ("PUT", "/cache/upl_1", None, None),  # no expiry
        ("PUT", "/cache/upl_1", "100.500", ""),  # no signature
    ],
)
def test_an_altered_link_is_invalid(
    method: str, path: str, expires: str | None, signature: str | None
) -> None:
    _, _, genuine = parts(LINKS.url("http://h", "PUT", "/cache/upl_1", 100.5))
    with pytest.raises(LinkInvalid) as caught:
        LINKS.verify(method, path, expires, genuine if signature is None else signature, 1.0)
    assert type(caught.value) is LinkInvalid and caught.value.code == "LINK_INVALID"


def test_a_link_of_another_server_secret_is_invalid() -> None:
    path, expires, signature = parts(Links(b"other").url("http://h", "GET", "/b", 100.0))
    with pytest.raises(LinkInvalid):
        LINKS.verify("GET", path, expires, signature, 1.0)
