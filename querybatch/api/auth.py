"""API keys and roles: who is calling, and may they perform this action."""

from __future__ import annotations

import time
from dataclasses import dataclass

from querybatch.domain.actions import Statement
from querybatch.engine.service import Caller
from querybatch.errors import PermissionDenied, Unauthorized
from querybatch.store.keys import KEY_PREFIX
from querybatch.store.records import KeyRecord
from querybatch.store.store import Store

KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated key and what its role allows."""

    key: KeyRecord
    statement: Statement

    @property
    def caller(self) -> Caller:
        """The engine's view of the principal."""
        return Caller(account=self.key.account, key_id=self.key.id)


class KeyCache:
    """Authenticates keys, remembering answers for a few seconds.

    Status polling is the hottest path of the API; without the cache every poll would cost
    two store reads. A revoked key stops working on this node at once (:meth:`forget`) and on
    other nodes within ``ttl`` seconds. Unknown keys are remembered apart from real ones, so
    a flood of made-up keys (bounded by the client address's rate limit) never pushes the
    real keys out.
    """

    MAX_ENTRIES = 10_000

    def __init__(self, store: Store, ttl: float = 5.0) -> None:
        self.store = store
        self.ttl = ttl
        self._keys: dict[str, tuple[float, Principal]] = {}
        self._unknown: dict[str, float] = {}

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
            principal = await self._load(secret)
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

    async def _load(self, secret: str) -> Principal | None:
        key = await self.store.keys.authenticate( secret)
        if key is None:
            return None
        # A key's role is a built-in one or one of its own account's, never another's.
        role = await self.store.keys.get_role( key.account, key.role)
        if role is None:
            return None
        return Principal(key, role.statement)

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
