"""Resolving a ``callback_url`` and pinning the connection to the address that was checked.

The host is resolved once, every address it resolves to is checked against the policy of
``domain/callback_policy.py``, and the request then goes to a checked address, with the
original name in the Host header and in TLS SNI (httpcore's ``sni_hostname`` extension):
a DNS answer that changes between the check and the connection (rebinding) is never used.
Integer, octal, hex and shortened IPv4 forms (``2130706433``, ``0x7f.1``, ``127.1``) are
read by the same ``getaddrinfo`` the HTTP client would call, not by patterns.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from querybatch.domain.callback_policy import (
    CallbackAllow,
    CallbackRefused,
    address_refusal,
    check_callback_url,
    is_local_name,
)

Resolver = Callable[[str, int], Awaitable[list[str]]]

RESOLVE_TIMEOUT = 5.0
# RFC 6761: these names are this machine, whatever a DNS server says about them.
_LOCAL_ADDRESSES = ["127.0.0.1", "::1"]


class ResolutionFailed(Exception):
    """The callback host did not resolve (now); worth trying again later."""


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``getaddrinfo`` gives for ``host`` (what httpx itself would connect to)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class PinnedTarget:
    """Where a callback goes: the checked addresses, and how to reach one by its name."""

    url: httpx.URL
    addresses: tuple[str, ...]

    def request_for(self, attempt: int) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
        """URL, extra headers and httpx extensions of a request to one checked address."""
        address = self.addresses[attempt % len(self.addresses)]
        headers = {"Host": self.url.netloc.decode("ascii")}
        extensions: dict[str, Any] = {}
        host = self.url.raw_host.decode("ascii")
        if self.url.scheme == "https" and not is_ip(host):
            # Certificates are checked against the name, not against the address.
            extensions["sni_hostname"] = host
        return self.url.copy_with(host=address), headers, extensions


def origin_of(url: str) -> str:
    """The scheme, host and port of a URL, for logs (never userinfo, path or query)."""
    try:
        parsed = httpx.URL(url)
        return f"{parsed.scheme}://{parsed.netloc.decode('ascii', 'replace')}"
    except (httpx.InvalidURL, ValueError, UnicodeError):
        return "<unparsable URL>"


class CallbackTargets:
    """Checks callback URLs when a batch is created and again before each delivery."""

    def __init__(self, allow: CallbackAllow, resolver: Resolver = system_resolver) -> None:
        self.allow = allow
        self._resolve = resolver

    async def pin(self, url: str) -> PinnedTarget:
        """Resolve and check ``url``'s host; CallbackRefused, or ResolutionFailed."""
        check_callback_url(url)
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
            raise CallbackRefused(f"callback_url is not a valid URL: {exc}") from None
        if parsed.userinfo:
            raise CallbackRefused("callback_url must not hold a user name or password")
        host = parsed.raw_host.decode("ascii")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        # "a.b." is "a.b" to DNS; without the root's dot, "127.0.0.1." is an address again.
        addresses = await host_addresses(host.removesuffix("."), port, self._resolve)
        for address in addresses:
            refusal = address_refusal(host, address, self.allow)
            if refusal is not None:
                raise CallbackRefused(f"callback_url is not allowed: {refusal}")
        return PinnedTarget(parsed, tuple(addresses))

    async def check_new(self, url: str) -> None:
        """The check at batch creation: CallbackRefused when the URL is or leads inside.

        A host that does not resolve now is accepted; it is checked again at delivery.
        """
        try:
            await self.pin(url)
        except ResolutionFailed:
            pass


async def host_addresses(host: str, port: int, resolver: Resolver) -> list[str]:
    """The addresses ``host`` stands for: itself when it is one, loopback for this machine's
    own names, else what ``resolver`` answers within RESOLVE_TIMEOUT; ResolutionFailed when
    it does not resolve or has no address."""
    if is_ip(host):
        return [host]
    if is_local_name(host):
        return list(_LOCAL_ADDRESSES)
    try:
        addresses = await asyncio.wait_for(resolver(host, port), RESOLVE_TIMEOUT)
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise ResolutionFailed(f"{host} does not resolve: {exc}") from exc
    if not addresses:
        raise ResolutionFailed(f"{host} has no address")
    return addresses


def is_ip(host: str) -> bool:
    """Whether ``host`` is an IP address (rather than a name)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
