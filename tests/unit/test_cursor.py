"""List cursors: each listing's wire form, round trips, and cursors that are not ours."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from querybatch.api.cursor import BULK_BATCH_CURSORS, QUERY_BATCH_CURSORS, CursorCodec
from querybatch.errors import BadRequest

CODECS = [QUERY_BATCH_CURSORS, BULK_BATCH_CURSORS]


def test_a_query_batch_cursor_is_the_creation_time_and_id_as_they_are() -> None:
    assert QUERY_BATCH_CURSORS.encode(1767225600.25, "qrb_0123456789ab") == (
        "1767225600.25~qrb_0123456789ab"
    )


def test_a_bulk_batch_cursor_is_the_same_payload_in_unpadded_url_safe_base64() -> None:
    batch = "3f2b6c1e-9a47-4d2b-8c1f-0e5d7a9b2c4d"
    cursor = BULK_BATCH_CURSORS.encode(1767225600.123, batch)
    assert cursor == base64.urlsafe_b64encode(f"1767225600.123~{batch}".encode()).decode().rstrip(
        "="
    )
    assert "=" not in cursor


@pytest.mark.parametrize("codec", CODECS)
@given(
    created=st.floats(min_value=0, max_value=32503680000, allow_nan=False),
    ident=st.text(min_size=1, max_size=40),
)
def test_a_cursor_decodes_to_what_it_was_made_from(
    codec: CursorCodec, created: float, ident: str
) -> None:
    assert codec.decode(codec.encode(created, ident)) == (created, ident)


@pytest.mark.parametrize(
    ("codec", "cursor"),
    [
        (QUERY_BATCH_CURSORS, "garbage"),
        (QUERY_BATCH_CURSORS, "inf~qrb_0123456789ab"),
        (QUERY_BATCH_CURSORS, "nan~qrb_0123456789ab"),
        (BULK_BATCH_CURSORS, "%%%"),
        (BULK_BATCH_CURSORS, "é"),
        (BULK_BATCH_CURSORS, base64.urlsafe_b64encode(b"\xff\xfe~x").decode()),
        (BULK_BATCH_CURSORS, base64.urlsafe_b64encode(b"soon~x").decode()),
        (BULK_BATCH_CURSORS, base64.urlsafe_b64encode(b"inf~x").decode()),
    ],
)
def test_a_cursor_that_is_not_ours_is_a_bad_request_with_the_listings_hint(
    codec: CursorCodec, cursor: str
) -> None:
    with pytest.raises(BadRequest) as raised:
        codec.decode(cursor)
    assert raised.value.message == "Invalid value for parameter 'cursor'"
    assert raised.value.description == codec.hint
