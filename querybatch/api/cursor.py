"""List cursors: the opaque token that asks a listing for the page after (created, id).

Every listing pages on (creation time, id) and writes the same payload, ``repr(created)~id``.
Each keeps the form its clients already hold: query batches send it as it is, bulk batches
wrapped in unpadded URL-safe base64.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass

from querybatch.errors import BadRequest


@dataclass(frozen=True, slots=True)
class CursorCodec:
    """Writes and reads the cursors of one listing.

    ``armoured`` wraps the payload in base64; ``hint`` tells a client whose cursor is not
    one of ours what to pass instead.
    """

    armoured: bool
    hint: str

    def encode(self, created: float, ident: str) -> str:
        """The cursor of the page after the item ``ident`` created at ``created``."""
        payload = f"{created!r}~{ident}"
        if not self.armoured:
            return payload
        return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")

    def decode(self, cursor: str) -> tuple[float, str]:
        """(created, id) a cursor points after; BAD_REQUEST if it is not one of ours."""
        try:
            payload = self._unwrap(cursor) if self.armoured else cursor
            created, _, ident = payload.partition("~")
            value = float(created)
        # binascii.Error and UnicodeDecodeError are ValueErrors too.
        except ValueError as exc:
            raise self._invalid() from exc
        # We only ever write finite times; an infinite or NaN one would be compared in SQL.
        if not math.isfinite(value):
            raise self._invalid()
        return value, ident

    @staticmethod
    def _unwrap(cursor: str) -> str:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()

    def _invalid(self) -> BadRequest:
        return BadRequest("Invalid value for parameter 'cursor'", self.hint)


QUERY_BATCH_CURSORS = CursorCodec(armoured=False, hint="Use meta.next_cursor.")
BULK_BATCH_CURSORS = CursorCodec(armoured=True, hint="Pass the cursor of the previous answer.")
