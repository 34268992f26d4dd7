"""API keys and roles: who is calling, and may they perform this action."""

from __future__ import annotations

import time

from querybatch.engine.access import KEY_PREFIX, Access, Principal
from querybatch.errors import PermissionDenied, Unauthorized

__all__ = ["KEY_CHARS", "KeyCache", "Principal", "key_of_authorization", "require"]

KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def key_of_authorization(value: str) -> str | None:
    """The API key of an ``Authorization`` header value, or None when it holds none.

    ``Bearer <key>`` is the Supermetrics form; a bare ``<key>`` with no scheme is what
    Trusted Twin's clients send (``TTRESTService(tt_auth=<key>)``). Any other scheme
    (``Basic ...``) carries no key of this server.
    """
    value = value.strip()
    scheme, space, token = value.partition(" ")
    if not space:
        return value or None
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class KeyCache:
    """Authenticates keys, remembering answers for a few seconds.

    Status polling is the hottest path of the API; without the cache every poll would cost
    two store reads. A key or role changed through ``access`` takes effect on this node at
    once (the cache forgets everything) and on other nodes within ``ttl`` seconds. Unknown
    keys are remembered apart from real ones, so a flood of made-up keys (bounded by the
    client address's rate limit) never pushes the real keys out.
    """

    MAX_ENTRIES = 10_000

    def __init__(self, access: Access, ttl: float = 5.0) -> None:
        self.access = access
        self.ttl = ttl
        self._keys: dict[str, tuple[float, Principal]] = {}
        self._unknown: dict[str, float] = {}
        access.watch(self.forget)

    async def authenticate(self, secret: str | None) -> Principal:
        """The principal of ``secret``; Unauthorized when missing, malformed, unknown or revoked."""
        if not secret:
            raise Unauthorized("Authentication is required.")
        if len(secret) > 255 or not KEY_CHARS.issuperset(secret):
            raise Unauthorized("Authentication is required.", "The API key is malformed.")
        now = time.monotonic()
        cached = self._keys.get(secret)
        if cached is not None and cached[0] >= now:
            return cached[1]
        if self._unknown.get(secret, 0.0) < now:
            principal = await self.access.authenticate(secret)
            if principal is not None:
                if len(self._keys) >= self.MAX_ENTRIES:
                    self._keys.clear()
                self._keys[secret] = (now + self.ttl, principal)
                return principal
            if len(self._unknown) >= self.MAX_ENTRIES:
                self._unknown.clear()
            self._unknown[secret] = now + self.ttl
        hint = "" if secret.startswith(KEY_PREFIX) else " (keys of this server start with qb_)"
        raise Unauthorized("Authentication is required.", f"The API key is not valid{hint}.")

    def forget(self) -> None:
        """Drop every remembered answer (a key or role changed on this node)."""
        self._keys.clear()
        self._unknown.clear()


def require(principal: Principal, action: str) -> None:
    """Raise PermissionDenied unless the principal's role permits ``action``."""
    if not principal.statement.permits(action):
        raise PermissionDenied(
            f"The role '{principal.key.role}' does not allow '{action}'.",
            f"Action '{action}' is denied for API key {principal.key.prefix}... ",
        )
