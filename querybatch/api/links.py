"""Signed links: temporary URLs that authorise one method on one path until they expire.

Upload URLs (``PUT /cache/{handler}``) and results download URLs (``GET
/batches/{batch}/results``) need no API key: the link is the credential. A link carries
``expires`` (epoch seconds, three decimals) and ``signature``, the hex HMAC-SHA256, keyed
with the server secret, of ``METHOD\\nPATH\\nEXPIRES``. PATH is the route path without the
``/v2`` or ``/enterprise/v2`` prefix, so a link works under every prefix. A link whose
signature does not match (any part altered) or whose ``expires`` is not the server's own
form (1-11 digits, up to three decimals) is refused with 403 LINK_INVALID; a genuine
link past its time with 403 LINK_EXPIRED.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Annotated
from urllib.parse import quote

from fastapi import Query, Request

from querybatch.api.ratelimit import gate_of
from querybatch.errors import LinkExpired, LinkInvalid

PREFIXES = ("/enterprise/v2", "/v2")
_EXPIRES = re.compile(r"[0-9]{1,11}(?:\.[0-9]{1,3})?")
_SIGNATURE = re.compile(r"[0-9A-Fa-f]{64}")


class Links:
    """Makes and checks the signed links of one server (every node shares its secret)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def signature(self, method: str, path: str, expires: str) -> str:
        """The signature of ``method`` on ``path`` until ``expires``."""
        message = f"{method.upper()}\n{path}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def url(self, base: str, method: str, path: str, expires: float) -> str:
        """An absolute signed URL; ``base`` already holds the prefix the client used."""
        stamp = f"{expires:.3f}"
        signature = self.signature(method, path, stamp)
        return f"{base}{quote(path)}?expires={stamp}&signature={signature}"

    def verify(
        self, method: str, path: str, expires: str | None, signature: str | None, now: float
    ) -> float:
        """The link's expiry if it is genuine and still valid; else LinkInvalid/LinkExpired."""
        if not expires or not signature:
            raise LinkInvalid(
                "The link is not valid",
                "A signed link carries both 'expires' and 'signature'; use the URL as given.",
            )
        # Only the shape this server signs: no nan, inf, sign, exponent or huge value, and a
        # signature of hex digits (compare_digest refuses non-ASCII text with a TypeError).
        if _EXPIRES.fullmatch(expires) is None or _SIGNATURE.fullmatch(signature) is None:
            raise LinkInvalid("The link is not valid", "Its expiry or signature is malformed.")
        expected = self.signature(method, path, expires)
        if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
            raise LinkInvalid("The link is not valid", "Its signature does not match.")
        until = float(expires)
        if until < now:
            raise LinkExpired(
                "The link has expired",
                f"It was valid until {expires} (epoch seconds); ask for a new one.",
            )
        return until


class SignedLink:
    """The dependency of routes reached by a signed link instead of an API key.

    A test walks the routes: each depends on :class:`Authorize`, or on this.
    """

    async def __call__(
        self,
        request: Request,
        expires: Annotated[str | None, Query()] = None,
        signature: Annotated[str | None, Query()] = None,
    ) -> float:
        # No key to charge: a link's requests count to the client address, like anonymous ones.
        await gate_of(request.scope).charge_address()
        path = request.url.path
        for prefix in PREFIXES:
            if path.startswith(prefix + "/"):
                path = path[len(prefix) :]
                break
        # Not through deps.ServicesDep: the services module imports this one.
        links: Links = request.app.state.services.links
        return links.verify(request.method, path, expires, signature, time.time())
