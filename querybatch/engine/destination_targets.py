"""Where a destination may connect: the callbacks' outbound (SSRF) policy, for warehouses.

A destination's fields name hosts the server connects to on a tenant's behalf (a PostgreSQL
``host``, an S3 ``endpoint_url``). Each is resolved and **every** address it resolves to is
checked with the same rules as a ``callback_url`` (``domain/callback_policy.py``): loopback,
private, link-local, unspecified, multicast and reserved addresses (also wrapped in IPv6
forms) are refused unless the operator opens them with ``QB_DESTINATION_ALLOW`` (CIDRs,
addresses, host names) or ``QB_DESTINATION_ALLOW_INTERNAL=true`` (every address). The check
runs when a destination is created or updated and again before each connection (connection
test, load); a destination that supports it is then pinned to the checked address.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from querybatch.destinations.base import Destination
from querybatch.domain.callback_policy import (
    CallbackAllow,
    CallbackRefused,
    address_refusal,
    check_callback_url,
)
from querybatch.engine.callback_targets import (
    ResolutionFailed,
    Resolver,
    host_addresses,
    system_resolver,
)
from querybatch.errors import ConfigurationError, DestinationHostRefused, DestinationUnreachable


def parse_allow(entries: list[str], setting: str = "QB_DESTINATION_ALLOW") -> CallbackAllow:
    """The operator's allowed CIDRs and host names; ConfigurationError names a bad entry."""
    try:
        return CallbackAllow.parse(entries)
    except ValueError:
        bad = ", ".join(repr(e) for e in entries)
        raise ConfigurationError(
            f"{setting}: an entry is neither a CIDR nor a host name", bad[:200]
        ) from None


@dataclass(frozen=True, slots=True)
class DestinationTargets:
    """Checks the hosts a destination connects to against the operator's outbound policy."""

    allow: CallbackAllow = field(default_factory=CallbackAllow)
    allow_internal: bool = False
    resolver: Resolver = system_resolver

    async def check_new(self, destination: Destination) -> None:
        """The check at create and update: DestinationHostRefused when a host leads inside.

        A host that does not resolve now is accepted; it is checked again at connect time.
        """
        for host, port in destination.endpoints():
            await self._addresses(host, port, unresolved_ok=True)

    async def pin(self, destination: Destination) -> None:
        """The check before connecting; the destination then connects to a checked address.

        DestinationHostRefused when a host leads inside, DestinationUnreachable when it does
        not resolve.
        """
        for host, port in destination.endpoints():
            addresses = await self._addresses(host, port, unresolved_ok=False)
            if addresses:
                destination.pin(host, addresses[0])

    async def _addresses(self, host: str, port: int, *, unresolved_ok: bool) -> list[str]:
        _check_form(host, port)
        try:
            addresses = await host_addresses(host.removesuffix("."), port, self.resolver)
        except ResolutionFailed:
            if unresolved_ok:
                return []
            raise DestinationUnreachable(f"The host {host[:100]!r} does not resolve") from None
        if self.allow_internal:
            return addresses
        for address in addresses:
            refusal = address_refusal(host, address, self.allow)
            if refusal is not None:
                raise DestinationHostRefused(
                    "The destination's host is not allowed",
                    f"{host[:100]!r}: {refusal}. The server's operator may allow it with "
                    "QB_DESTINATION_ALLOW or QB_DESTINATION_ALLOW_INTERNAL.",
                )
        return addresses


def _check_form(host: str, port: int) -> None:
    """Refuse what is not one host name or IP address (libpq host lists, paths, escapes)."""
    shown = f"[{host}]" if ":" in host else host
    try:
        check_callback_url(f"http://{shown}:{port}/")
    except CallbackRefused:
        raise DestinationHostRefused(
            "The destination's host is not allowed",
            f"{host[:100]!r} is not one host name or IP address.",
        ) from None
