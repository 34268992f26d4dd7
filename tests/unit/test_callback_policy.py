"""The callback policy: only public addresses by default, the operator's exceptions, URL form."""

from __future__ import annotations

import ipaddress

import pytest

from querybatch.domain.callback_policy import (
    CallbackAllow,
    CallbackRefused,
    address_refusal,
    check_callback_url,
    is_internal,
    is_local_name,
)

INTERNAL = [
    "127.0.0.1",
    "127.255.255.254",
    "0.0.0.0",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # carrier-grade NAT
    "224.0.0.1",  # multicast
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "::",
    "::1",
    "fe80::1",
    "fc00::1",
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a00:1::",  # 6to4 of 10.0.0.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2001:db8::1",  # documentation
]
PUBLIC = ["8.8.8.8", "93.184.215.14", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", INTERNAL)
def test_an_internal_address_is_internal(address: str) -> None:
    assert is_internal(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_a_public_address_is_not_internal(address: str) -> None:
    assert not is_internal(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", INTERNAL)
def test_by_default_a_callback_may_not_connect_to_an_internal_address(address: str) -> None:
    assert address_refusal("hooks.example", address, CallbackAllow()) is not None


def test_a_callback_may_connect_to_a_public_address() -> None:
    assert address_refusal("hooks.example", "8.8.8.8", CallbackAllow()) is None


def test_an_allowed_cidr_opens_the_addresses_inside_it_and_no_other() -> None:
    allow = CallbackAllow.parse(["10.0.0.0/8", "127.0.0.1"])
    assert address_refusal("h", "10.9.8.7", allow) is None
    assert address_refusal("h", "127.0.0.1", allow) is None
    assert address_refusal("h", "::ffff:10.1.1.1", allow) is None  # the same address, mapped
    assert address_refusal("h", "127.0.0.2", allow) is not None
    assert address_refusal("h", "192.168.0.1", allow) is not None


def test_an_allowed_host_name_opens_that_exact_name_whatever_it_resolves_to() -> None:
    allow = CallbackAllow.parse(["hooks.internal"])
    assert address_refusal("hooks.internal", "10.0.0.5", allow) is None
    assert address_refusal("HOOKS.internal.", "10.0.0.5", allow) is None
    assert address_refusal("evil.hooks.internal", "10.0.0.5", allow) is not None
    assert address_refusal("other.example", "10.0.0.5", allow) is not None


@pytest.mark.parametrize("entry", ["not a host!", "10.0.0.0/33", "", "a/b"])
def test_a_malformed_allow_entry_is_refused_at_startup(entry: str) -> None:
    with pytest.raises(ValueError, match="QB_CALLBACK_ALLOW"):
        CallbackAllow.parse([entry])


@pytest.mark.parametrize("name", ["localhost", "LOCALHOST.", "api.localhost", "x.localhost."])
def test_localhost_names_are_this_machine(name: str) -> None:
    assert is_local_name(name)


@pytest.mark.parametrize("name", ["localhost.example", "notlocalhost", "example.com"])
def test_other_names_are_not_this_machine(name: str) -> None:
    assert not is_local_name(name)


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example/a?b=1",
        "https://hooks.example:8443/hook",
        "https://[2606:4700::1111]/hook",
        "http://2130706433/",  # a valid form; where it leads is checked after resolution
    ],
)
def test_a_well_formed_url_passes_the_form_check(url: str) -> None:
    assert check_callback_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example/",
        "http://user:pw@hooks.example/",
        "http://user@hooks.example/",
        "http://:pw@hooks.example/",
        "http://hooks.example/\r\nX-Injected: 1",
        "http://hooks.example/a b",
        " http://hooks.example/",
        "http://hooks.example/\x00",
        "http://hooks.example/\x7f",
        "http://hooks.example\\@127.0.0.1/",
        "http:///no-host",
        "http://hooks.example:0/",
        "http://hooks.example:99999/",
        "http://[::1/",
    ],
)
def test_a_malformed_url_or_one_with_userinfo_is_refused(url: str) -> None:
    with pytest.raises(CallbackRefused):
        check_callback_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://%31%32%37%2e%30%2e%30%2e%31/",
        "http://127.0.0.1%00.example.com/",
        "http://-hooks.example.com/",
        "http://under_score.example.com/",
        "http://xn--localhost-/",
        "http://" + "a" * 64 + ".example.com/",
    ],
)
def test_a_callback_host_that_is_not_a_host_name_is_refused(url: str) -> None:
    with pytest.raises(CallbackRefused, match="not a valid host name"):
        check_callback_url(url)


@pytest.mark.parametrize(
    "url", ["http://hooks.example.com./x", "https://bücher.example/", "http://[2001:db8::1]/"]
)
def test_host_names_with_a_root_dot_idna_names_and_ip_literals_keep_their_form(url: str) -> None:
    assert check_callback_url(url) == url
