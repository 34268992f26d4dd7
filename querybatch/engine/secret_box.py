"""Secrets kept at rest: AES-GCM with a key derived from the server secret, bound to a tenant.

The key is HKDF-SHA256 of the server secret (``QB_SECRET``, or the one the store generated
on the first start) for this one purpose, so it signs nothing and nothing signed reveals it.
Each value carries a fresh nonce and is bound to its account (the associated data): a
ciphertext copied to another tenant's row does not open. Changing the server secret makes
stored secrets unreadable; they must then be entered again.
"""

from __future__ import annotations

import base64
import os

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from querybatch.errors import ConfigurationError

VERSION = "v1"


class SecretBox:
    """Encrypts and decrypts a tenant's secrets (a mapping of field name to value)."""

    def __init__(self, server_secret: bytes) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=b"querybatch",
            info=b"querybatch destination secrets v1",
        ).derive(server_secret)
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    def seal(self, account: str, secrets: dict[str, str]) -> str | None:
        """The ciphertext of ``secrets`` for ``account`` (None when there are none)."""
        if not secrets:
            return None
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, orjson.dumps(secrets), _bound(account))
        return f"{VERSION}:" + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, account: str, text: str | None) -> dict[str, str]:
        """The secrets sealed in ``text`` for ``account``."""
        if not text:
            return {}
        version, _, body = text.partition(":")
        try:
            if version != VERSION:
                raise ValueError(version)
            raw = base64.urlsafe_b64decode(body)
            opened = self._aead.decrypt(raw[:12], raw[12:], _bound(account))
        except (ValueError, InvalidTag):
            raise ConfigurationError(
                "A destination's stored secrets cannot be decrypted",
                "The server secret (QB_SECRET) changed since they were stored: enter them "
                "again with an update.",
            ) from None
        values = orjson.loads(opened)
        return {str(k): str(v) for k, v in values.items()}


def _bound(account: str) -> bytes:
    return b"querybatch-destination:" + account.encode()
