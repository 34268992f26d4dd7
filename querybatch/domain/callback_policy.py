"""Which ``callback_url`` targets a batch may name: the pure part of the SSRF policy.

A callback is a POST the server makes on a tenant's behalf, so by default it may only go to
the public internet: no loopback, private, link-local, unspecified, multicast or reserved
address, also not when one is wrapped in an IPv6 form (IPv4-mapped, 6to4, NAT64). The
operator opens what they need with ``QB_CALLBACK_ALLOW``: CIDRs (resolved addresses inside
them are allowed) and host names (that exact name is allowed, whatever it resolves to).

Resolution is I/O and lives in ``engine/callback_targets.py``; this module decides.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_HOST_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")


class CallbackRefused(ValueError):
    """A callback URL or the address it leads to is not allowed; the message says why."""


@dataclass(frozen=True, slots=True)
class CallbackAllow:
    """The operator's exceptions to the policy (``QB_CALLBACK_ALLOW``)."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> CallbackAllow:
        """Read CIDRs (or single addresses) and host names; ValueError names a bad entry."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in entries:
            text = entry.strip()
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
                continue
            except ValueError:
                pass
            name = normal_host(text)
            if not name or not set(name) <= _HOST_NAME_CHARS:
                raise ValueError(f"QB_CALLBACK_ALLOW: {entry!r} is neither a CIDR nor a host name")
            hosts.add(name)
        return cls(tuple(networks), frozenset(hosts))

    def allows_host(self, host: str) -> bool:
        """Whether the operator opened this exact host name."""
        return normal_host(host) in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        """Whether the address (or the IPv4 address it wraps) is inside an allowed CIDR."""
        candidates = [address]
        embedded = embedded_ipv4(address)
        if embedded is not None:
            candidates.append(embedded)
        return any(ip in net for ip in candidates for net in self.networks)


def normal_host(host: str) -> str:
    """A host name compared as DNS does: lower case, without the root's trailing dot."""
    return host.strip().lower().removesuffix(".")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in net for net in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_internal(address: IPAddress) -> bool:
    """Whether a callback to this address would reach inside rather than the internet."""
    embedded = embedded_ipv4(address)
    if embedded is not None:
        return is_internal(embedded)
    # is_global alone lets multicast through (224.0.0.0/4 is "global" to ipaddress).
    return (
        not address.is_global
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address.is_loopback
        or address.is_link_local
        or address.is_private
    )


def address_refusal(host: str, address: str, allow: CallbackAllow) -> str | None:
    """Why a callback to ``host`` may not connect to ``address``; None when it may."""
    if allow.allows_host(host):
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"{address!r} is not an IP address"
    if is_internal(ip) and not allow.allows_address(ip):
        return f"it leads to the internal address {ip}"
    return None


def is_local_name(host: str) -> bool:
    """Names that always mean this machine (RFC 6761), whatever a resolver says of them."""
    name = normal_host(host)
    return name == "localhost" or name.endswith(".localhost")


# A DNS host name in ASCII (IDNA): letters, digits and hyphens, 1-63 per label, 253 in all,
# with an optional trailing dot. Percent-escapes, NUL and other characters a resolver or a
# URL parser could read differently are not names.
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOST_NAME = re.compile(rf"(?=.{{1,254}}$){_LABEL}(?:\.{_LABEL})*\.?")


def _is_ip_literal(host: str) -> bool:
    # Only an IPv6 address (in brackets in the URL) may carry a %zone.
    try:
        ipaddress.ip_address(host.partition("%")[0] if ":" in host else host)
    except ValueError:
        return False
    return True


def check_callback_url(url: str) -> str:
    """The URL if its form may be a callback target; CallbackRefused says what is wrong.

    Only the form is checked here; where the host leads is checked after resolution.
    """
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise CallbackRefused("callback_url must not contain whitespace or control characters")
    if "\\" in url:
        # Parsers disagree on backslashes in URLs; the one that checks and the one that
        # connects must see the same host.
        raise CallbackRefused("callback_url must not contain backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CallbackRefused(f"callback_url is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise CallbackRefused("callback_url must start with http:// or https://")
    if "@" in parts.netloc:
        raise CallbackRefused("callback_url must not hold a user name or password")
    if not parts.hostname:
        raise CallbackRefused("callback_url names no host")
    if not _is_ip_literal(parts.hostname):
        try:
            ascii_host = parts.hostname.encode("idna").decode("ascii")
        except UnicodeError:
            raise CallbackRefused("callback_url's host is not a valid host name") from None
        if _HOST_NAME.fullmatch(ascii_host) is None:
            raise CallbackRefused("callback_url's host is not a valid host name")
    if port == 0:
        raise CallbackRefused("callback_url names port 0")
    return url
